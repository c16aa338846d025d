"""The live agents and interactions the engine keeps, and per-queue counters.

Queue rules live in :mod:`callcenter.acd.queues` (re-exported here: older
imports name them from this module).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.acd.messages import AgentProfile, Channel, InteractionRequest
from callcenter.acd.queues import Policy, QueueRules, Relaxation, Requirement, requirement
from callcenter.acd.states import AgentState

__all__ = [
    "LiveAgent",
    "LiveInteraction",
    "Policy",
    "QueueRules",
    "QueueStats",
    "Relaxation",
]


@dataclass(slots=True)
class LiveAgent:
    profile: AgentProfile
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    idle_since: float = 0.0
    pause_reason: str | None = None
    pending_pause: str | None = None
    interaction: str | None = None
    """The voice interaction ringing, talking or in wrap-up."""
    items: dict[str, str] = field(default_factory=dict)
    """Non-voice interactions held (offered or answered): id -> channel."""
    wrapup_until: float | None = None
    answered_at: float | None = None
    handled: int = 0
    busy_seconds: float = 0.0
    logged_in_at: float = 0.0
    month_count: int = 0
    """Extended agents: interactions this month, offers in flight included."""
    agent_id: str = field(init=False)
    """``profile.agent_id`` (a new profile at login keeps the id)."""

    def __post_init__(self) -> None:
        self.agent_id = self.profile.agent_id

    @property
    def extended(self) -> bool:
        return self.profile.extended

    def level(self, skill: str) -> int:
        return self.profile.skills.get(skill, 0)

    def occupancy(self, now: float) -> float:
        logged = max(1e-9, now - self.logged_in_at)
        return self.busy_seconds / logged

    def load(self, channel: str) -> int:
        return sum(1 for held in self.items.values() if held == channel)

    def has_room(self, channel: str) -> bool:
        """Capacity left for one more ``channel`` interaction (state aside).

        Voice is exclusive: an agent holding chats or e-mails is not offered a
        call, and one on a call (not ready) gets nothing else.
        """
        if channel == Channel.VOICE:
            return not self.items and self.profile.capacity.get(Channel.VOICE, 1) > 0
        return self.load(channel) < self.profile.capacity.get(channel, 0)

    def under_cap(self) -> bool:
        cap = self.profile.monthly_cap
        return cap is None or self.month_count < cap


@dataclass(slots=True)
class LiveInteraction:
    request: InteractionRequest
    enqueued_at: float
    sequence: int
    queue: str = ""
    """The queue it is in now (an overflow moves it; ``request.queue`` is where it came in)."""
    skills: Mapping[str, int] = field(default_factory=dict)
    """Required skills before relaxation (the overflow queue's after an overflow)."""
    offered_to: str | None = None
    offered_at: float | None = None
    answered_by: str | None = None
    declined_by: set[str] = field(default_factory=set)
    """Agents who did not answer it (audit; they are paused, not excluded)."""
    kind: str = "call"
    aside: bool = False
    """Set aside (the caller is busy choosing a callback): keeps its place,
    offered to nobody until it is back."""
    not_before: float | None = None
    not_after: float | None = None
    attempt: int = 0
    req_cache: Requirement | None = None
    """The requirement valid from ``req_from`` to ``req_until`` (the next
    relaxation step): routing asks for it many times, it changes rarely."""
    req_from: float = math.inf
    req_until: float = -math.inf
    interaction_id: str = field(init=False)
    """``request.interaction_id`` (read on every routing step: kept at hand)."""
    channel: str = field(init=False)
    """``request.channel``."""

    def __post_init__(self) -> None:
        self.interaction_id = self.request.interaction_id
        self.channel = self.request.channel
        if not self.queue:
            self.queue = self.request.queue
        if not self.skills:
            self.skills = self.request.skills
        self.kind = self.request.kind
        self.not_before = self.request.not_before
        self.not_after = self.request.not_after
        self.attempt = self.request.attempt

    @property
    def waiting(self) -> bool:
        return self.offered_to is None and self.answered_by is None

    def requirement(self, origin: QueueRules, current: QueueRules, now: float) -> Requirement:
        """What it accepts at ``now``: the *origin* queue's relaxations run on
        the whole wait (an overflow does not restart them)."""
        cached = self.req_cache
        if cached is not None and self.req_from <= now < self.req_until:
            return cached
        waited = now - self.enqueued_at
        named = bool(current.extended_skills) and not current.extended_skills.isdisjoint(
            self.skills
        )
        cached = self.req_cache = requirement(origin, self.skills, waited, named)
        steps = origin.relaxations
        self.req_from = (
            self.enqueued_at + steps[cached.step - 1].after if cached.step else -math.inf
        )
        self.req_until = (
            self.enqueued_at + steps[cached.step].after if cached.step < len(steps) else math.inf
        )
        return cached

    def move_to(self, queue: str, skills: Mapping[str, int] | None) -> None:
        """Overflow: routed as ``queue`` (and its ``skills``, if given) from now on."""
        self.queue = queue
        if skills:
            self.skills = dict(skills)
        self.req_cache = None

    def required(self, rules: QueueRules, now: float) -> Mapping[str, int]:
        """Required skills and levels after the queue's relaxations so far."""
        return requirement(rules, self.skills, now - self.enqueued_at).skills


@dataclass(slots=True)
class QueueStats:
    """Counters per queue since the engine started; extended agents apart."""

    arrived: int = 0
    offered: int = 0
    answered: int = 0
    answered_extended: int = 0
    abandoned: int = 0
    rona: int = 0
    overflowed_out: int = 0
    overflowed_in: int = 0
    callbacks_failed: int = 0
    callbacks_expired: int = 0
    wait_answered: float = 0.0
    """Sum of waits (enqueue -> answer) of answered calls."""
    answered_in_sl: int = 0
