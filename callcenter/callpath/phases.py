"""The phases of an interaction on the call path: the one transition table.

An event not in the table for the current phase raises
:class:`IllegalTransition` and changes nothing.

    waiting    offered -> ringing, abandoned -> abandoned,
               left_for_callback -> callback, expired -> expired
    ringing    answered -> connected, customer_dialing -> dialing,
               rona -> waiting, not_placed -> waiting, abandoned -> abandoned
    dialing    customer_answered -> connected, retry -> waiting,
               attempts_exhausted -> failed
    connected  hung_up -> completed

``completed``, ``abandoned``, ``callback``, ``failed`` and ``expired`` are
finished: no event leaves them. An interaction starts ``waiting``; a call
adopted after a restart (found bridged on Asterisk) starts ``connected``.

``offered``: the ACD gave it to an agent, whose phone rings (agent first).
``answered``: the agent answered a caller's interaction.
``customer_dialing``: the agent answered a callback; the customer is dialled.
``customer_answered``: the callback's customer answered.
``rona``: ring-no-answer, busy or the agent leg ended unanswered; it waits again.
``not_placed``: the Originate could not be placed (not the agent's fault).
``abandoned``: the caller hung up while waiting or ringing.
``hung_up``: either side ended the conversation.
``left_for_callback``: the waiting caller asked to be called back.
``retry``: a callback attempt ended without the customer; another one later.
``attempts_exhausted``: no attempt left (or none fits in the callback's window).
``expired``: a callback's window closed while it was waiting (the ACD dropped it).
"""

from __future__ import annotations

from enum import StrEnum

from callcenter.errors import IllegalTransition

__all__ = ["FINISHED", "TRANSITIONS", "Phase", "PhaseEvent", "next_phase"]


class Phase(StrEnum):
    WAITING = "waiting"
    RINGING = "ringing"
    DIALING = "dialing"
    """A callback: the agent answered, the customer is being dialled."""
    CONNECTED = "connected"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    CALLBACK = "callback"
    """The caller left the queue asking to be called back."""
    FAILED = "failed"
    """A callback that reached its last attempt without the customer."""
    EXPIRED = "expired"
    """A callback whose window closed before an agent took it."""


class PhaseEvent(StrEnum):
    OFFERED = "offered"
    ANSWERED = "answered"
    CUSTOMER_DIALING = "customer_dialing"
    CUSTOMER_ANSWERED = "customer_answered"
    RONA = "rona"
    NOT_PLACED = "not_placed"
    ABANDONED = "abandoned"
    HUNG_UP = "hung_up"
    LEFT_FOR_CALLBACK = "left_for_callback"
    RETRY = "retry"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    EXPIRED = "expired"


P, E = Phase, PhaseEvent

TRANSITIONS: dict[tuple[Phase, PhaseEvent], Phase] = {
    (P.WAITING, E.OFFERED): P.RINGING,
    (P.WAITING, E.ABANDONED): P.ABANDONED,
    (P.WAITING, E.LEFT_FOR_CALLBACK): P.CALLBACK,
    (P.WAITING, E.EXPIRED): P.EXPIRED,
    (P.RINGING, E.ANSWERED): P.CONNECTED,
    (P.RINGING, E.CUSTOMER_DIALING): P.DIALING,
    (P.RINGING, E.RONA): P.WAITING,
    (P.RINGING, E.NOT_PLACED): P.WAITING,
    (P.RINGING, E.ABANDONED): P.ABANDONED,
    (P.DIALING, E.CUSTOMER_ANSWERED): P.CONNECTED,
    (P.DIALING, E.RETRY): P.WAITING,
    (P.DIALING, E.ATTEMPTS_EXHAUSTED): P.FAILED,
    (P.CONNECTED, E.HUNG_UP): P.COMPLETED,
}

FINISHED = frozenset({P.COMPLETED, P.ABANDONED, P.CALLBACK, P.FAILED, P.EXPIRED})
"""Phases no event leaves: the interaction is over."""


def next_phase(phase: Phase, event: PhaseEvent) -> Phase:
    """The phase after ``event``; raises IllegalTransition if the table forbids it."""
    try:
        return TRANSITIONS[(phase, event)]
    except KeyError:
        raise IllegalTransition("call", phase.value, event.value) from None
