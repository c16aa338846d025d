"""The ACD core: pure skills-based routing (see docs/acd.md).

Events with a time in, offers out; no I/O and no clock inside, so the same
engine runs live (callcenter.callpath) and in simulation (callcenter.wfm).
"""

from callcenter.acd.callbacks import CallbackPolicy
from callcenter.acd.engine import NO_ANSWER, AgentStateChange, AuditEntry, Engine
from callcenter.acd.messages import (
    DEFAULT_CAPACITY,
    AgentProfile,
    Channel,
    InteractionRequest,
    Offer,
    OfferDecision,
)
from callcenter.acd.model import QueueStats
from callcenter.acd.queues import Policy, QueueRules, Relaxation
from callcenter.acd.states import TRANSITIONS, AgentEvent, AgentState

__all__ = [
    "DEFAULT_CAPACITY",
    "NO_ANSWER",
    "TRANSITIONS",
    "AgentEvent",
    "AgentProfile",
    "AgentState",
    "AgentStateChange",
    "AuditEntry",
    "CallbackPolicy",
    "Channel",
    "Engine",
    "InteractionRequest",
    "Offer",
    "OfferDecision",
    "Policy",
    "QueueRules",
    "QueueStats",
    "Relaxation",
]
