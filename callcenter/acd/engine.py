"""The ACD engine, the facade: events with a time in, offers out. Pure.

Every method takes the time of the event (seconds of the injected clock) and
returns the offers to make now, as frozen :class:`OfferDecision` values
(``Offer(interaction, agent, reason)``). Everything else the engine decided
(RONA, relaxation, overflow, callback retry or failure...) is recorded with
its reason in :attr:`Engine.audit`, and handed once to whoever persists it
by :meth:`Engine.take_records`.

Which agent and which call: :mod:`callcenter.acd.router`. Agent states:
:mod:`callcenter.acd.states` (the one transition table). Relaxation and
overflow: :mod:`callcenter.acd.queues`. Expected wait:
:mod:`callcenter.acd.ewt`. Callbacks: :mod:`callcenter.acd.callbacks`.

An agent who does not answer (RONA) is paused "no answer"; the call goes
back to waiting with its original enqueue time, so it keeps its place, and
is offered at once to the next eligible agent.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from callcenter.acd.callbacks import CallbackPolicy, next_attempt
from callcenter.acd.ewt import HandleTimes, expected_wait
from callcenter.acd.messages import AgentProfile, Channel, InteractionRequest, OfferDecision
from callcenter.acd.model import LiveAgent, LiveInteraction, QueueStats
from callcenter.acd.queues import QueueRules, Requirement
from callcenter.acd.router import (
    AgentIndex,
    WaitingLines,
    best_call_for,
    eligible,
    pick_agent,
)
from callcenter.acd.states import TRANSITIONS, AgentEvent, AgentState, next_state
from callcenter.errors import ConfigError, RoutingError

__all__ = ["NO_ANSWER", "AgentStateChange", "AuditEntry", "Engine"]

NO_ANSWER = "no answer"

_BUSY = frozenset((AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP))
_READY = AgentState.READY
_LOGGED_OUT = AgentState.LOGGED_OUT
_ANSWER = AgentEvent.ANSWER


@dataclass(frozen=True, slots=True)
class AgentStateChange:
    agent_id: str
    state: str
    reason: str | None
    since: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One decision or fact, with why: ``reason`` is meant for people."""

    at: float
    kind: str
    interaction_id: str | None
    agent_id: str | None
    reason: str


class Engine:
    def __init__(
        self,
        queues: Iterable[QueueRules],
        *,
        audit_size: int = 10_000,
        callbacks: CallbackPolicy | None = None,
        records: bool = True,
    ) -> None:
        """``records=False``: keep no backlog for :meth:`take_records` (a
        simulation that never persists); :attr:`audit` is kept either way."""
        self.queues: dict[str, QueueRules] = {q.name: q for q in queues}
        for rules in self.queues.values():
            self._check_overflow(rules)
        self.callbacks = callbacks or CallbackPolicy()
        self.agents: dict[str, LiveAgent] = {}
        self.interactions: dict[str, LiveInteraction] = {}
        self.stats: dict[str, QueueStats] = {name: QueueStats() for name in self.queues}
        self.audit: deque[AuditEntry] = deque(maxlen=audit_size)
        # For the caller to persist: decisions and agent states since the
        # last take_records() (the engine itself never does I/O).
        self._records = records
        self._new_audit: list[AuditEntry] = []
        self._changed_agents: dict[str, None] = {}
        self._sequence = itertools.count()
        self._handle_times = {
            name: HandleTimes(rules.default_handle_time) for name, rules in self.queues.items()
        }
        self._index = AgentIndex()
        self._waiting = WaitingLines(self.queues)
        self._last_offer: dict[str, int] = {}
        self._offers = itertools.count()
        # Timers: (deadline, kind, key); stale entries are skipped on pop.
        self._timers: list[tuple[float, str, str]] = []

    def add_queue(self, rules: QueueRules) -> None:
        if rules.name in self.queues:
            raise ConfigError(f"queue {rules.name}: defined twice")
        self._check_overflow(rules, extra=rules.name)
        self.queues[rules.name] = rules
        self.stats[rules.name] = QueueStats()
        self._handle_times[rules.name] = HandleTimes(rules.default_handle_time)

    def _check_overflow(self, rules: QueueRules, extra: str = "") -> None:
        for step in rules.relaxations:
            target = step.overflow_to
            if target is not None and target not in self.queues and target != extra:
                raise ConfigError(f"queue {rules.name}: overflow to unknown queue {target!r}")

    # -------------------------------------------------------------- agents
    def agent_login(self, at: float, profile: AgentProfile) -> list[OfferDecision]:
        agent = self.agents.get(profile.agent_id)
        if agent is None:
            next_state(AgentState.LOGGED_OUT, AgentEvent.LOGIN)
            agent = self.agents[profile.agent_id] = LiveAgent(profile)
        else:
            next_state(agent.state, AgentEvent.LOGIN)  # refuse before changing the profile
            agent.profile = profile
        agent.month_count = max(agent.month_count, profile.month_handled)
        self._move(agent, AgentEvent.LOGIN, at)
        agent.logged_in_at = at
        agent.busy_seconds = 0.0
        return self._serve_agent(at, agent)

    def agent_ready(self, at: float, agent_id: str) -> list[OfferDecision]:
        agent = self._agent(agent_id)
        self._move(agent, AgentEvent.READY, at)
        return self._serve_agent(at, agent)

    def agent_pause(self, at: float, agent_id: str, reason: str) -> list[OfferDecision]:
        agent = self._agent(agent_id)
        if agent.state is AgentState.ON_CALL:
            self._move(agent, AgentEvent.PAUSE, at)
            agent.pending_pause = reason
            return []
        self._move(agent, AgentEvent.PAUSE, at)
        agent.pause_reason = reason
        agent.wrapup_until = None
        if agent.interaction is not None and agent.state is AgentState.PAUSED:
            agent.interaction = None  # paused out of wrap-up: the call is over
        return []

    def agent_logout(self, at: float, agent_id: str) -> list[OfferDecision]:
        agent = self._agent(agent_id)
        if agent.items:
            raise RoutingError(
                f"agent {agent_id!r} still holds {len(agent.items)} chat/e-mail interactions"
            )
        self._move(agent, AgentEvent.LOGOUT, at)
        agent.wrapup_until = None
        agent.interaction = None
        return []

    def agent_state(self, agent_id: str) -> str:
        return self._agent(agent_id).state.value

    def wrapup_ended(self, at: float, agent_id: str) -> list[OfferDecision]:
        return self._end_wrapup(at, self._agent(agent_id))

    def new_month(self, at: float) -> list[OfferDecision]:
        """Extended agents' monthly counts start again; they may serve at once."""
        for agent in self.agents.values():
            agent.month_count = 0
        self._log(at, "new_month", None, None, "extended agents' monthly counts reset")
        return self.redispatch(at)

    # -------------------------------------------------------- interactions
    def interaction_arrived(self, at: float, request: InteractionRequest) -> list[OfferDecision]:
        if request.queue not in self.queues:
            raise RoutingError(f"unknown queue {request.queue!r}")
        if request.interaction_id in self.interactions:
            raise RoutingError(f"interaction {request.interaction_id!r} is already queued")
        enqueued = request.enqueued_at if request.enqueued_at is not None else at
        call = LiveInteraction(request, enqueued, next(self._sequence))
        self.interactions[request.interaction_id] = call
        self.stats[call.queue].arrived += 1
        self._waiting.add(call)
        for step in self.queues[request.queue].relaxations:
            if enqueued + step.after > at:
                heapq.heappush(self._timers, (enqueued + step.after, "relax", call.interaction_id))
        self._arm_window(at, call)
        if call.not_before is not None and call.not_before > at:
            return []
        return self._serve_call(at, call)

    def adopt(
        self, at: float, request: InteractionRequest, profile: AgentProfile
    ) -> list[OfferDecision]:
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
        return []

    def offer_answered(self, at: float, interaction_id: str, agent_id: str) -> list[OfferDecision]:
        call, agent = self._offer_pair(interaction_id, agent_id)
        if call.channel == Channel.VOICE:
            self._move(agent, AgentEvent.ANSWER, at)
        else:
            agent.answered_at = at
        call.offered_to = None
        call.answered_by = agent_id
        stats = self.stats[call.queue]
        stats.answered += 1
        stats.answered_extended += agent.extended
        wait = at - call.enqueued_at
        stats.wait_answered += wait
        stats.answered_in_sl += wait <= self.queues[call.queue].sl_threshold
        self._log(at, "answered", interaction_id, agent_id, f"answered after {wait:.1f} s")
        return []

    def offer_failed(
        self, at: float, interaction_id: str, agent_id: str, reason: str = NO_ANSWER
    ) -> list[OfferDecision]:
        """Ring-no-answer or busy (RONA): the agent is paused "no answer" (an
        empty desk must not get the next call), the call goes back to the head
        of its place (same enqueue time) and is offered to the next agent."""
        call, agent = self._offer_pair(interaction_id, agent_id)
        if call.channel == Channel.VOICE:
            self._move(agent, AgentEvent.NO_ANSWER, at)
            agent.interaction = None
        else:
            if agent.state is AgentState.READY or agent.state is AgentState.PAUSED:
                self._move(agent, AgentEvent.PAUSE, at)
            del agent.items[interaction_id]
        agent.pause_reason = NO_ANSWER
        self._withdraw(agent, call)
        call.declined_by.add(agent_id)
        self.stats[call.queue].rona += 1
        self._log(at, "rona", interaction_id, agent_id, f"{reason}; agent paused '{NO_ANSWER}'")
        return self._serve_call(at, call)

    def offer_cancelled(
        self, at: float, interaction_id: str, agent_id: str, reason: str
    ) -> list[OfferDecision]:
        """The offer could not be placed (Asterisk unreachable): not the agent's
        fault, so the agent is ready again; the call keeps its place. No new
        offer is made now (it would fail the same way): call
        :meth:`redispatch` once telephony is back."""
        call, agent = self._offer_pair(interaction_id, agent_id)
        if call.channel == Channel.VOICE:
            self._move(agent, AgentEvent.CANCEL, at)
            agent.interaction = None
        else:
            del agent.items[interaction_id]
        self._withdraw(agent, call)
        self._log(at, "cancelled", interaction_id, agent_id, reason)
        self._expire_if_past(at, call)  # its "expire" timer went by while it rang
        return []

    def redispatch(self, at: float) -> list[OfferDecision]:
        """Offer waiting calls to every ready agent (after telephony recovers)."""
        offers: list[OfferDecision] = []
        for agent in sorted(self._index.ready.values(), key=lambda a: a.idle_since):
            offers += self._serve_agent(at, agent)
        return offers

    def interaction_abandoned(self, at: float, interaction_id: str) -> list[OfferDecision]:
        call = self._interaction(interaction_id)
        if call.answered_by is not None:
            raise RoutingError(
                f"interaction {interaction_id!r} was answered: it ends, it is not abandoned"
            )
        del self.interactions[interaction_id]
        self._waiting.remove(interaction_id)
        self.stats[call.queue].abandoned += 1
        self._log(at, "abandoned", interaction_id, call.offered_to, "caller left")
        if call.offered_to is None:
            return []
        agent = self._agent(call.offered_to)
        if agent.extended:
            agent.month_count -= 1  # the offer never became an interaction
        if call.channel == Channel.VOICE:
            self._move(agent, AgentEvent.CANCEL, at)
            agent.interaction = None
        else:
            del agent.items[interaction_id]
        return self._serve_agent(at, agent)

    def interaction_ended(self, at: float, interaction_id: str) -> list[OfferDecision]:
        call = self._interaction(interaction_id)
        if call.answered_by is None:
            raise RoutingError(f"interaction {interaction_id!r} ended but was never answered")
        agent = self._agent(call.answered_by)
        rules = self.queues[call.queue]
        if call.channel != Channel.VOICE:
            # Chats and e-mails have no wrap-up of their own: the slot is free.
            del self.interactions[interaction_id]
            del agent.items[interaction_id]
            agent.handled += 1
            self._log(at, "ended", interaction_id, agent.agent_id, "slot freed")
            return self._serve_agent(at, agent)
        self._move(agent, AgentEvent.END, at)  # raises before anything changes
        del self.interactions[interaction_id]
        agent.handled += 1
        talk = at - agent.answered_at if agent.answered_at is not None else 0.0
        agent.answered_at = None
        self._handle_times[call.queue].add(talk + rules.wrapup)
        self._start_wrapup(at, agent, rules)
        self._log(at, "ended", interaction_id, agent.agent_id, f"wrap-up {rules.wrapup:.0f} s")
        if rules.wrapup <= 0:
            # No wrap-up: free for the next caller now, in this decision,
            # not at a timer a loop iteration later.
            return self._end_wrapup(at, agent)
        return []

    def interaction_set_aside(self, at: float, interaction_id: str) -> list[OfferDecision]:
        """The customer is busy with something else for a while (a caller
        choosing a callback): it keeps its place and its enqueue time, but
        is offered to nobody until :meth:`interaction_back`. Raises
        RoutingError, changing nothing, unless it is waiting."""
        call = self._interaction(interaction_id)
        if not call.waiting or call.aside:
            raise RoutingError(
                f"interaction {interaction_id!r} is not waiting: cannot set it aside"
            )
        call.aside = True
        self._waiting.remove(interaction_id)
        self._log(at, "set_aside", interaction_id, None, "offered to nobody meanwhile")
        return []

    def interaction_back(self, at: float, interaction_id: str) -> list[OfferDecision]:
        """Back from :meth:`interaction_set_aside`, in its old place: served now
        if an agent is free (its timers that fell meanwhile took effect)."""
        call = self._interaction(interaction_id)
        if not call.aside:
            raise RoutingError(f"interaction {interaction_id!r} was not set aside")
        call.aside = False
        self._waiting.add(call)
        self._log(at, "back", interaction_id, None, f"waited {at - call.enqueued_at:.0f} s")
        return self._serve_call(at, call)

    # ----------------------------------------------------------- callbacks
    def callback_requested(
        self,
        at: float,
        interaction_id: str,
        not_before: float | None = None,
        not_after: float | None = None,
    ) -> list[OfferDecision]:
        """A waiting caller asks to be called back: they hang up but keep their
        place (enqueue time), optionally within a window."""
        call = self._interaction(interaction_id)
        if not call.waiting:
            raise RoutingError(f"interaction {interaction_id!r} is not waiting")
        if not_before is not None and not_after is not None and not_after <= not_before:
            raise RoutingError(f"callback window of {interaction_id!r} is empty")
        if call.aside:
            call.aside = False
            self._waiting.add(call)
        call.kind = "callback"
        call.not_before = not_before
        call.not_after = not_after
        self._log(at, "callback", interaction_id, None, _window(not_before, not_after))
        self._arm_window(at, call)
        return self._serve_call(at, call)

    def callback_failed(self, at: float, interaction_id: str, outcome: str) -> list[OfferDecision]:
        """The agent took the callback but the customer did not answer (or was
        busy): the agent goes to wrap-up, the callback waits for its next
        attempt with its place kept, or fails after the last one."""
        call = self._interaction(interaction_id)
        if call.answered_by is None or call.kind != "callback":
            raise RoutingError(f"interaction {interaction_id!r} is not a callback being dialled")
        agent = self._agent(call.answered_by)
        if call.channel == Channel.VOICE:
            self._move(agent, AgentEvent.END, at)
            self._start_wrapup(at, agent, self.queues[call.queue])
        else:
            del agent.items[interaction_id]
        agent.answered_at = None
        call.attempt += 1
        retry = next_attempt(self.callbacks, call.attempt, outcome, at)
        if retry is None or (call.not_after is not None and retry >= call.not_after):
            del self.interactions[interaction_id]
            self.stats[call.queue].callbacks_failed += 1
            self._log(
                at, "callback_failed", interaction_id, agent.agent_id,
                f"{outcome} on attempt {call.attempt}; no attempt left",
            )  # fmt: skip
            return self._serve_agent(at, agent) if call.channel != Channel.VOICE else []
        call.answered_by = None
        call.not_before = retry
        self._waiting.add(call)
        self._arm_window(at, call)
        self._log(
            at, "callback_retry", interaction_id, agent.agent_id,
            f"{outcome} on attempt {call.attempt}; next at {retry:.0f}, place kept",
        )  # fmt: skip
        return self._serve_agent(at, agent) if call.channel != Channel.VOICE else []

    # --------------------------------------------------------------- time
    def next_deadline(self) -> float | None:
        while self._timers and not self._timer_live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def tick(self, at: float) -> list[OfferDecision]:
        offers: list[OfferDecision] = []
        while self._timers and self._timers[0][0] <= at:
            timer = heapq.heappop(self._timers)
            if not self._timer_live(timer):
                continue
            _deadline, kind, key = timer
            if kind == "wrapup":
                offers += self._end_wrapup(at, self.agents[key])
                continue
            call = self.interactions[key]
            if kind != "ring" and not call.waiting:
                continue  # ringing: if it comes back, it is served as it is then
            if kind == "ring":
                assert call.offered_to is not None
                offers += self.offer_failed(at, key, call.offered_to, "ring timeout")
            elif kind == "expire":
                self._expire(at, call)
            else:
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
        if call is None:
            return False
        if kind == "ring":
            timeout = self.queues[call.queue].ring_timeout
            return (
                call.offered_to is not None
                and call.offered_at is not None
                and timeout is not None
                and call.offered_at + timeout == deadline
            )
        # A ringing call may come back (RONA): its future steps must survive
        # (tick() skips them while it is not waiting).
        if kind == "expire":
            return call.answered_by is None and call.not_after == deadline
        return call.answered_by is None

    # ---------------------------------------------------------- estimates
    def position(self, interaction_id: str) -> int:
        call = self._interaction(interaction_id)
        if interaction_id not in self._waiting:
            return 1  # ringing or talking: it is at the head (announcements may ask)
        return self._waiting.position(call.queue, interaction_id)

    def expected_wait(self, at: float, interaction_id: str) -> float | None:
        """See :mod:`callcenter.acd.ewt`."""
        call = self._interaction(interaction_id)
        req = self._req(call, at)
        staffed = sum(
            1 for agent in self._index.logged_for(req.skills) if _serves(agent, call, req)
        )
        return expected_wait(
            self.position(interaction_id), staffed, self._handle_times[call.queue].mean
        )

    def can_take(self, agent_id: str, interaction_id: str, at: float) -> bool:
        """Would routing give this waiting call to this agent if both were alone?"""
        agent = self._agent(agent_id)
        call = self._interaction(interaction_id)
        return agent.state is AgentState.READY and eligible(agent, call, self._req(call, at), at)

    def waiting_count(self) -> int:
        return len(self._waiting)

    # ------------------------------------------------------------ routing
    def _req(self, call: LiveInteraction, at: float) -> Requirement:
        return call.requirement(self.queues[call.request.queue], self.queues[call.queue], at)

    def _serve_call(self, at: float, call: LiveInteraction) -> list[OfferDecision]:
        if not call.waiting or call.aside:
            return []
        if self._expire_if_past(at, call):  # back from RONA after its window closed
            return []
        req = self._req(call, at)
        if req.overflow_to is not None and req.overflow_to != call.queue:
            self._overflow(at, call, req.overflow_to)
            req = self._req(call, at)
        if call.not_before is not None and at < call.not_before:
            return []
        rules = self.queues[call.queue]
        choice = pick_agent(
            rules.policy, self._index.ready_for(req.skills), call, req, at, self._last_offer
        )
        if choice is None:
            return []
        return [self._offer(at, call, choice.agent, choice.reason)]

    def _serve_agent(self, at: float, agent: LiveAgent) -> list[OfferDecision]:
        offers: list[OfferDecision] = []
        # A voice offer makes the agent reserved; chats and e-mails leave them
        # ready, so take more while there is room.
        while agent.state is AgentState.READY:
            choice = best_call_for(agent, at, self._waiting, self._req)
            if choice is None:
                break
            if self._expire_if_past(at, choice.call):
                continue  # its window closed (its timer went by while it rang): never offered
            offers.append(self._offer(at, choice.call, agent, choice.reason))
        return offers

    def _offer(
        self, at: float, call: LiveInteraction, agent: LiveAgent, reason: str
    ) -> OfferDecision:
        interaction_id = call.interaction_id
        if call.channel == Channel.VOICE:
            self._move(agent, AgentEvent.OFFER, at)
            agent.interaction = interaction_id
        else:
            agent.items[interaction_id] = call.channel
        self._waiting.remove(interaction_id)
        call.offered_to = agent.agent_id
        call.offered_at = at
        if agent.profile.extended:
            agent.month_count += 1  # counted now so that the cap holds with offers in flight
        self._last_offer[agent.agent_id] = next(self._offers)
        self.stats[call.queue].offered += 1
        timeout = self.queues[call.queue].ring_timeout
        if timeout is not None:
            heapq.heappush(self._timers, (at + timeout, "ring", interaction_id))
        self._log(at, "offer", interaction_id, agent.agent_id, reason)
        return OfferDecision(interaction_id, agent.agent_id, reason)

    def _withdraw(self, agent: LiveAgent, call: LiveInteraction) -> None:
        """An offer that did not become an interaction: the call waits again."""
        if agent.extended:
            agent.month_count -= 1
        call.offered_to = None
        call.offered_at = None
        self._waiting.add(call)

    def _overflow(self, at: float, call: LiveInteraction, target: str) -> None:
        self._waiting.remove(call.interaction_id)
        source = call.queue
        call.move_to(target, self.queues[target].skills)
        self._waiting.add(call)
        self.stats[source].overflowed_out += 1
        self.stats[target].overflowed_in += 1
        self._log(
            at, "overflow", call.interaction_id, None,
            f"waited {at - call.enqueued_at:.0f} s in {source}: now in {target}, place kept",
        )  # fmt: skip

    def _expire(self, at: float, call: LiveInteraction) -> None:
        self._waiting.remove(call.interaction_id)
        del self.interactions[call.interaction_id]
        self.stats[call.queue].callbacks_expired += 1
        self._log(at, "expired", call.interaction_id, None, "callback window closed")

    def _expire_if_past(self, at: float, call: LiveInteraction) -> bool:
        """A waiting call whose window has closed is expired (True), whatever
        became of its "expire" timer (consumed while it rang)."""
        if call.not_after is None or at < call.not_after:
            return False
        self._expire(at, call)
        return True

    def _arm_window(self, at: float, call: LiveInteraction) -> None:
        if call.not_before is not None and call.not_before > at:
            heapq.heappush(self._timers, (call.not_before, "due", call.interaction_id))
            self._log(at, "scheduled", call.interaction_id, None, f"due at {call.not_before:.0f}")
        if call.not_after is not None:
            heapq.heappush(self._timers, (call.not_after, "expire", call.interaction_id))

    def _start_wrapup(self, at: float, agent: LiveAgent, rules: QueueRules) -> None:
        agent.wrapup_until = at + rules.wrapup
        if agent.wrapup_until != math.inf:  # inf: ended by wrapup_ended() only
            heapq.heappush(self._timers, (agent.wrapup_until, "wrapup", agent.agent_id))

    def _end_wrapup(self, at: float, agent: LiveAgent) -> list[OfferDecision]:
        # Only out of wrap-up, refused before anything changes: an agent on a
        # call with a pause pending must keep the call (found by hypothesis).
        next_state(agent.state, AgentEvent.WRAPUP_DONE)
        if agent.pending_pause is not None:
            next_state(agent.state, AgentEvent.PAUSE)
            reason, agent.pending_pause = agent.pending_pause, None
            self._move(agent, AgentEvent.PAUSE, at)
            agent.pause_reason = reason
            agent.wrapup_until = None
            agent.interaction = None
            return []
        self._move(agent, AgentEvent.WRAPUP_DONE, at)
        agent.wrapup_until = None
        agent.interaction = None
        return self._serve_agent(at, agent)

    # ------------------------------------------------------------ helpers
    def _move(self, agent: LiveAgent, event: AgentEvent, at: float) -> None:
        old = agent.state
        new = TRANSITIONS.get((old, event))
        if new is None:
            next_state(old, event)  # raises before anything changes
            return
        # An agent's states follow one another in time even when a caller
        # hands in an instant taken before the last change (a restart
        # restoring a pause after the login): stored rows are ordered by it.
        at = max(at, agent.since)
        if old in _BUSY:
            agent.busy_seconds += at - agent.since
        if new is not old:
            agent.state = new
            agent.since = at
        if self._records:
            self._changed_agents[agent.agent_id] = None
        if new is _READY:
            if old is not _READY:
                agent.idle_since = at
                agent.pause_reason = None
                self._index.add_ready(agent)
        elif old is _READY:
            self._index.remove_ready(agent)
        if old is _LOGGED_OUT:
            self._index.add_logged(agent)
        elif new is _LOGGED_OUT:
            self._index.remove_logged(agent)
        if event is _ANSWER:
            agent.answered_at = at

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
        if self._records:
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


def _serves(agent: LiveAgent, call: LiveInteraction, req: Requirement) -> bool:
    """Counts towards the staff of ``call`` (whatever the agent does now)."""
    named = call.request.agent_id
    if named is not None and named != agent.agent_id:
        return False
    if call.request.language not in agent.profile.languages:
        return False
    if agent.profile.extended and not req.extended:
        return False
    skills = agent.profile.skills
    return all(skills.get(skill, 0) >= level for skill, level in req.skills.items())


def _window(not_before: float | None, not_after: float | None) -> str:
    if not_before is None and not_after is None:
        return "call back as soon as an agent is free; place kept"
    start = "now" if not_before is None else f"{not_before:.0f}"
    end = "open" if not_after is None else f"{not_after:.0f}"
    return f"call back between {start} and {end}; place kept"
