"""What the simulator needs from an ACD, and a small FIFO reference ACD.

The simulator plays the world (callers, agents, phones) and asks a
:class:`Dispatcher` what to do. :mod:`callcenter.wfm.acd_port` adapts the real
ACD core (``callcenter.acd``) to this protocol; :class:`FifoDispatcher` is a
minimal, obviously-correct dispatcher (longest-idle agent, oldest call first)
used to test the simulator on its own and as a reference for the real core.

Ids are small integers on this side; the adapter maps them to the ACD's ids.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from callcenter.errors import RoutingError

__all__ = ["Dispatcher", "FifoDispatcher", "OfferCall"]


@dataclass(frozen=True, slots=True)
class OfferCall:
    """Ring ``agent`` with ``call``."""

    call: int
    agent: int


class Dispatcher(Protocol):
    """The ACD as seen by the simulator. Every method returns the offers to make."""

    def add_queue(self, queue: int, name: str, skill: str, target_time: float = 20.0) -> None:
        """``target_time``: the queue's service-level threshold (seconds)."""
        ...

    def login(self, at: float, agent: int, skills: Mapping[str, int]) -> Sequence[OfferCall]: ...

    def logout(self, at: float, agent: int) -> Sequence[OfferCall]: ...

    def call_arrived(self, at: float, call: int, queue: int) -> Sequence[OfferCall]: ...

    def offer_answered(self, at: float, call: int, agent: int) -> Sequence[OfferCall]: ...

    def offer_not_answered(self, at: float, call: int, agent: int) -> Sequence[OfferCall]: ...

    def call_abandoned(self, at: float, call: int) -> Sequence[OfferCall]: ...

    def call_ended(self, at: float, call: int, agent: int) -> Sequence[OfferCall]: ...

    def wrapup_ended(self, at: float, agent: int) -> Sequence[OfferCall]: ...

    def next_deadline(self) -> float | None: ...

    def tick(self, at: float) -> Sequence[OfferCall]: ...


_NONE: tuple[OfferCall, ...] = ()


class FifoDispatcher:
    """Longest-idle eligible agent for a new call; oldest eligible call for a free agent.

    After a call ends the agent is in wrap-up until :meth:`wrapup_ended`. An
    agent who does not answer an offer goes back to ready (behind the others)
    and the call goes back to the head of its queue.
    """

    def __init__(self) -> None:
        self._queue_skill: dict[int, str] = {}
        self._waiting: dict[int, deque[tuple[float, int]]] = {}
        self._call_queue: dict[int, int] = {}
        self._call_arrival: dict[int, float] = {}
        self._gone: set[int] = set()
        self._skills: dict[int, frozenset[str]] = {}
        self._idle: dict[int, None] = {}  # insertion order = longest idle first
        self._busy: set[int] = set()  # ringing, talking or wrapping up
        self._wrapping: set[int] = set()
        self._ringing: dict[int, int] = {}  # call -> agent
        self._talking: dict[int, int] = {}  # call -> agent

    def add_queue(self, queue: int, name: str, skill: str, target_time: float = 20.0) -> None:
        self._queue_skill[queue] = skill
        self._waiting[queue] = deque()

    # ---------------------------------------------------------------- agents

    def login(self, at: float, agent: int, skills: Mapping[str, int]) -> Sequence[OfferCall]:
        if agent in self._skills:
            raise RoutingError(f"agent {agent} is already logged in")
        self._skills[agent] = frozenset(skills)
        return self._agent_free(agent)

    def logout(self, at: float, agent: int) -> Sequence[OfferCall]:
        if agent not in self._skills:
            raise RoutingError(f"agent {agent} is not logged in")
        if agent in self._busy and agent not in self._wrapping:
            raise RoutingError(f"agent {agent} cannot log out while on a call")
        self._busy.discard(agent)
        self._wrapping.discard(agent)
        del self._skills[agent]
        self._idle.pop(agent, None)
        return _NONE

    def wrapup_ended(self, at: float, agent: int) -> Sequence[OfferCall]:
        if agent not in self._wrapping:
            raise RoutingError(f"agent {agent} is not in wrap-up")
        self._wrapping.discard(agent)
        self._busy.discard(agent)
        return self._agent_free(agent)

    def _agent_free(self, agent: int) -> Sequence[OfferCall]:
        skills = self._skills[agent]
        best: tuple[float, int] | None = None
        best_queue = -1
        for queue, waiting in self._waiting.items():
            if self._queue_skill[queue] not in skills:
                continue
            while waiting and waiting[0][1] in self._gone:
                self._gone.discard(waiting.popleft()[1])
            if waiting and (best is None or waiting[0] < best):
                best, best_queue = waiting[0], queue
        if best is None:
            self._idle[agent] = None
            return _NONE
        self._waiting[best_queue].popleft()
        return (self._offer(best[1], agent),)

    def _offer(self, call: int, agent: int) -> OfferCall:
        self._busy.add(agent)
        self._ringing[call] = agent
        return OfferCall(call, agent)

    # ----------------------------------------------------------------- calls

    def call_arrived(self, at: float, call: int, queue: int) -> Sequence[OfferCall]:
        skill = self._queue_skill.get(queue)
        if skill is None:
            raise RoutingError(f"unknown queue {queue}")
        self._call_queue[call] = queue
        self._call_arrival[call] = at
        for agent in self._idle:
            if skill in self._skills[agent]:
                del self._idle[agent]
                return (self._offer(call, agent),)
        self._waiting[queue].append((at, call))
        return _NONE

    def offer_answered(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        if self._ringing.pop(call, None) != agent:
            raise RoutingError(f"call {call} was not offered to agent {agent}")
        self._talking[call] = agent
        return _NONE

    def offer_not_answered(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        if self._ringing.pop(call, None) != agent:
            raise RoutingError(f"call {call} was not offered to agent {agent}")
        self._busy.discard(agent)
        queue = self._call_queue[call]
        self._waiting[queue].appendleft((self._call_arrival[call], call))
        offers = list(self._dispatch_queue(queue, exclude=agent))
        self._idle[agent] = None  # ready again, behind everybody
        return offers

    def _dispatch_queue(self, queue: int, exclude: int) -> Sequence[OfferCall]:
        skill = self._queue_skill[queue]
        waiting = self._waiting[queue]
        for agent in self._idle:
            if agent != exclude and skill in self._skills[agent]:
                del self._idle[agent]
                return (self._offer(waiting.popleft()[1], agent),)
        return _NONE

    def call_abandoned(self, at: float, call: int) -> Sequence[OfferCall]:
        agent = self._ringing.pop(call, None)
        self._forget(call)
        if agent is None:
            self._gone.add(call)
            return _NONE
        self._busy.discard(agent)
        return self._agent_free(agent)

    def call_ended(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        if self._talking.pop(call, None) != agent:
            raise RoutingError(f"call {call} is not talking to agent {agent}")
        self._forget(call)
        self._wrapping.add(agent)
        return _NONE  # the agent stays busy until wrapup_ended

    def _forget(self, call: int) -> None:
        self._call_queue.pop(call, None)
        self._call_arrival.pop(call, None)

    def next_deadline(self) -> float | None:
        return None

    def tick(self, at: float) -> Sequence[OfferCall]:
        return _NONE
