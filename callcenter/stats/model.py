"""What statistics are computed from: finished interactions and agent state spans.

This is the input contract of the statistics core. The call path (or the
store, reading the ``interactions`` and ``agent_states`` tables) builds these
records; nothing here reads a clock, a socket or a database.

Times are seconds on one scale chosen by the producer: epoch seconds for
history (interval aggregates are aligned on epoch multiples of 15 minutes,
which are also local quarter-hours in every time zone), the injected clock's
``now()`` for the real-time aggregator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from callcenter.errors import ConfigError, StateError

DAY = 86_400.0

# Agent states as the ACD names them (callcenter.acd.states.AgentState values);
# repeated here so the statistics core does not depend on the ACD's internals.
READY = "ready"
RESERVED = "reserved"
ON_CALL = "on_call"
WRAP_UP = "wrap_up"
PAUSED = "paused"
LOGGED_OUT = "logged_out"
AGENT_STATES = (READY, RESERVED, ON_CALL, WRAP_UP, PAUSED, LOGGED_OUT)


class Outcome(StrEnum):
    ANSWERED = "answered"
    """An agent answered (whatever happened after: completed, transferred)."""
    ABANDONED = "abandoned"
    """The caller hung up while waiting or while an agent's phone rang."""
    CALLBACK = "callback"
    """The caller left the queue asking to be called back: neither answered nor abandoned."""
    OPEN = "open"
    """Still waiting (or the record is incomplete): counted as offered only."""


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """Thresholds that KPI definitions depend on."""

    sl_threshold: float = 20.0
    """Service-level threshold T in seconds, for queues without their own."""
    queue_sl_thresholds: Mapping[str, float] = field(default_factory=dict)
    """Per-queue T (app_queue's ``servicelevel`` is per queue too)."""
    short_abandon: float = 5.0
    """Abandons with a wait strictly below this are short abandons, counted
    apart (misdials, callers who hang up at the first prompt). 0 disables."""
    fcr_days: float = 7.0
    """First-contact resolution: no repeat contact within this many days."""
    interval: int = 900
    """Historical interval length in seconds (15 minutes)."""

    def __post_init__(self) -> None:
        if not (self.sl_threshold >= 0 and math.isfinite(self.sl_threshold)):
            raise ConfigError(f"sl_threshold must be >= 0 seconds, not {self.sl_threshold!r}")
        for queue, threshold in self.queue_sl_thresholds.items():
            if not (threshold >= 0 and math.isfinite(threshold)):
                raise ConfigError(
                    f"queue_sl_thresholds[{queue!r}] must be >= 0 seconds, not {threshold!r}"
                )
        if not (self.short_abandon >= 0 and math.isfinite(self.short_abandon)):
            raise ConfigError(f"short_abandon must be >= 0 seconds, not {self.short_abandon!r}")
        if not self.fcr_days > 0:
            raise ConfigError(f"fcr_days must be > 0, not {self.fcr_days!r}")
        if self.interval <= 0 or 86_400 % self.interval:
            raise ConfigError(f"interval must divide a day, not {self.interval!r}")

    def threshold(self, queue: str) -> float:
        return self.queue_sl_thresholds.get(queue, self.sl_threshold)


@dataclass(frozen=True, slots=True)
class InteractionRecord:
    """One interaction offered to one queue, as statistics see it.

    A transferred caller starts a new interaction (``origin`` names the one
    it came from); the one it left has ``transferred`` set and counts as
    answered and handled in its own queue.
    """

    interaction_id: str
    queue: str
    offered_at: float
    """When it entered the queue (a callback or a transfer that keeps its
    place carries the original time)."""
    outcome: Outcome
    answered_at: float | None = None
    left_at: float | None = None
    """Abandoned or callback: when the caller left the queue."""
    ended_at: float | None = None
    """Answered: when the conversation ended (hang-up or transfer)."""
    wrap_ended_at: float | None = None
    """Answered: when the agent's wrap-up ended (= ended_at without wrap-up)."""
    hold_seconds: float = 0.0
    """Time the caller spent on hold during the conversation."""
    skill: str = ""
    """The skill the call was routed on ("" when none)."""
    agent_id: str | None = None
    team: str = ""
    extended: bool = False
    """Answered by an extended (informal, overflow-only) agent."""
    customer_id: str | None = None
    channel: str = "voice"
    transferred: bool = False
    origin: str | None = None

    def __post_init__(self) -> None:
        if self.outcome is Outcome.ANSWERED:
            if self.answered_at is None or self.agent_id is None:
                raise StateError(f"{self.interaction_id}: answered without answered_at/agent")
            if self.answered_at < self.offered_at:
                raise StateError(f"{self.interaction_id}: answered before it was offered")
            if self.ended_at is not None and self.ended_at < self.answered_at:
                raise StateError(f"{self.interaction_id}: ended before it was answered")
            if (
                self.wrap_ended_at is not None
                and self.ended_at is not None
                and self.wrap_ended_at < self.ended_at
            ):
                raise StateError(f"{self.interaction_id}: wrap-up ended before the call")
            if self.hold_seconds < 0 or (
                self.ended_at is not None
                and self.hold_seconds > self.ended_at - self.answered_at + 1e-9
            ):
                raise StateError(f"{self.interaction_id}: hold longer than the call")
        elif self.outcome in (Outcome.ABANDONED, Outcome.CALLBACK) and (
            self.left_at is None or self.left_at < self.offered_at
        ):
            raise StateError(f"{self.interaction_id}: {self.outcome} without a valid left_at")

    @property
    def wait(self) -> float | None:
        """Seconds in queue until answered or left; None while open."""
        if self.outcome is Outcome.ANSWERED:
            assert self.answered_at is not None
            return self.answered_at - self.offered_at
        if self.left_at is not None:
            return self.left_at - self.offered_at
        return None

    @property
    def handled(self) -> bool:
        """Answered and the conversation is over (AHT counts it)."""
        return self.outcome is Outcome.ANSWERED and self.ended_at is not None

    @property
    def talk(self) -> float:
        """Conversation time without hold."""
        if self.answered_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.answered_at - self.hold_seconds

    @property
    def wrap(self) -> float:
        if self.ended_at is None or self.wrap_ended_at is None:
            return 0.0
        return self.wrap_ended_at - self.ended_at


@dataclass(frozen=True, slots=True)
class AgentSpan:
    """Agent ``agent_id`` was in ``state`` from ``start`` to ``end``."""

    agent_id: str
    state: str
    start: float
    end: float
    team: str = ""
    extended: bool = False

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise StateError(f"agent {self.agent_id}: span ends before it starts")
