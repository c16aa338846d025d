"""Events the call path feeds to the real-time aggregator: frozen messages.

``at`` is on the injected clock's ``now()`` scale. For each interaction the
expected order is::

    Offered -> Answered -> [Transferred] -> Ended -> WrapUpEnded
    Offered -> Abandoned
    Offered -> CallbackRequested
    Offered -> CallbackClosed          (a callback that ends failed or expired)

A call without wrap-up sends WrapUpEnded at the same time as Ended: the
interaction's record is complete only then. A transferred caller starts a new
interaction: Offered with ``origin`` set to the id it came from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Offered:
    at: float
    interaction_id: str
    queue: str
    skill: str = ""
    customer_id: str | None = None
    channel: str = "voice"
    origin: str | None = None
    enqueued_at: float | None = None
    """A callback or transfer that keeps its place: the original enqueue time."""


@dataclass(frozen=True, slots=True)
class Answered:
    at: float
    interaction_id: str
    agent_id: str
    team: str = ""
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Abandoned:
    """The caller hung up before an agent answered."""

    at: float
    interaction_id: str


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    """The caller left the queue asking to be called back."""

    at: float
    interaction_id: str


@dataclass(frozen=True, slots=True)
class CallbackClosed:
    """A callback ended without reaching the customer: ``outcome`` is
    ``"failed"`` (no attempt left, or the next would start after its window)
    or ``"expired"`` (its window closed before an agent took it). It leaves
    the queue, neither answered nor abandoned."""

    at: float
    interaction_id: str
    outcome: str = "failed"


@dataclass(frozen=True, slots=True)
class Transferred:
    """The agent transferred the caller away; Ended follows."""

    at: float
    interaction_id: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The conversation ended; ``hold_seconds`` is the caller's total hold time."""

    at: float
    interaction_id: str
    hold_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class WrapUpEnded:
    at: float
    interaction_id: str


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """An agent entered ``state`` (an ACD AgentState value)."""

    at: float
    agent_id: str
    state: str
    skills: tuple[str, ...] = ()
    team: str = ""
    extended: bool = False


@dataclass(frozen=True, slots=True)
class CallbacksPending:
    """How many callbacks wait in ``queue`` now."""

    at: float
    queue: str
    count: int


@dataclass(frozen=True, slots=True)
class IvrNodeExited:
    at: float
    script: str
    node: str
    exit: str


@dataclass(frozen=True, slots=True)
class SpeechNoMatch:
    at: float
    script: str
    node: str


@dataclass(frozen=True, slots=True)
class RecordingWritten:
    at: float
    queue: str


StatsEvent = (
    Offered
    | Answered
    | Abandoned
    | CallbackRequested
    | CallbackClosed
    | Transferred
    | Ended
    | WrapUpEnded
    | AgentStateChanged
    | CallbacksPending
    | IvrNodeExited
    | SpeechNoMatch
    | RecordingWritten
)
