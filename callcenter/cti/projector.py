"""From what the call path reports to what desktops are told. Pure.

The call path already reports every agent state change and every step of an
interaction (the statistics events of :mod:`callcenter.stats.events`); the
projector turns them into CTI events on the agent's own stream and on the
supervisors' stream. The agent's state machine drives the agent's screen:
``reserved`` is the ring (with the screen-pop), ``on_call`` the answer,
``wrap_up`` the hang-up with its countdown, and leaving ``reserved`` for
anything else means the offer went away (caller hung up, ring timeout).

The views (what a call or an agent looks like on screen) are computed by the
daemon from its live state and handed in through :class:`Views`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from callcenter.cti.journal import SUPERVISORS, agent_stream
from callcenter.stats.events import (
    Abandoned,
    AgentStateChanged,
    Answered,
    CallbackClosed,
    CallbackRequested,
    Ended,
    Offered,
    StatsEvent,
    Transferred,
)


class Views(Protocol):
    def agent(self, agent_id: str) -> dict[str, Any]:
        """The agent as a desktop shows it (state, since, reason, wrap-up end)."""

    def interaction_of(self, agent_id: str) -> str | None:
        """The interaction ringing, talking or in wrap-up at this agent."""

    def screen_pop(self, interaction_id: str) -> dict[str, Any] | None:
        """Everything known about the interaction for the agent's screen."""

    def queue(self, name: str) -> dict[str, Any]:
        """Waiting calls, longest wait... of one queue (wallboard)."""

    def queue_of(self, interaction_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Publication:
    stream: str
    at: float
    kind: str
    data: dict[str, Any]


class Projector:
    def __init__(self, views: Views) -> None:
        self._views = views
        self._ringing: dict[str, str] = {}  # agent -> interaction offered to them
        self._serving: dict[str, str] = {}  # interaction -> agent on call / wrap-up

    def apply(self, event: StatsEvent) -> list[Publication]:
        """What the desktops are told of ``event``; queue figures aside
        (:meth:`touched_queue`)."""
        if isinstance(event, AgentStateChanged):
            return self._agent_changed(event)
        if isinstance(event, Transferred):
            agent = self._serving.get(event.interaction_id)
            if agent is not None:
                data = {"interaction": event.interaction_id}
                return [Publication(agent_stream(agent), event.at, "call.transferred", data)]
        return []

    def touched_queue(self, event: StatsEvent) -> str | None:
        """The queue whose figures (waiting, longest wait...) ``event`` changes.

        Not a publication: the bridge sends a queue's figures a moment later,
        once for a burst of changes, rather than recounting the queue's calls
        for each event on the way to every ring."""
        if isinstance(event, Offered):
            return event.queue
        if isinstance(
            event, Abandoned | CallbackRequested | CallbackClosed | Answered | Ended | Transferred
        ):
            return self._views.queue_of(event.interaction_id)
        return None

    def queue_update(self, queue: str, at: float) -> Publication:
        return Publication(SUPERVISORS, at, "queue.update", self._views.queue(queue))

    def _agent_changed(self, event: AgentStateChanged) -> list[Publication]:
        agent, at, state = event.agent_id, event.at, event.state
        view = self._views.agent(agent)
        own = agent_stream(agent)
        out = [
            Publication(own, at, "agent.state", view),
            Publication(SUPERVISORS, at, "agent.state", view),
        ]
        offered = self._ringing.pop(agent, None)
        current = self._views.interaction_of(agent)
        if state == "reserved" and current is not None:
            self._ringing[agent] = current
            pop = self._views.screen_pop(current) or {"interaction": current}
            out.append(Publication(own, at, "call.ringing", pop))
            seen = {"interaction": current, "agent": agent}
            seen |= {k: pop[k] for k in ("queue", "number") if k in pop}
            out.append(Publication(SUPERVISORS, at, "call.ringing", seen))
        elif state == "on_call" and current is not None:
            self._serving[current] = agent
            data: dict[str, Any] = {"interaction": current, "agent": agent}
            out.append(Publication(own, at, "call.answered", data))
            out.append(Publication(SUPERVISORS, at, "call.answered", data))
        elif state == "wrap_up" and current is not None:
            self._serving.pop(current, None)
            data = {
                "interaction": current,
                "agent": agent,
                "wrapup_until": view.get("wrapup_until"),
            }
            out.append(Publication(own, at, "call.ended", data))
            out.append(Publication(SUPERVISORS, at, "call.ended", data))
        elif offered is not None:
            # Left "reserved" without answering: the offer is gone.
            data = {"interaction": offered, "agent": agent}
            out.append(Publication(own, at, "call.cancelled", data))
            out.append(Publication(SUPERVISORS, at, "call.cancelled", data))
        if state not in ("reserved", "on_call", "wrap_up"):
            # Ended without wrap-up (none configured, or logged out mid-call).
            for interaction, who in list(self._serving.items()):
                if who == agent:
                    del self._serving[interaction]
                    data = {"interaction": interaction, "agent": agent, "wrapup_until": None}
                    out.append(Publication(own, at, "call.ended", data))
                    out.append(Publication(SUPERVISORS, at, "call.ended", data))
        return out
