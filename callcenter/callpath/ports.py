"""What the call path needs from the ACD core, stated once.

The call path (Asterisk side) and the ACD (pure routing) meet here: the call
path turns Asterisk facts into these calls and carries out the offers they
return. Ids are strings chosen by the call path (interaction ids are per
node); times are the injected clock's seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from callcenter.acd.engine import AgentStateChange, AuditEntry
from callcenter.acd.messages import AgentProfile, InteractionRequest, OfferDecision

__all__ = ["AcdPort", "AgentProfile", "InteractionRequest", "OfferDecision"]


class AcdPort(Protocol):
    def agent_login(self, at: float, profile: AgentProfile) -> Sequence[OfferDecision]: ...

    def agent_ready(self, at: float, agent_id: str) -> Sequence[OfferDecision]: ...

    def agent_pause(self, at: float, agent_id: str, reason: str) -> Sequence[OfferDecision]: ...

    def agent_logout(self, at: float, agent_id: str) -> Sequence[OfferDecision]: ...

    def agent_state(self, agent_id: str) -> str: ...

    def interaction_arrived(
        self, at: float, request: InteractionRequest
    ) -> Sequence[OfferDecision]: ...

    def adopt(
        self, at: float, request: InteractionRequest, profile: AgentProfile
    ) -> Sequence[OfferDecision]: ...

    def offer_answered(
        self, at: float, interaction_id: str, agent_id: str
    ) -> Sequence[OfferDecision]: ...

    def offer_failed(
        self, at: float, interaction_id: str, agent_id: str, reason: str
    ) -> Sequence[OfferDecision]:
        """Ring-no-answer or busy: the agent is paused, the call keeps its place."""
        ...

    def offer_cancelled(
        self, at: float, interaction_id: str, agent_id: str, reason: str
    ) -> Sequence[OfferDecision]:
        """The offer could not be placed: agent ready again, call keeps its place."""
        ...

    def redispatch(self, at: float) -> Sequence[OfferDecision]: ...

    def interaction_abandoned(self, at: float, interaction_id: str) -> Sequence[OfferDecision]: ...

    def interaction_set_aside(self, at: float, interaction_id: str) -> Sequence[OfferDecision]:
        """The caller is busy (choosing a callback): keeps its place, offered to nobody."""
        ...

    def interaction_back(self, at: float, interaction_id: str) -> Sequence[OfferDecision]: ...

    def interaction_ended(self, at: float, interaction_id: str) -> Sequence[OfferDecision]:
        """The conversation is over: the agent goes to wrap-up."""
        ...

    def wrapup_ended(self, at: float, agent_id: str) -> Sequence[OfferDecision]: ...

    def tick(self, at: float) -> Sequence[OfferDecision]: ...

    def new_month(self, at: float) -> Sequence[OfferDecision]: ...

    def next_deadline(self) -> float | None: ...

    def position(self, interaction_id: str) -> int: ...

    def take_records(self) -> tuple[list[AuditEntry], list[AgentStateChange]]:
        """Decisions and agent states since the last call, to persist."""
        ...

    def expected_wait(self, at: float, interaction_id: str) -> float | None: ...
