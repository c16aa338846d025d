"""Callbacks: the caller hangs up and keeps their place.

A callback is an interaction of kind ``"callback"`` that keeps the original
enqueue time (so its place in the line and its relaxation progress); it may
be scheduled in a window (``not_before`` .. ``not_after``): it is not offered
before the window opens and is dropped ("expired") if nobody took it when it
closes. The agent is rung first, then the customer is dialled; when the
customer does not answer or is busy, :func:`next_attempt` says when to try
again (the interaction goes back to waiting with the same enqueue time) or
that the callback has failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.errors import ConfigError

__all__ = ["CallbackPolicy", "next_attempt"]


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    max_attempts: int = 3
    """Dialling attempts in all (the first included)."""
    retry_delay: Mapping[str, float] = field(
        default_factory=lambda: {"no_answer": 600.0, "busy": 300.0, "failed": 120.0}
    )
    """Seconds before the next attempt, per outcome of the last one."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("callbacks: max_attempts must be >= 1")


def next_attempt(
    policy: CallbackPolicy, attempts_made: int, outcome: str, at: float
) -> float | None:
    """When to dial again after ``attempts_made`` attempts ended with ``outcome``.

    None: no attempt left, the callback has failed.
    """
    if attempts_made >= policy.max_attempts:
        return None
    delay = policy.retry_delay.get(outcome)
    if delay is None:
        delay = max(policy.retry_delay.values(), default=0.0)
    return at + delay
