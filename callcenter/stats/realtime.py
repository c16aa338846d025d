"""Real-time statistics fed by events, read by the Prometheus exporter.

Pure: time comes from the events and from the injected clock (for "how long
has the oldest caller waited now" and the sliding windows). Every counter
is updated when its event arrives, so a read (a scrape) mostly copies
counts: its cost grows with queues and skills, not with agents; only the
sliding-window service levels walk the answers and abandons of the last hour.

A statistics core must never break a call: an event that does not fit (an
unknown interaction, a duplicate) is counted in ``ignored_events`` and
otherwise ignored, rather than raised into the call path.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from callcenter.clock import Clock
from callcenter.stats.events import (
    Abandoned,
    AgentStateChanged,
    Answered,
    CallbackClosed,
    CallbackRequested,
    CallbacksPending,
    Ended,
    IvrNodeExited,
    Offered,
    RecordingWritten,
    SpeechNoMatch,
    StatsEvent,
    Transferred,
    WrapUpEnded,
)
from callcenter.stats.model import InteractionRecord, Outcome, StatsConfig

WAIT_BUCKETS: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
"""Seconds: the usual service-level thresholds (10/20/30/60 s...) are bounds,
so "answered within T" can be read off the histogram exactly."""
HANDLE_BUCKETS: tuple[float, ...] = (30, 60, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 3600)
WINDOWS: tuple[int, ...] = (300, 900, 3600)
_CLOSED = frozenset(("failed", "expired"))
"""The outcomes of :class:`CallbackClosed`."""


def window_label(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class QueueCounters:
    """Monotonic counts since start for one (queue, skill)."""

    queue: str
    skill: str
    offered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    abandoned_in_sl: int
    short_abandoned: int
    callbacks: int
    transferred: int
    callbacks_failed: int = 0
    """Callbacks that ended with no attempt left (:class:`CallbackClosed`)."""
    callbacks_expired: int = 0
    """Callbacks whose window closed before an agent took them."""


@dataclass(frozen=True, slots=True)
class Histogram:
    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    """Observations <= each bound (same length as ``bounds``)."""
    count: int
    total: float


@dataclass(frozen=True, slots=True)
class QueueNow:
    queue: str
    threshold: float
    waiting: int
    longest_wait: float
    service_level: Mapping[str, float | None]
    """Window label ("5m", "15m", "1h") -> SL over the calls answered or
    abandoned in that window (None: no such call)."""
    service_level2: Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class RealtimeSnapshot:
    at: float
    counters: tuple[QueueCounters, ...]
    queues: tuple[QueueNow, ...]
    wait: Mapping[tuple[str, str], Histogram]
    """(queue, outcome "answered" | "abandoned") -> wait seconds."""
    handle: Mapping[str, Histogram]
    agents_by_state: Mapping[str, int]
    skill_agents: Mapping[tuple[str, str], int]
    """(skill, state) -> agents."""
    callbacks_pending: Mapping[str, int]
    ivr_exits: Mapping[tuple[str, str, str], int]
    speech_nomatch: Mapping[tuple[str, str], int]
    recordings: Mapping[str, int]
    ignored_events: int


class _Counters:
    __slots__ = (
        "abandoned",
        "abandoned_in_sl",
        "answered",
        "answered_in_sl",
        "callbacks",
        "callbacks_expired",
        "callbacks_failed",
        "offered",
        "short_abandoned",
        "transferred",
    )

    def __init__(self) -> None:
        self.offered = self.answered = self.answered_in_sl = 0
        self.abandoned = self.abandoned_in_sl = self.short_abandoned = 0
        self.callbacks = self.transferred = 0
        self.callbacks_failed = self.callbacks_expired = 0


class _Hist:
    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * len(bounds)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.bounds):
            self.buckets[index] += 1
        self.count += 1
        self.total += value

    def freeze(self) -> Histogram:
        cumulative: list[int] = []
        running = 0
        for n in self.buckets:
            running += n
            cumulative.append(running)
        return Histogram(self.bounds, tuple(cumulative), self.count, self.total)


@dataclass(slots=True)
class _Call:
    queue: str
    skill: str
    offered_at: float
    customer_id: str | None
    channel: str
    origin: str | None
    answered_at: float | None = None
    agent_id: str | None = None
    team: str = ""
    extended: bool = False
    ended_at: float | None = None
    hold: float = 0.0
    transferred: bool = False


@dataclass(slots=True)
class _Agent:
    state: str
    skills: tuple[str, ...]
    team: str
    extended: bool


@dataclass(slots=True)
class _Window:
    """Answers and (non-short) abandons of the last ``seconds``, with running
    sums: reading it costs the entries that aged out since, not a walk over
    every call of the window (27,000 at 30 calls/s over 15 minutes, which
    held the event loop tens of milliseconds at each wallboard refresh)."""

    seconds: int
    entries: deque[tuple[float, bool, bool]] = field(default_factory=deque)
    """(time, answered?, within T?), oldest first."""
    answered: int = 0
    answered_in: int = 0
    abandoned: int = 0
    abandoned_in: int = 0

    def add(self, at: float, answered: bool, in_sl: bool) -> None:
        self.entries.append((at, answered, in_sl))
        self._count(answered, in_sl, 1)

    def expire(self, now: float) -> None:
        start = now - self.seconds
        while self.entries and self.entries[0][0] <= start:
            _at, answered, in_sl = self.entries.popleft()
            self._count(answered, in_sl, -1)

    def _count(self, answered: bool, in_sl: bool, sign: int) -> None:
        if answered:
            self.answered += sign
            self.answered_in += sign * in_sl
        else:
            self.abandoned += sign
            self.abandoned_in += sign * in_sl


@dataclass(slots=True)
class _Queue:
    windows: tuple[_Window, ...]
    counters: dict[str, _Counters] = field(default_factory=dict)
    waiting: dict[str, float] = field(default_factory=dict)
    """Interaction id -> enqueue time, for calls not yet answered or gone."""


class RealtimeStats:
    def __init__(
        self,
        config: StatsConfig,
        clock: Clock,
        *,
        windows: Iterable[int] = WINDOWS,
        wait_buckets: tuple[float, ...] = WAIT_BUCKETS,
        handle_buckets: tuple[float, ...] = HANDLE_BUCKETS,
    ) -> None:
        self.config = config
        self._clock = clock
        self._windows = tuple(sorted(windows))
        self._wait_buckets = wait_buckets
        self._handle_buckets = handle_buckets
        self._queues: dict[str, _Queue] = {}
        self._calls: dict[str, _Call] = {}
        self._wait: dict[tuple[str, str], _Hist] = {}
        self._handle: dict[str, _Hist] = {}
        self._agents: dict[str, _Agent] = {}
        self._by_state: dict[str, int] = {}
        self._skill_state: dict[tuple[str, str], int] = {}
        self._callbacks_pending: dict[str, int] = {}
        self._ivr_exits: dict[tuple[str, str, str], int] = {}
        self._nomatch: dict[tuple[str, str], int] = {}
        self._recordings: dict[str, int] = {}
        self.ignored_events = 0

    # -- feeding ------------------------------------------------------------

    def declare_queue(self, queue: str, skills: Iterable[str] = ("",)) -> None:
        """Make a queue's series exist (at zero) before its first call, so
        dashboards and alerts see an idle queue, not a missing one."""
        q = self._queue(queue)
        for skill in skills:
            q.counters.setdefault(skill, _Counters())
        self._wait.setdefault((queue, "answered"), _Hist(self._wait_buckets))
        self._wait.setdefault((queue, "abandoned"), _Hist(self._wait_buckets))
        self._handle.setdefault(queue, _Hist(self._handle_buckets))

    def apply(self, event: StatsEvent) -> InteractionRecord | None:
        """Take one event; return the interaction's record when it is complete."""
        if isinstance(event, Offered):
            self._offered(event)
        elif isinstance(event, Answered):
            self._answered(event)
        elif isinstance(event, Abandoned):
            return self._left(event.interaction_id, event.at, Outcome.ABANDONED)
        elif isinstance(event, CallbackRequested):
            return self._left(event.interaction_id, event.at, Outcome.CALLBACK)
        elif isinstance(event, CallbackClosed):
            return self._callback_closed(event)
        elif isinstance(event, Transferred):
            call = self._calls.get(event.interaction_id)
            if call is None or call.answered_at is None or call.transferred:
                self.ignored_events += 1
            else:
                call.transferred = True
                self._queue(call.queue).counters[call.skill].transferred += 1
        elif isinstance(event, Ended):
            return self._ended(event)
        elif isinstance(event, WrapUpEnded):
            return self._wrapped(event)
        elif isinstance(event, AgentStateChanged):
            self._agent(event)
        elif isinstance(event, CallbacksPending):
            self._callbacks_pending[event.queue] = event.count
        elif isinstance(event, IvrNodeExited):
            key = (event.script, event.node, event.exit)
            self._ivr_exits[key] = self._ivr_exits.get(key, 0) + 1
        elif isinstance(event, SpeechNoMatch):
            pair = (event.script, event.node)
            self._nomatch[pair] = self._nomatch.get(pair, 0) + 1
        elif isinstance(event, RecordingWritten):
            self._recordings[event.queue] = self._recordings.get(event.queue, 0) + 1
        return None

    def _queue(self, queue: str) -> _Queue:
        q = self._queues.get(queue)
        if q is None:
            q = self._queues[queue] = _Queue(tuple(_Window(w) for w in self._windows))
        return q

    def _offered(self, event: Offered) -> None:
        if event.interaction_id in self._calls:
            self.ignored_events += 1
            return
        self.declare_queue(event.queue, (event.skill,))
        offered_at = event.at if event.enqueued_at is None else event.enqueued_at
        self._calls[event.interaction_id] = _Call(
            event.queue, event.skill, offered_at, event.customer_id, event.channel, event.origin
        )
        q = self._queues[event.queue]
        q.counters[event.skill].offered += 1
        q.waiting[event.interaction_id] = offered_at

    def _answered(self, event: Answered) -> None:
        call = self._calls.get(event.interaction_id)
        if call is None or call.answered_at is not None:
            self.ignored_events += 1
            return
        call.answered_at = max(event.at, call.offered_at)
        call.agent_id, call.team, call.extended = event.agent_id, event.team, event.extended
        wait = call.answered_at - call.offered_at
        q = self._queues[call.queue]
        q.waiting.pop(event.interaction_id, None)
        counters = q.counters[call.skill]
        counters.answered += 1
        in_sl = wait <= self.config.threshold(call.queue)
        counters.answered_in_sl += in_sl
        self._wait[(call.queue, "answered")].observe(wait)
        self._remember(q, event.at, True, in_sl)

    def _left(self, interaction_id: str, at: float, outcome: Outcome) -> InteractionRecord | None:
        call = self._calls.get(interaction_id)
        if call is None or call.answered_at is not None:
            self.ignored_events += 1
            return None
        del self._calls[interaction_id]
        left_at = max(at, call.offered_at)
        wait = left_at - call.offered_at
        q = self._queues[call.queue]
        q.waiting.pop(interaction_id, None)
        counters = q.counters[call.skill]
        if outcome is Outcome.CALLBACK:
            counters.callbacks += 1
        elif wait < self.config.short_abandon:
            counters.short_abandoned += 1
        else:
            counters.abandoned += 1
            in_sl = wait <= self.config.threshold(call.queue)
            counters.abandoned_in_sl += in_sl
            self._wait[(call.queue, "abandoned")].observe(wait)
            self._remember(q, at, False, in_sl)
        return InteractionRecord(
            interaction_id,
            call.queue,
            call.offered_at,
            outcome,
            left_at=left_at,
            skill=call.skill,
            customer_id=call.customer_id,
            channel=call.channel,
            origin=call.origin,
        )

    def _callback_closed(self, event: CallbackClosed) -> InteractionRecord | None:
        """A callback that failed or expired leaves the queue (waiting count,
        longest wait). Neither answered nor abandoned: counted as offered and
        apart, in no wait histogram and no service level (docs/kpis.md)."""
        call = self._calls.get(event.interaction_id)
        if call is None or call.answered_at is not None or event.outcome not in _CLOSED:
            self.ignored_events += 1
            return None
        del self._calls[event.interaction_id]
        q = self._queues[call.queue]
        q.waiting.pop(event.interaction_id, None)
        counters = q.counters[call.skill]
        if event.outcome == "failed":
            counters.callbacks_failed += 1
        else:
            counters.callbacks_expired += 1
        return InteractionRecord(
            event.interaction_id,
            call.queue,
            call.offered_at,
            Outcome.OPEN,  # as history reads it: offered only
            skill=call.skill,
            customer_id=call.customer_id,
            channel=call.channel,
            origin=call.origin,
        )

    def _ended(self, event: Ended) -> InteractionRecord | None:
        call = self._calls.get(event.interaction_id)
        if call is None or call.ended_at is not None:
            self.ignored_events += 1
            return None
        if call.answered_at is None:
            # The caller's line ended while waiting without an Abandoned: an abandon all the same.
            return self._left(event.interaction_id, event.at, Outcome.ABANDONED)
        call.ended_at = max(event.at, call.answered_at)
        call.hold = min(max(event.hold_seconds, 0.0), call.ended_at - call.answered_at)
        return None

    def _wrapped(self, event: WrapUpEnded) -> InteractionRecord | None:
        call = self._calls.get(event.interaction_id)
        if call is None or call.ended_at is None or call.answered_at is None:
            self.ignored_events += 1
            return None
        del self._calls[event.interaction_id]
        wrap_ended = max(event.at, call.ended_at)
        self._handle[call.queue].observe(wrap_ended - call.answered_at)
        assert call.agent_id is not None
        return InteractionRecord(
            event.interaction_id,
            call.queue,
            call.offered_at,
            Outcome.ANSWERED,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            wrap_ended_at=wrap_ended,
            hold_seconds=call.hold,
            skill=call.skill,
            agent_id=call.agent_id,
            team=call.team,
            extended=call.extended,
            customer_id=call.customer_id,
            channel=call.channel,
            transferred=call.transferred,
            origin=call.origin,
        )

    def _agent(self, event: AgentStateChanged) -> None:
        previous = self._agents.get(event.agent_id)
        if previous is not None:
            self._by_state[previous.state] -= 1
            for skill in previous.skills:
                self._skill_state[(skill, previous.state)] -= 1
        self._agents[event.agent_id] = _Agent(event.state, event.skills, event.team, event.extended)
        self._by_state[event.state] = self._by_state.get(event.state, 0) + 1
        for skill in event.skills:
            pair = (skill, event.state)
            self._skill_state[pair] = self._skill_state.get(pair, 0) + 1

    def _remember(self, q: _Queue, at: float, answered: bool, in_sl: bool) -> None:
        for window in q.windows:
            window.add(at, answered, in_sl)
            window.expire(at)

    # -- reading ------------------------------------------------------------

    def snapshot(self) -> RealtimeSnapshot:
        now = self._clock.now()
        counters: list[QueueCounters] = []
        queues: list[QueueNow] = []
        for name in sorted(self._queues):
            q = self._queues[name]
            for skill in sorted(q.counters):
                c = q.counters[skill]
                counters.append(
                    QueueCounters(
                        name,
                        skill,
                        c.offered,
                        c.answered,
                        c.answered_in_sl,
                        c.abandoned,
                        c.abandoned_in_sl,
                        c.short_abandoned,
                        c.callbacks,
                        c.transferred,
                        c.callbacks_failed,
                        c.callbacks_expired,
                    )
                )
            sl: dict[str, float | None] = {}
            sl2: dict[str, float | None] = {}
            for window in q.windows:
                window.expire(now)
                label = window_label(window.seconds)
                answered, answered_in = window.answered, window.answered_in
                sl[label] = answered_in / answered if answered else None
                total = answered + window.abandoned
                sl2[label] = (answered_in + window.abandoned_in) / total if total else None
            oldest = min(q.waiting.values(), default=None)
            queues.append(
                QueueNow(
                    name,
                    self.config.threshold(name),
                    len(q.waiting),
                    0.0 if oldest is None else max(now - oldest, 0.0),
                    sl,
                    sl2,
                )
            )
        return RealtimeSnapshot(
            at=now,
            counters=tuple(counters),
            queues=tuple(queues),
            wait={key: h.freeze() for key, h in sorted(self._wait.items())},
            handle={key: h.freeze() for key, h in sorted(self._handle.items())},
            agents_by_state=dict(sorted(self._by_state.items())),
            skill_agents=dict(sorted(self._skill_state.items())),
            callbacks_pending=dict(sorted(self._callbacks_pending.items())),
            ivr_exits=dict(sorted(self._ivr_exits.items())),
            speech_nomatch=dict(sorted(self._nomatch.items())),
            recordings=dict(sorted(self._recordings.items())),
            ignored_events=self.ignored_events,
        )
