"""Discrete-event call-centre simulator driving an ACD through :class:`Dispatcher`.

The simulator plays the world: callers arrive (Poisson, piecewise-constant
rate per forecast interval), wait, abandon when their patience runs out;
agents log in and out with their shifts, ring for an answer delay (or do not
answer), talk for a handle time and wrap up. Routing is entirely the ACD's:
every world event is handed to the dispatcher and its offers are carried out.
The ACD's own timers are honoured through ``next_deadline()``/``tick()``.

One heap of ``(time, seq, kind, a, b)`` tuples; ``seq`` makes the order of
simultaneous events deterministic. Random draws come from per-purpose streams
derived from the scenario seed, so a run is reproducible.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callcenter.errors import StateError
from callcenter.wfm.dispatch import Dispatcher, FifoDispatcher, OfferCall
from callcenter.wfm.distributions import PoissonArrivals, RandomStream
from callcenter.wfm.scenario import Scenario

__all__ = ["SimulationResult", "simulate"]

# event kinds
_ARRIVE, _ABANDON, _ANSWER, _NO_ANSWER, _END, _WRAP_END, _SHIFT_START, _SHIFT_END, _TICK = range(9)
# call states
_WAITING, _RINGING, _TALKING, _DONE, _ABANDONED = range(5)
# agent states (as the world sees them)
_OFF, _IDLE, _RING, _TALK, _WRAP = range(5)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Raw outcome of one run; :mod:`callcenter.wfm.report` turns it into figures.

    Per call (index = call id): times are seconds from the start, NaN when the
    step did not happen. Per agent: seconds logged in and busy (ringing,
    talking or wrapping up), counted from ``scenario.warmup`` on.
    """

    scenario: Scenario
    arrival: FloatArray
    queue: IntArray
    first_offer: FloatArray
    answered: FloatArray
    ended: FloatArray
    abandoned: FloatArray
    agent: IntArray  # answering agent, -1 if none
    wrapup: FloatArray  # wrap-up seconds after the call, NaN if not answered
    agent_group: IntArray
    logged_seconds: FloatArray
    busy_seconds: FloatArray
    talk_seconds: FloatArray
    waiting_area: FloatArray  # [queue, bucket]: integral of waiting calls
    waiting_max: IntArray  # [queue, bucket]: most calls waiting at once
    sample_step: float
    end_time: float
    events: int  # world events handed to the dispatcher
    offers: int
    unanswered_offers: int


class _Waiting:
    """Calls waiting (not yet answered) per queue, as a step function in buckets."""

    def __init__(self, queues: int, step: float, buckets: int) -> None:
        self.step = step
        self.count = [0] * queues
        self.since = [0.0] * queues
        self.area = np.zeros((queues, buckets), dtype=np.float64)
        self.peak = np.zeros((queues, buckets), dtype=np.int64)

    def change(self, queue: int, t: float, delta: int) -> None:
        self._integrate(queue, t)
        self.count[queue] += delta
        bucket = min(int(t / self.step), self.peak.shape[1] - 1)
        if self.count[queue] > self.peak[queue, bucket]:
            self.peak[queue, bucket] = self.count[queue]

    def _integrate(self, queue: int, t: float) -> None:
        since, level = self.since[queue], self.count[queue]
        if level:
            step, last = self.step, self.area.shape[1] - 1
            while since < t:
                bucket = min(int(since / step), last)
                edge = t if bucket == last else min(t, (bucket + 1) * step)
                self.area[queue, bucket] += level * (edge - since)
                if bucket < last:
                    self.peak[queue, bucket + 1] = max(self.peak[queue, bucket + 1], level)
                since = edge
        self.since[queue] = t

    def close(self, t: float) -> None:
        for queue in range(len(self.count)):
            self._integrate(queue, t)


def _streams(seed: int, count: int) -> list[RandomStream]:
    children = np.random.SeedSequence(seed).spawn(count)
    return [RandomStream(child) for child in children]


def simulate(
    scenario: Scenario,
    dispatcher: Dispatcher | None = None,
    *,
    on_progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Run ``scenario`` through ``dispatcher`` (default: :class:`FifoDispatcher`).

    ``on_progress`` is called with the fraction of the day simulated so far
    (about a hundred times per run).
    """
    acd: Dispatcher = dispatcher if dispatcher is not None else FifoDispatcher()
    queues = scenario.queues
    n_queues = len(queues)
    interval = scenario.interval
    day_end = scenario.day_length
    stop_at = day_end + scenario.drain
    warmup = scenario.warmup
    for index, spec in enumerate(queues):
        acd.add_queue(index, spec.name, spec.skill, spec.target_time)

    # one stream per purpose and queue/group: changing one part of a scenario
    # does not shift the random numbers of the others
    n_groups = len(scenario.agents)
    streams = _streams(scenario.seed, 4 * n_queues + 2 * n_groups)
    arrival_rng = streams[0:n_queues]
    handle_rng = streams[n_queues : 2 * n_queues]
    patience_rng = streams[2 * n_queues : 3 * n_queues]
    wrapup_rng = streams[3 * n_queues : 4 * n_queues]
    answer_rng = streams[4 * n_queues : 4 * n_queues + n_groups]
    no_answer_rng = streams[4 * n_queues + n_groups :]

    heap: list[tuple[float, int, int, int, int]] = []
    seq = 0

    def push(t: float, kind: int, a: int, b: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, a, b))

    # ------------------------------------------------------------ arrivals
    arrivals = [
        PoissonArrivals(spec.calls, interval, arrival_rng[i]) for i, spec in enumerate(queues)
    ]

    for queue in range(n_queues):
        first = arrivals[queue].next_after(0.0)
        if first < day_end:
            push(first, _ARRIVE, queue)

    # -------------------------------------------------------------- agents
    agent_group: list[int] = []
    for g, group in enumerate(scenario.agents):
        for _ in range(group.count):
            agent = len(agent_group)
            agent_group.append(g)
            shifts = group.shifts or ((0.0, math.inf),)
            for begin, end in shifts:
                push(max(0.0, begin), _SHIFT_START, agent)
                if math.isfinite(end):
                    push(end, _SHIFT_END, agent)
    n_agents = len(agent_group)
    skills = [dict(scenario.agents[g].skills) for g in agent_group]
    a_state = [_OFF] * n_agents
    a_call = [-1] * n_agents
    leaving = [False] * n_agents
    logged_since = [0.0] * n_agents
    busy_since = [0.0] * n_agents
    logged_total = [0.0] * n_agents
    busy_total = [0.0] * n_agents
    talk_total = [0.0] * n_agents

    # --------------------------------------------------------------- calls
    c_arrival: list[float] = []
    c_queue: list[int] = []
    c_state: list[int] = []
    c_offer: list[float] = []
    c_answer: list[float] = []
    c_end: list[float] = []
    c_abandon: list[float] = []
    c_agent: list[int] = []
    c_ring: list[int] = []  # agent currently ringing, -1
    c_wrap: list[float] = []
    nan = math.nan
    live_calls = 0

    buckets = math.ceil(stop_at / scenario.sample_step) + 1
    waiting = _Waiting(n_queues, scenario.sample_step, buckets)

    events = offers_made = unanswered = 0

    def span(begin: float, end: float) -> float:
        begin = max(begin, warmup)
        return end - begin if end > begin else 0.0

    def end_busy(agent: int, t: float) -> None:
        busy_total[agent] += span(busy_since[agent], t)

    def apply(offers: Sequence[OfferCall], t: float) -> None:
        nonlocal offers_made
        for offer in offers:
            call, agent = offer.call, offer.agent
            if not 0 <= call < len(c_state) or c_state[call] != _WAITING:
                raise StateError(f"the ACD offered call {call}, which is not waiting")
            if not 0 <= agent < n_agents or a_state[agent] != _IDLE:
                raise StateError(f"the ACD offered call {call} to agent {agent}, who is not idle")
            offers_made += 1
            c_state[call] = _RINGING
            c_ring[call] = agent
            if c_offer[call] != c_offer[call]:  # NaN: first offer
                c_offer[call] = t
            a_state[agent] = _RING
            a_call[agent] = call
            busy_since[agent] = t
            group = scenario.agents[agent_group[agent]]
            if (
                group.no_answer > 0
                and no_answer_rng[agent_group[agent]].uniform() < group.no_answer
            ):
                push(t + group.ring_timeout, _NO_ANSWER, call, agent)
            else:
                delay = group.answer_delay.sample(answer_rng[agent_group[agent]])
                push(t + delay, _ANSWER, call, agent)

    def agent_idle(agent: int, t: float) -> None:
        """The agent's phone is free again: log out if the shift is over."""
        a_state[agent] = _IDLE
        a_call[agent] = -1
        end_busy(agent, t)

    def log_out(agent: int, t: float) -> None:
        nonlocal events
        events += 1
        apply(acd.logout(t, agent), t)
        a_state[agent] = _OFF
        leaving[agent] = False
        logged_total[agent] += span(logged_since[agent], t)

    def finish_wrapup(agent: int, t: float) -> None:
        nonlocal events
        a_state[agent] = _IDLE
        a_call[agent] = -1
        end_busy(agent, t)
        if leaving[agent]:
            log_out(agent, t)
        else:
            events += 1
            apply(acd.wrapup_ended(t, agent), t)

    deadline_at = math.inf

    def schedule_tick() -> None:
        nonlocal deadline_at
        deadline = acd.next_deadline()
        if deadline is not None and deadline < deadline_at:
            deadline_at = deadline
            push(deadline, _TICK, 0)

    progress_step = day_end / 100.0 if on_progress is not None and day_end > 0 else math.inf
    next_progress = progress_step
    t = 0.0
    heappop = heapq.heappop

    while heap:
        t, _, kind, a, b = heappop(heap)
        if t > stop_at:
            t = stop_at
            break
        if t >= next_progress and on_progress is not None:
            on_progress(min(1.0, t / day_end))
            next_progress = (math.floor(t / progress_step) + 1) * progress_step

        if kind == _ARRIVE:
            queue = a
            spec = queues[queue]
            call = len(c_state)
            c_arrival.append(t)
            c_queue.append(queue)
            c_state.append(_WAITING)
            c_offer.append(nan)
            c_answer.append(nan)
            c_end.append(nan)
            c_abandon.append(nan)
            c_agent.append(-1)
            c_ring.append(-1)
            c_wrap.append(nan)
            live_calls += 1
            waiting.change(queue, t, +1)
            if spec.patience is not None:
                push(t + spec.patience.sample(patience_rng[queue]), _ABANDON, call)
            nxt = arrivals[queue].next_after(t)
            if nxt < day_end:
                push(nxt, _ARRIVE, queue)
            events += 1
            apply(acd.call_arrived(t, call, queue), t)

        elif kind == _ANSWER:
            call, agent = a, b
            if c_state[call] != _RINGING or c_ring[call] != agent:
                continue  # the caller hung up while it rang
            c_state[call] = _TALKING
            c_ring[call] = -1
            c_answer[call] = t
            c_agent[call] = agent
            a_state[agent] = _TALK
            waiting.change(c_queue[call], t, -1)
            handle = queues[c_queue[call]].handle.sample(handle_rng[c_queue[call]])
            push(t + handle, _END, call, agent)
            events += 1
            apply(acd.offer_answered(t, call, agent), t)

        elif kind == _END:
            call, agent = a, b
            c_state[call] = _DONE
            c_end[call] = t
            live_calls -= 1
            talk_total[agent] += span(c_answer[call], t)
            wrap = queues[c_queue[call]].wrapup.sample(wrapup_rng[c_queue[call]])
            c_wrap[call] = wrap
            a_state[agent] = _WRAP
            events += 1
            apply(acd.call_ended(t, call, agent), t)
            if wrap > 0:
                push(t + wrap, _WRAP_END, agent)
            else:
                finish_wrapup(agent, t)

        elif kind == _WRAP_END:
            finish_wrapup(a, t)

        elif kind == _ABANDON:
            call = a
            state = c_state[call]
            if state != _WAITING and state != _RINGING:
                continue
            c_state[call] = _ABANDONED
            c_abandon[call] = t
            live_calls -= 1
            waiting.change(c_queue[call], t, -1)
            agent = c_ring[call]
            if agent >= 0:
                c_ring[call] = -1
                agent_idle(agent, t)
            events += 1
            apply(acd.call_abandoned(t, call), t)
            if agent >= 0 and leaving[agent] and a_state[agent] == _IDLE:
                log_out(agent, t)

        elif kind == _NO_ANSWER:
            call, agent = a, b
            if c_state[call] != _RINGING or c_ring[call] != agent:
                continue
            unanswered += 1
            c_state[call] = _WAITING
            c_ring[call] = -1
            agent_idle(agent, t)
            events += 1
            apply(acd.offer_not_answered(t, call, agent), t)
            if leaving[agent] and a_state[agent] == _IDLE:
                log_out(agent, t)

        elif kind == _SHIFT_START:
            agent = a
            if a_state[agent] != _OFF:
                leaving[agent] = False  # back-to-back shifts: stays on
            else:
                a_state[agent] = _IDLE
                logged_since[agent] = t
                events += 1
                apply(acd.login(t, agent, skills[agent]), t)

        elif kind == _SHIFT_END:
            agent = a
            if a_state[agent] == _IDLE:
                log_out(agent, t)
            elif a_state[agent] != _OFF:
                leaving[agent] = True

        else:  # _TICK
            if t != deadline_at:
                continue
            deadline_at = math.inf
            events += 1
            apply(acd.tick(t), t)

        schedule_tick()
        if live_calls == 0 and t >= day_end:
            break  # arrivals are only scheduled before day_end: the day is over

    end_time = max(t, day_end)
    waiting.close(end_time)
    for agent in range(n_agents):
        if a_state[agent] != _OFF:
            logged_total[agent] += span(logged_since[agent], end_time)
            if a_state[agent] != _IDLE:
                end_busy(agent, end_time)
    if on_progress is not None:
        on_progress(1.0)

    return SimulationResult(
        scenario=scenario,
        arrival=np.array(c_arrival, dtype=np.float64),
        queue=np.array(c_queue, dtype=np.int64),
        first_offer=np.array(c_offer, dtype=np.float64),
        answered=np.array(c_answer, dtype=np.float64),
        ended=np.array(c_end, dtype=np.float64),
        abandoned=np.array(c_abandon, dtype=np.float64),
        agent=np.array(c_agent, dtype=np.int64),
        wrapup=np.array(c_wrap, dtype=np.float64),
        agent_group=np.array(agent_group, dtype=np.int64),
        logged_seconds=np.array(logged_total, dtype=np.float64),
        busy_seconds=np.array(busy_total, dtype=np.float64),
        talk_seconds=np.array(talk_total, dtype=np.float64),
        waiting_area=waiting.area,
        waiting_max=waiting.peak,
        sample_step=scenario.sample_step,
        end_time=end_time,
        events=events,
        offers=offers_made,
        unanswered_offers=unanswered,
    )
