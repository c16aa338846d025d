"""The rows the call path hands to the interaction writer.

Frozen dataclasses, times as wall-clock epoch seconds; the writer stores them
in PostgreSQL (:mod:`callcenter.store.interactions`) and, while it cannot,
in its spool file (:mod:`callcenter.store.spool`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Leg:
    uniqueid: str
    channel_name: str
    role: str  # "caller" or "agent"
    created_at: float
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class InteractionRow:
    """One finished interaction; times are wall-clock epoch seconds."""

    interaction_id: str
    node: str
    linkedid: str | None
    queue: str
    caller_number: str
    language: str
    priority: int
    enqueued_at: float
    answered_at: float | None
    ended_at: float | None
    agent_id: str | None
    outcome: str
    context: dict[str, Any] = field(default_factory=dict)
    legs: tuple[Leg, ...] = ()
    direction: str = "inbound"


@dataclass(frozen=True, slots=True)
class CallbackRow:
    """A callback's durable state; times are wall-clock epoch seconds."""

    callback_id: str
    origin: str | None
    node: str
    queue: str
    number: str
    language: str
    priority: int
    enqueued_at: float
    not_before: float | None
    status: str  # pending, done, failed, expired, cancelled
    attempts: tuple[dict[str, Any], ...] = ()
    agent_id: str | None = None
    not_after: float | None = None
    """The window's end: still pending then, the callback expires."""


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One ACD decision with its reason (audit); ``at`` is epoch seconds."""

    at: float
    kind: str
    interaction_id: str | None
    agent_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class AgentStateRow:
    """An agent entered ``state`` at ``since`` (epoch seconds)."""

    agent_id: str
    state: str
    reason: str | None
    since: float


Row = InteractionRow | CallbackRow | DecisionRow | AgentStateRow


def json_text(value: Any) -> str:
    # default=str: a value JSON cannot represent is written as its text, the
    # same in the spool and in the database (never a row that cannot be stored).
    return json.dumps(value, separators=(",", ":"), default=str)
