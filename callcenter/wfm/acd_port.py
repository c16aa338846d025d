"""The real ACD core (:mod:`callcenter.acd`) as the simulator's :class:`Dispatcher`.

The simulator numbers calls, agents and queues from 0; the engine takes
string ids, so call ``n`` is ``"n"`` and agent ``k`` is ``"k"`` (the engine
never assumes ids are numbers; the port does, because it made them).

What the simulated world owns and the engine must not decide by itself:

* **wrap-up**: the simulator draws its length and says when it ends, so the
  engine's queues have an infinite wrap-up (no timer of their own);
* **ring timeout**: the simulator decides when an offer is given up, so the
  engine has none either;
* **RONA**: the engine pauses the agent "no answer" and re-offers the call
  at once; a simulated agent is back at their desk straight after, so the
  port makes them ready again (behind every other ready agent, since their
  idle time restarts), as :class:`FifoDispatcher` does.

Queue rules can be given per queue name (policy, relaxation steps, overflow,
priority of nothing else); by default a queue is one skill at level 1 with
its scenario's SL threshold and the longest-idle policy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from callcenter.acd import AgentProfile, Engine, InteractionRequest, OfferDecision, QueueRules
from callcenter.wfm.dispatch import OfferCall

__all__ = ["AcdDispatcher"]

_NONE: tuple[OfferCall, ...] = ()


class AcdDispatcher:
    """:class:`callcenter.wfm.dispatch.Dispatcher` on top of :class:`callcenter.acd.Engine`."""

    def __init__(
        self,
        rules: Mapping[str, QueueRules] | None = None,
        *,
        skills: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """``rules``: per queue name, rules to use instead of the defaults
        (their wrap-up and ring timeout are replaced: the simulator owns
        those). ``skills``: per queue name, the required skills and levels
        (default: the queue's skill at level 1)."""
        self.engine = Engine((), records=False)
        self._rules = dict(rules or {})
        self._skills = dict(skills or {})
        self._queue_names: list[str] = []
        self._required: list[dict[str, int]] = []

    def add_queue(self, queue: int, name: str, skill: str, target_time: float = 20.0) -> None:
        if queue != len(self._queue_names):
            raise ValueError("queues must be added in order 0, 1, 2, ...")
        base = self._rules.get(name) or QueueRules(name, sl_threshold=target_time)
        self.engine.add_queue(dataclasses.replace(base, wrapup=math.inf, ring_timeout=None))
        self._queue_names.append(name)
        self._required.append(dict(self._skills.get(name) or {skill: 1}))

    # ---------------------------------------------------------------- agents

    def login(self, at: float, agent: int, skills: Mapping[str, int]) -> Sequence[OfferCall]:
        return _offers(self.engine.agent_login(at, AgentProfile(str(agent), dict(skills))))

    def logout(self, at: float, agent: int) -> Sequence[OfferCall]:
        return _offers(self.engine.agent_logout(at, str(agent)))

    def wrapup_ended(self, at: float, agent: int) -> Sequence[OfferCall]:
        return _offers(self.engine.wrapup_ended(at, str(agent)))

    # ----------------------------------------------------------------- calls

    def call_arrived(self, at: float, call: int, queue: int) -> Sequence[OfferCall]:
        request = InteractionRequest(str(call), self._queue_names[queue], self._required[queue])
        return _offers(self.engine.interaction_arrived(at, request))

    def offer_answered(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        return _offers(self.engine.offer_answered(at, str(call), str(agent)))

    def offer_not_answered(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        offers = self.engine.offer_failed(at, str(call), str(agent), "ring timeout")
        return _offers(offers + self.engine.agent_ready(at, str(agent)))

    def call_abandoned(self, at: float, call: int) -> Sequence[OfferCall]:
        return _offers(self.engine.interaction_abandoned(at, str(call)))

    def call_ended(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        return _offers(self.engine.interaction_ended(at, str(call)))

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        return self.engine.next_deadline()

    def tick(self, at: float) -> Sequence[OfferCall]:
        return _offers(self.engine.tick(at))


def _offers(decisions: list[OfferDecision]) -> Sequence[OfferCall]:
    if not decisions:
        return _NONE
    return [OfferCall(int(d.interaction_id), int(d.agent_id)) for d in decisions]
