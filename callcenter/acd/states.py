"""The agent state machine: the one transition table.

An event not in the table for the current state raises
:class:`IllegalTransition` and changes nothing.

    logged_out  login -> ready
    ready       pause -> paused, logout -> logged_out, offer -> reserved
    reserved    answer -> on_call, no_answer -> paused, cancel -> ready
    on_call     pause -> on_call*, end -> wrap_up
    wrap_up     pause -> paused, logout -> logged_out, wrapup_done -> ready
    paused      ready -> ready, pause -> paused, logout -> logged_out

``*`` a pause asked during a call is remembered and taken when the call's
wrap-up ends (the engine does that; the state stays ``on_call``).
``cancel``: the caller hung up while the agent's phone rang.
``no_answer``: ring-no-answer (RONA) or busy; the agent is paused with the
reason "no answer" so the ACD stops offering calls to an empty desk.
"""

from __future__ import annotations

from enum import StrEnum

from callcenter.errors import IllegalTransition


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class AgentEvent(StrEnum):
    LOGIN = "login"
    READY = "ready"
    PAUSE = "pause"
    LOGOUT = "logout"
    OFFER = "offer"
    ANSWER = "answer"
    NO_ANSWER = "no_answer"
    CANCEL = "cancel"
    END = "end"
    WRAPUP_DONE = "wrapup_done"


S, E = AgentState, AgentEvent

TRANSITIONS: dict[tuple[AgentState, AgentEvent], AgentState] = {
    (S.LOGGED_OUT, E.LOGIN): S.READY,
    (S.READY, E.PAUSE): S.PAUSED,
    (S.READY, E.LOGOUT): S.LOGGED_OUT,
    (S.READY, E.OFFER): S.RESERVED,
    (S.RESERVED, E.ANSWER): S.ON_CALL,
    (S.RESERVED, E.NO_ANSWER): S.PAUSED,
    (S.RESERVED, E.CANCEL): S.READY,
    (S.ON_CALL, E.PAUSE): S.ON_CALL,
    (S.ON_CALL, E.END): S.WRAP_UP,
    (S.WRAP_UP, E.PAUSE): S.PAUSED,
    (S.WRAP_UP, E.LOGOUT): S.LOGGED_OUT,
    (S.WRAP_UP, E.WRAPUP_DONE): S.READY,
    (S.PAUSED, E.READY): S.READY,
    (S.PAUSED, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.LOGOUT): S.LOGGED_OUT,
}


def next_state(state: AgentState, event: AgentEvent) -> AgentState:
    """The state after ``event``; raises IllegalTransition if the table forbids it."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("agent", state.value, event.value) from None
