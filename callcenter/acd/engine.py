"""The ACD engine: events with a time in, offers out. Pure: no I/O, no clock.

Two decisions, both recorded in :attr:`Engine.audit` with their reason:

* **A call arrives** (or waits longer and relaxes its requirements): among
  the *ready* agents who have every required skill at the required level and
  speak the call's language, the queue's policy picks one:
  ``longest_idle`` (default; ties: higher proficiency), ``best_proficiency``
  (sum of levels in the required skills; ties: longest idle),
  ``least_occupied`` (lowest busy/logged-in ratio), ``round_robin`` (the
  agent offered a call least recently).

* **An agent becomes ready**: among the waiting calls this agent may take,
  in every queue, the one with the highest

      score = priority * 1000 + wait / sl_threshold(queue)

  i.e. priority first (VIP), then the wait measured in units of the queue's
  service-level threshold, so that a call about to miss a 20 s target comes
  before one at 40 s of a 120 s target. Ties: the earliest arrival.

An agent who does not answer (RONA) is paused "no answer"; the call goes
back to waiting with its original enqueue time, so it keeps its place, and is
offered at once to the next eligible agent.

Expected wait (EWT): ``position * AHT / staffed`` where ``position`` counts
the waiting calls of the same queue ahead of this one (plus itself),
``staffed`` the logged-in agents eligible for the call, and AHT the mean of
the queue's last 50 handle times (talk + wrap-up; the queue's default until
there are any). It is an estimate for announcements, not a promise.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from callcenter.acd.messages import AgentProfile, InteractionRequest, OfferDecision
from callcenter.acd.model import LiveAgent, LiveInteraction, Policy, QueueRules
from callcenter.acd.states import AgentEvent, AgentState, next_state
from callcenter.errors import RoutingError

__all__ = ["AgentStateChange", "AuditEntry", "Engine"]

NO_ANSWER = "no answer"
_PRIORITY_WEIGHT = 1000.0


@dataclass(frozen=True, slots=True)
class AgentStateChange:
    agent_id: str
    state: str
    reason: str | None
    since: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    kind: str
    interaction_id: str | None
    agent_id: str | None
    reason: str


class Engine:
    def __init__(self, queues: Iterable[QueueRules], *, audit_size: int = 10_000) -> None:
        self.queues: dict[str, QueueRules] = {q.name: q for q in queues}
        self.agents: dict[str, LiveAgent] = {}
        self.interactions: dict[str, LiveInteraction] = {}
        self.audit: deque[AuditEntry] = deque(maxlen=audit_size)
        # For the caller to persist: decisions and agent states since the
        # last take_records() (the engine itself never does I/O).
        self._new_audit: list[AuditEntry] = []
        self._changed_agents: dict[str, None] = {}
        self._sequence = itertools.count()
        self._handle_times: dict[str, deque[float]] = {}
        # Per queue, the waiting calls in service order (priority, then
        # arrival): an agent's next call is the best head among its queues.
        self._waiting: dict[str, list[tuple[tuple[float, float, int], str]]] = {
            name: [] for name in self.queues
        }
        # The skill names every waiting call of a queue requires, when they
        # all require the same ones (the usual case): lets an agent skip a
        # whole queue it has no skill for instead of walking its line.
        self._uniform: dict[str, frozenset[str] | None] = {}
        self._last_offer: dict[str, int] = {}
        self._offers = itertools.count()
        # Timers: (deadline, kind, key); stale entries are skipped on pop.
        self._timers: list[tuple[float, str, str]] = []

    # -------------------------------------------------------------- agents
    def agent_login(self, at: float, profile: AgentProfile) -> Sequence[OfferDecision]:
        agent = self.agents.get(profile.agent_id)
        if agent is None:
            agent = self.agents[profile.agent_id] = LiveAgent(profile)
        else:
            agent.profile = profile
        self._move(agent, AgentEvent.LOGIN, at)
        agent.logged_in_at = at
        agent.busy_seconds = 0.0
        return self._serve_agent(at, agent)

    def agent_ready(self, at: float, agent_id: str) -> Sequence[OfferDecision]:
        agent = self._agent(agent_id)
        self._move(agent, AgentEvent.READY, at)
        return self._serve_agent(at, agent)

    def agent_pause(self, at: float, agent_id: str, reason: str) -> Sequence[OfferDecision]:
        agent = self._agent(agent_id)
        if agent.state is AgentState.ON_CALL:
            self._move(agent, AgentEvent.PAUSE, at)
            agent.pending_pause = reason
            return ()
        self._move(agent, AgentEvent.PAUSE, at)
        agent.pause_reason = reason
        agent.wrapup_until = None
        return ()

    def agent_logout(self, at: float, agent_id: str) -> Sequence[OfferDecision]:
        agent = self._agent(agent_id)
        self._move(agent, AgentEvent.LOGOUT, at)
        agent.wrapup_until = None
        return ()

    def agent_state(self, agent_id: str) -> str:
        return self._agent(agent_id).state.value

    def wrapup_ended(self, at: float, agent_id: str) -> Sequence[OfferDecision]:
        agent = self._agent(agent_id)
        return self._end_wrapup(at, agent)

    # -------------------------------------------------------- interactions
    def interaction_arrived(
        self, at: float, request: InteractionRequest
    ) -> Sequence[OfferDecision]:
        if request.queue not in self.queues:
            raise RoutingError(f"unknown queue {request.queue!r}")
        if request.interaction_id in self.interactions:
            raise RoutingError(f"interaction {request.interaction_id!r} is already queued")
        enqueued = request.enqueued_at if request.enqueued_at is not None else at
        call = LiveInteraction(request, enqueued, next(self._sequence))
        self.interactions[request.interaction_id] = call
        self._enqueue(call)
        for step in self.queues[request.queue].relaxations:
            heapq.heappush(self._timers, (enqueued + step.after, "relax", call.interaction_id))
        if request.not_before is not None and request.not_before > at:
            heapq.heappush(self._timers, (request.not_before, "due", call.interaction_id))
            self._log(
                at, "scheduled", call.interaction_id, None, f"due at {request.not_before:.0f}"
            )
            return []
        return self._serve_call(at, call)

    def adopt(
        self, at: float, request: InteractionRequest, profile: AgentProfile
    ) -> Sequence[OfferDecision]:
        """A call already connected to this agent (found on Asterisk after a
        restart): record it as answered by them, whatever they were doing."""
        if request.interaction_id in self.interactions:
            raise RoutingError(f"interaction {request.interaction_id!r} is already known")
        if request.queue not in self.queues:
            raise RoutingError(f"unknown queue {request.queue!r}")
        agent = self.agents.get(profile.agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OUT:
            self.agent_login(at, profile)
            agent = self.agents[profile.agent_id]
        if agent.state is AgentState.PAUSED:
            self._move(agent, AgentEvent.READY, at)
        if agent.state is not AgentState.READY:
            raise RoutingError(f"agent {profile.agent_id!r} is {agent.state.value}, not free")
        call = LiveInteraction(request, request.enqueued_at or at, next(self._sequence))
        self.interactions[request.interaction_id] = call
        self._move(agent, AgentEvent.OFFER, at)
        self._move(agent, AgentEvent.ANSWER, at)
        agent.interaction = call.interaction_id
        call.answered_by = agent.agent_id
        self._log(at, "adopted", call.interaction_id, agent.agent_id, "connected before a restart")
        return ()

    def offer_answered(
        self, at: float, interaction_id: str, agent_id: str
    ) -> Sequence[OfferDecision]:
        call, agent = self._offer_pair(interaction_id, agent_id)
        self._move(agent, AgentEvent.ANSWER, at)
        call.offered_to = None
        call.answered_by = agent_id
        self._log(at, "answered", interaction_id, agent_id, "agent answered")
        return ()

    def offer_failed(
        self, at: float, interaction_id: str, agent_id: str, reason: str
    ) -> Sequence[OfferDecision]:
        call, agent = self._offer_pair(interaction_id, agent_id)
        self._move(agent, AgentEvent.NO_ANSWER, at)
        agent.pause_reason = NO_ANSWER
        call.offered_to = None
        call.declined_by.add(agent_id)
        self._enqueue(call)
        self._log(at, "rona", interaction_id, agent_id, f"{reason}; agent paused '{NO_ANSWER}'")
        return self._serve_call(at, call)

    def offer_cancelled(
        self, at: float, interaction_id: str, agent_id: str, reason: str
    ) -> Sequence[OfferDecision]:
        """The offer could not be placed (Asterisk unreachable): not the agent's
        fault, so the agent is ready again; the call keeps its place. No new
        offer is made now (it would fail the same way): call
        :meth:`redispatch` once telephony is back."""
        call, agent = self._offer_pair(interaction_id, agent_id)
        self._move(agent, AgentEvent.CANCEL, at)
        agent.interaction = None
        call.offered_to = None
        self._enqueue(call)
        self._log(at, "cancelled", interaction_id, agent_id, reason)
        return ()

    def redispatch(self, at: float) -> Sequence[OfferDecision]:
        """Offer waiting calls to every ready agent (after telephony recovers)."""
        offers: list[OfferDecision] = []
        for agent in sorted(self.agents.values(), key=lambda a: a.idle_since):
            offers += self._serve_agent(at, agent)
        return offers

    def interaction_abandoned(self, at: float, interaction_id: str) -> Sequence[OfferDecision]:
        call = self._interaction(interaction_id)
        if call.answered_by is not None:
            raise RoutingError(
                f"interaction {interaction_id!r} was answered: it ends, it is not abandoned"
            )
        del self.interactions[interaction_id]
        if call.waiting:
            self._dequeue(call)
        self._log(at, "abandoned", interaction_id, call.offered_to, "caller left")
        if call.offered_to is not None:
            agent = self._agent(call.offered_to)
            self._move(agent, AgentEvent.CANCEL, at)
            agent.interaction = None
            return self._serve_agent(at, agent)
        return ()

    def interaction_ended(self, at: float, interaction_id: str) -> Sequence[OfferDecision]:
        call = self._interaction(interaction_id)
        if call.answered_by is None:
            raise RoutingError(f"interaction {interaction_id!r} ended but was never answered")
        agent = self._agent(call.answered_by)
        del self.interactions[interaction_id]
        self._move(agent, AgentEvent.END, at)
        agent.handled += 1
        rules = self.queues[call.request.queue]
        agent.wrapup_until = at + rules.wrapup
        talk = at - agent.answered_at if agent.answered_at is not None else 0.0
        agent.answered_at = None
        self._remember_handle_time(rules, talk + rules.wrapup)
        heapq.heappush(self._timers, (agent.wrapup_until, "wrapup", agent.agent_id))
        self._log(at, "ended", interaction_id, agent.agent_id, f"wrap-up {rules.wrapup:.0f} s")
        return ()

    # --------------------------------------------------------------- time
    def next_deadline(self) -> float | None:
        while self._timers and not self._timer_live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def tick(self, at: float) -> Sequence[OfferDecision]:
        offers: list[OfferDecision] = []
        while self._timers and self._timers[0][0] <= at:
            timer = heapq.heappop(self._timers)
            if not self._timer_live(timer):
                continue
            _deadline, kind, key = timer
            if kind == "wrapup":
                offers += self._end_wrapup(at, self.agents[key])
            else:
                call = self.interactions[key]
                what = "relaxed" if kind == "relax" else "due"
                self._log(at, what, key, None, f"waited {at - call.enqueued_at:.0f} s")
                offers += self._serve_call(at, call)
        return offers

    def _timer_live(self, timer: tuple[float, str, str]) -> bool:
        deadline, kind, key = timer
        if kind == "wrapup":
            agent = self.agents.get(key)
            return (
                agent is not None
                and agent.state is AgentState.WRAP_UP
                and agent.wrapup_until == deadline
            )
        call = self.interactions.get(key)
        return call is not None and call.waiting

    # ---------------------------------------------------------- estimates
    def position(self, interaction_id: str) -> int:
        call = self._interaction(interaction_id)
        line = self._waiting[call.request.queue]
        return bisect.bisect_left(line, (_order(call), call.interaction_id)) + 1

    def expected_wait(self, at: float, interaction_id: str) -> float | None:
        call = self._interaction(interaction_id)
        rules = self.queues[call.request.queue]
        required = call.required(rules, at)
        staffed = sum(
            1
            for agent in self.agents.values()
            if agent.state is not AgentState.LOGGED_OUT and _eligible(agent, call, required, at)
        )
        if staffed == 0:
            return None
        times = self._handle_times.get(rules.name)
        aht = sum(times) / len(times) if times else rules.default_handle_time
        return self.position(interaction_id) * aht / staffed

    # ------------------------------------------------------------ routing
    def _serve_call(self, at: float, call: LiveInteraction) -> list[OfferDecision]:
        rules = self.queues[call.request.queue]
        required = call.required(rules, at)
        candidates = [
            agent
            for agent in self.agents.values()
            if agent.state is AgentState.READY and _eligible(agent, call, required, at)
        ]
        if not candidates:
            return []
        agent = min(candidates, key=lambda a: self._rank(rules.policy, a, required, at))
        reason = f"policy {rules.policy.value} among {len(candidates)} ready eligible agents"
        return [self._offer(at, call, agent, reason)]

    def _serve_agent(self, at: float, agent: LiveAgent) -> list[OfferDecision]:
        if agent.state is not AgentState.READY:
            return []
        best: tuple[float, int] | None = None
        chosen: LiveInteraction | None = None
        for queue, line in self._waiting.items():
            if not line:
                continue
            names = self._uniform.get(queue)
            if names is not None and any(agent.level(skill) == 0 for skill in names):
                continue
            rules = self.queues[queue]
            # Within a queue, service order is score order (same threshold):
            # the first call this agent may take is the queue's best for it.
            for _key, interaction_id in line:
                call = self.interactions[interaction_id]
                if not _eligible(agent, call, call.required(rules, at), at):
                    continue
                score = (
                    call.request.priority * _PRIORITY_WEIGHT
                    + (at - call.enqueued_at) / rules.sl_threshold
                )
                key = (-score, call.sequence)
                if best is None or key < best:
                    best, chosen = key, call
                break
        if chosen is None:
            return []
        assert best is not None
        reason = f"highest score {-best[0]:.2f} (priority*1000 + wait/SL threshold)"
        return [self._offer(at, chosen, agent, reason)]

    def _rank(
        self, policy: Policy, agent: LiveAgent, required: Mapping[str, int], at: float
    ) -> tuple[float, ...]:
        proficiency = sum(agent.level(skill) for skill in required)
        if policy is Policy.BEST_PROFICIENCY:
            return (-proficiency, agent.idle_since)
        if policy is Policy.LEAST_OCCUPIED:
            return (agent.occupancy(at), agent.idle_since)
        if policy is Policy.ROUND_ROBIN:
            return (self._last_offer.get(agent.agent_id, -1), agent.idle_since)
        return (agent.idle_since, -proficiency)

    def _offer(
        self, at: float, call: LiveInteraction, agent: LiveAgent, reason: str
    ) -> OfferDecision:
        self._move(agent, AgentEvent.OFFER, at)
        self._dequeue(call)
        agent.interaction = call.interaction_id
        call.offered_to = agent.agent_id
        self._last_offer[agent.agent_id] = next(self._offers)
        self._log(at, "offer", call.interaction_id, agent.agent_id, reason)
        return OfferDecision(call.interaction_id, agent.agent_id, reason)

    def _end_wrapup(self, at: float, agent: LiveAgent) -> list[OfferDecision]:
        if agent.pending_pause is not None:
            reason, agent.pending_pause = agent.pending_pause, None
            self._move(agent, AgentEvent.PAUSE, at)
            agent.pause_reason = reason
            agent.wrapup_until = None
            return []
        self._move(agent, AgentEvent.WRAPUP_DONE, at)
        agent.wrapup_until = None
        agent.interaction = None
        return self._serve_agent(at, agent)

    # ------------------------------------------------------------ helpers
    def _move(self, agent: LiveAgent, event: AgentEvent, at: float) -> None:
        new = next_state(agent.state, event)  # raises before anything changes
        old = agent.state
        if old in (AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP):
            agent.busy_seconds += at - agent.since
        if new is not old:
            agent.state = new
            agent.since = at
        self._changed_agents[agent.agent_id] = None
        if new is AgentState.READY and old is not AgentState.READY:
            agent.idle_since = at
            agent.pause_reason = None
        if event is AgentEvent.ANSWER:
            agent.answered_at = at

    def _enqueue(self, call: LiveInteraction) -> None:
        queue = call.request.queue
        line = self._waiting[queue]
        names = frozenset(call.request.skills)
        if not line:
            self._uniform[queue] = names
        elif self._uniform.get(queue) != names:
            self._uniform[queue] = None
        bisect.insort(line, (_order(call), call.interaction_id))

    def _dequeue(self, call: LiveInteraction) -> None:
        line = self._waiting[call.request.queue]
        entry = (_order(call), call.interaction_id)
        index = bisect.bisect_left(line, entry)
        if index < len(line) and line[index] == entry:
            del line[index]

    def _remember_handle_time(self, rules: QueueRules, seconds: float) -> None:
        self._handle_times.setdefault(rules.name, deque(maxlen=50)).append(seconds)

    def _offer_pair(self, interaction_id: str, agent_id: str) -> tuple[LiveInteraction, LiveAgent]:
        call = self._interaction(interaction_id)
        agent = self._agent(agent_id)
        if call.offered_to != agent_id:
            raise RoutingError(
                f"interaction {interaction_id!r} is not offered to {agent_id!r} "
                f"(offered to {call.offered_to!r})"
            )
        return call, agent

    def _agent(self, agent_id: str) -> LiveAgent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise RoutingError(f"unknown agent {agent_id!r}") from None

    def _interaction(self, interaction_id: str) -> LiveInteraction:
        try:
            return self.interactions[interaction_id]
        except KeyError:
            raise RoutingError(f"unknown interaction {interaction_id!r}") from None

    def _log(
        self, at: float, kind: str, interaction_id: str | None, agent_id: str | None, reason: str
    ) -> None:
        entry = AuditEntry(at, kind, interaction_id, agent_id, reason)
        self.audit.append(entry)
        self._new_audit.append(entry)

    def take_records(self) -> tuple[list[AuditEntry], list[AgentStateChange]]:
        """Decisions and agent states (as they are now) since the last call."""
        audit, self._new_audit = self._new_audit, []
        changed, self._changed_agents = self._changed_agents, {}
        states = [
            AgentStateChange(a.agent_id, a.state.value, a.pause_reason or a.pending_pause, a.since)
            for a in (self.agents[agent_id] for agent_id in changed)
        ]
        return audit, states


def _order(call: LiveInteraction) -> tuple[float, float, int]:
    return (-call.request.priority, call.enqueued_at, call.sequence)


def _eligible(
    agent: LiveAgent, call: LiveInteraction, required: Mapping[str, int], at: float
) -> bool:
    if call.request.not_before is not None and at < call.request.not_before:
        return False
    if call.request.agent_id is not None and call.request.agent_id != agent.agent_id:
        return False
    if call.request.language not in agent.profile.languages:
        return False
    return all(agent.level(skill) >= level for skill, level in required.items())
