"""ACD data: queue rules, and the live agents and interactions the engine keeps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from callcenter.acd.messages import AgentProfile, InteractionRequest
from callcenter.acd.states import AgentState


class Policy(StrEnum):
    """How to choose among several eligible agents for a new call."""

    LONGEST_IDLE = "longest_idle"
    BEST_PROFICIENCY = "best_proficiency"
    LEAST_OCCUPIED = "least_occupied"
    ROUND_ROBIN = "round_robin"


@dataclass(frozen=True, slots=True)
class Relaxation:
    """After ``after`` seconds of wait, accept agents with ``min_level`` or more
    in every required skill (``min_level=1``: anyone who has the skill)."""

    after: float
    min_level: int


@dataclass(frozen=True, slots=True)
class QueueRules:
    name: str
    sl_threshold: float = 20.0
    wrapup: float = 10.0
    policy: Policy = Policy.LONGEST_IDLE
    relaxations: tuple[Relaxation, ...] = ()
    default_handle_time: float = 180.0


@dataclass
class LiveAgent:
    profile: AgentProfile
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    idle_since: float = 0.0
    pause_reason: str | None = None
    pending_pause: str | None = None
    interaction: str | None = None
    wrapup_until: float | None = None
    answered_at: float | None = None
    handled: int = 0
    busy_seconds: float = 0.0
    logged_in_at: float = 0.0

    @property
    def agent_id(self) -> str:
        return self.profile.agent_id

    def level(self, skill: str) -> int:
        return self.profile.skills.get(skill, 0)

    def occupancy(self, now: float) -> float:
        logged = max(1e-9, now - self.logged_in_at)
        return self.busy_seconds / logged


@dataclass
class LiveInteraction:
    request: InteractionRequest
    enqueued_at: float
    sequence: int
    offered_to: str | None = None
    answered_by: str | None = None
    declined_by: set[str] = field(default_factory=set)
    """Agents who did not answer it (audit; they are paused, not excluded)."""

    @property
    def interaction_id(self) -> str:
        return self.request.interaction_id

    @property
    def waiting(self) -> bool:
        return self.offered_to is None and self.answered_by is None

    def required(self, rules: QueueRules, now: float) -> Mapping[str, int]:
        """Required skills and levels after the queue's relaxations so far."""
        waited = now - self.enqueued_at
        floor: int | None = None
        for step in rules.relaxations:
            if waited >= step.after:
                floor = step.min_level if floor is None else min(floor, step.min_level)
        if floor is None:
            return self.request.skills
        return {skill: min(level, floor) for skill, level in self.request.skills.items()}
