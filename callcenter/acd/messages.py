"""What goes into the ACD and what comes out: frozen messages.

Ids are strings chosen by the caller (interaction ids are per node, such as
``"node1-1700000000.12"``, never assumed global or numeric); times are
seconds of the injected clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "DEFAULT_CAPACITY",
    "AgentProfile",
    "Channel",
    "InteractionRequest",
    "Offer",
    "OfferDecision",
]


class Channel(StrEnum):
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"


DEFAULT_CAPACITY: Mapping[str, int] = {Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 5}
"""How many interactions of each channel an agent may hold at once."""


@dataclass(frozen=True, slots=True)
class AgentProfile:
    agent_id: str
    skills: Mapping[str, int]
    """Skill -> proficiency 1 (lowest) .. 10."""
    languages: frozenset[str] = frozenset({"fr"})
    team: str = ""
    extended: bool = False
    """An informal agent (branch, shop, expert): overflow only, monthly cap."""
    capacity: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    monthly_cap: int | None = None
    """Extended agents: most interactions per month (None: no cap)."""
    month_handled: int = 0
    """Interactions already taken this month (the caller persists the count)."""


@dataclass(frozen=True, slots=True)
class InteractionRequest:
    interaction_id: str
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    """Required skills with their minimum level."""
    language: str = "fr"
    priority: int = 0
    """Higher first (VIP > 0)."""
    customer_id: str | None = None
    enqueued_at: float | None = None
    """Original enqueue time for a callback or a transfer that keeps its place."""
    not_before: float | None = None
    """Not offered before this time (a scheduled callback, a retry delay)."""
    agent_id: str | None = None
    """Only this agent may take it (a transfer to a named agent)."""
    kind: str = "call"
    """"call" (a caller on the line) or "callback" (we call the customer)."""
    channel: str = Channel.VOICE
    preferred: Mapping[str, int] = field(default_factory=dict)
    """Skills that are nice to have: eligible agents holding them at these
    levels are chosen before the others, whatever the queue's policy."""
    not_after: float | None = None
    """A scheduled callback's window end: dropped ("expired") if still waiting then."""
    attempt: int = 0
    """Callback attempts already made (a retry carries the count)."""


@dataclass(frozen=True, slots=True)
class OfferDecision:
    """Ring ``agent_id`` with ``interaction_id``; ``reason`` says why (audit)."""

    interaction_id: str
    agent_id: str
    reason: str


Offer = OfferDecision
