"""What goes into the ACD and what comes out: frozen messages.

Ids are strings chosen by the caller (interaction ids are per node, never
assumed global); times are seconds of the injected clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AgentProfile:
    agent_id: str
    skills: Mapping[str, int]
    languages: frozenset[str] = frozenset({"fr"})
    team: str = ""
    extended: bool = False


@dataclass(frozen=True, slots=True)
class InteractionRequest:
    interaction_id: str
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    language: str = "fr"
    priority: int = 0
    customer_id: str | None = None
    enqueued_at: float | None = None
    """Original enqueue time for a callback that keeps its place."""
    not_before: float | None = None
    """Not offered before this time (a scheduled callback, a retry delay)."""
    agent_id: str | None = None
    """Only this agent may take it (a transfer to a named agent)."""
    kind: str = "call"
    """"call" (a caller on the line) or "callback" (we call the customer)."""


@dataclass(frozen=True, slots=True)
class OfferDecision:
    """Ring ``agent_id`` with ``interaction_id``; ``reason`` says why (audit)."""

    interaction_id: str
    agent_id: str
    reason: str
