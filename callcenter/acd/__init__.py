"""The ACD core: pure skills-based routing (see docs/acd.md).

Events with a time in, offers out; no I/O and no clock inside, so the same
engine runs live (callcenter.callpath) and in simulation (callcenter.wfm).
"""

from callcenter.acd.engine import AgentStateChange, AuditEntry, Engine
from callcenter.acd.messages import AgentProfile, InteractionRequest, OfferDecision
from callcenter.acd.model import Policy, QueueRules, Relaxation
from callcenter.acd.states import TRANSITIONS, AgentEvent, AgentState

__all__ = [
    "TRANSITIONS",
    "AgentEvent",
    "AgentProfile",
    "AgentState",
    "AgentStateChange",
    "AuditEntry",
    "Engine",
    "InteractionRequest",
    "OfferDecision",
    "Policy",
    "QueueRules",
    "Relaxation",
]
