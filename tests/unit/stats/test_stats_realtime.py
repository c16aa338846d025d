"""The real-time aggregator, driven by events and a manual clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.clock import ManualClock
from callcenter.stats import InteractionRecord, Outcome, RealtimeStats, StatsConfig
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
    Transferred,
    WrapUpEnded,
)

CONFIG = StatsConfig(sl_threshold=20, short_abandon=5, queue_sl_thresholds={"sales": 60})


def counters(stats: RealtimeStats, queue: str, skill: str = "") -> tuple[int, ...]:
    for c in stats.snapshot().counters:
        if (c.queue, c.skill) == (queue, skill):
            return (
                c.offered,
                c.answered,
                c.answered_in_sl,
                c.abandoned,
                c.abandoned_in_sl,
                c.short_abandoned,
                c.callbacks,
                c.transferred,
            )
    raise AssertionError(f"no counters for {queue}/{skill}")


def test_a_call_answered_transferred_and_wrapped_up_gives_its_record() -> None:
    clock = ManualClock(start=1000.0)
    stats = RealtimeStats(CONFIG, clock)
    assert stats.apply(Offered(1000, "c1", "support", "fr", customer_id="cust")) is None
    assert stats.apply(Answered(1020, "c1", "alice", team="t1")) is None  # exactly T
    assert stats.apply(Transferred(1050, "c1")) is None
    assert stats.apply(Ended(1080, "c1", hold_seconds=10)) is None
    record = stats.apply(WrapUpEnded(1095, "c1"))
    assert record == InteractionRecord(
        "c1",
        "support",
        1000,
        Outcome.ANSWERED,
        answered_at=1020,
        ended_at=1080,
        wrap_ended_at=1095,
        hold_seconds=10,
        skill="fr",
        agent_id="alice",
        team="t1",
        customer_id="cust",
        transferred=True,
    )
    assert counters(stats, "support", "fr") == (1, 1, 1, 0, 0, 0, 0, 1)
    snap = stats.snapshot()
    wait = snap.wait[("support", "answered")]
    assert (wait.count, wait.total) == (1, 20.0)
    assert wait.cumulative[wait.bounds.index(20)] == 1  # le="20" includes 20
    assert wait.cumulative[wait.bounds.index(15)] == 0
    handle = snap.handle["support"]
    assert (handle.count, handle.total) == (1, 75.0)


def test_abandons_short_abandons_and_callbacks() -> None:
    clock = ManualClock(start=0.0)
    stats = RealtimeStats(CONFIG, clock)
    for i in range(5):
        stats.apply(Offered(0, f"c{i}", "support"))
    short = stats.apply(Abandoned(4.9, "c0"))
    assert short is not None
    assert short.outcome is Outcome.ABANDONED
    assert short.wait == 4.9
    stats.apply(Abandoned(5, "c1"))  # at the short threshold: a real abandon, within T
    stats.apply(Abandoned(20, "c2"))  # exactly at T: within
    stats.apply(Ended(21, "c3"))  # the line ended while waiting: an abandon, outside T
    cb = stats.apply(CallbackRequested(30, "c4"))
    assert cb is not None
    assert cb.outcome is Outcome.CALLBACK
    assert counters(stats, "support") == (5, 0, 0, 3, 2, 1, 1, 0)
    clock.advance(30)
    snap = stats.snapshot()
    queue = snap.queues[0]
    assert (queue.waiting, queue.longest_wait) == (0, 0.0)
    assert queue.service_level["5m"] is None  # nothing answered
    assert queue.service_level2["5m"] == pytest.approx(2 / 3)
    assert snap.wait[("support", "abandoned")].count == 3  # short abandons not observed


def test_waiting_now_longest_wait_and_sliding_windows() -> None:
    clock = ManualClock(start=0.0)
    stats = RealtimeStats(CONFIG, clock)
    stats.apply(Offered(0, "old", "sales", enqueued_at=-40))  # a callback keeps its place
    stats.apply(Offered(0, "new", "sales"))
    stats.apply(Offered(0, "fast", "sales"))
    stats.apply(Answered(10, "fast", "bob"))
    clock.advance(15)
    now = stats.snapshot().queues[0]
    assert (now.queue, now.waiting, now.longest_wait, now.threshold) == ("sales", 2, 55.0, 60)
    assert now.service_level == {"5m": 1.0, "15m": 1.0, "1h": 1.0}
    stats.apply(Answered(100, "old", "bob"))  # waited 140 s: outside sales' 60 s
    clock.advance(100)  # t = 115
    now = stats.snapshot().queues[0]
    assert now.service_level["5m"] == 0.5
    clock.advance(300 - 115 + 10 + 1)  # t = 311: the fast answer (t=10) left the 5-minute window
    now = stats.snapshot().queues[0]
    assert now.service_level["5m"] == 0.0
    assert now.service_level["15m"] == 0.5
    assert (now.waiting, now.longest_wait) == (1, 311.0)
    clock.advance(3600)
    assert stats.snapshot().queues[0].service_level == {"5m": None, "15m": None, "1h": None}


def test_a_callback_that_fails_or_expires_leaves_the_queue_counted_apart() -> None:
    clock = ManualClock(start=0.0)
    stats = RealtimeStats(CONFIG, clock)
    stats.apply(Offered(0, "failed", "support", enqueued_at=-100))  # callbacks keep their place
    stats.apply(Offered(0, "expired", "support", enqueued_at=-50, customer_id="0698"))
    stats.apply(Offered(0, "caller", "support"))
    clock.advance(10)
    now = stats.snapshot().queues[0]
    assert (now.waiting, now.longest_wait) == (3, 110.0)
    failed = stats.apply(CallbackClosed(10, "failed", "failed"))
    assert failed == InteractionRecord("failed", "support", -100, Outcome.OPEN)  # offered only
    expired = stats.apply(CallbackClosed(10, "expired", "expired"))
    assert expired is not None
    assert (expired.outcome, expired.customer_id) == (Outcome.OPEN, "0698")
    snap = stats.snapshot()
    assert (snap.queues[0].waiting, snap.queues[0].longest_wait) == (1, 10.0)  # the caller's
    [c] = snap.counters
    assert (c.callbacks_failed, c.callbacks_expired) == (1, 1)
    # Neither answered nor abandoned: in no wait histogram and no service level.
    assert counters(stats, "support") == (3, 0, 0, 0, 0, 0, 0, 0)
    assert snap.wait[("support", "abandoned")].count == 0
    assert snap.queues[0].service_level2["1h"] is None
    stats.apply(Answered(12, "caller", "bob"))
    assert (stats.snapshot().queues[0].waiting, stats.snapshot().queues[0].longest_wait) == (0, 0)
    # Twice, unknown, answered or an unknown outcome: ignored, never raised.
    stats.apply(CallbackClosed(13, "failed", "failed"))
    stats.apply(CallbackClosed(13, "caller", "failed"))
    stats.apply(Offered(13, "odd", "support"))
    stats.apply(CallbackClosed(14, "odd", "lost"))
    assert stats.snapshot().ignored_events == 3
    assert stats.snapshot().queues[0].waiting == 1


def test_agents_by_state_and_skill() -> None:
    stats = RealtimeStats(CONFIG, ManualClock())
    stats.apply(AgentStateChanged(0, "a1", "ready", ("fr", "en")))
    stats.apply(AgentStateChanged(0, "a2", "ready", ("fr",)))
    stats.apply(AgentStateChanged(1, "a1", "on_call", ("fr", "en")))
    stats.apply(AgentStateChanged(2, "a3", "paused", ()))
    snap = stats.snapshot()
    assert snap.agents_by_state == {"on_call": 1, "paused": 1, "ready": 1}
    assert snap.skill_agents == {
        ("en", "on_call"): 1,
        ("en", "ready"): 0,
        ("fr", "on_call"): 1,
        ("fr", "ready"): 1,
    }


def test_other_counters_and_ignored_events() -> None:
    stats = RealtimeStats(CONFIG, ManualClock())
    stats.declare_queue("empty", ("", "fr"))
    stats.apply(CallbacksPending(0, "support", 3))
    stats.apply(IvrNodeExited(0, "accueil", "menu", "1"))
    stats.apply(IvrNodeExited(0, "accueil", "menu", "1"))
    stats.apply(SpeechNoMatch(0, "accueil", "ask"))
    stats.apply(RecordingWritten(0, "support"))
    # Out of order or unknown: counted, never raised into the call path.
    stats.apply(Answered(0, "ghost", "a1"))
    stats.apply(WrapUpEnded(0, "ghost"))
    stats.apply(Offered(0, "dup", "support"))
    stats.apply(Offered(0, "dup", "support"))
    stats.apply(Transferred(0, "dup"))  # not answered yet
    snap = stats.snapshot()
    assert snap.ignored_events == 4
    assert snap.callbacks_pending == {"support": 3}
    assert snap.ivr_exits == {("accueil", "menu", "1"): 2}
    assert snap.speech_nomatch == {("accueil", "ask"): 1}
    assert snap.recordings == {"support": 1}
    assert counters(stats, "empty", "fr") == (0,) * 8
    assert ("empty", "answered") in snap.wait


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            # Whole seconds: no rounding at the thresholds (5 s, 20 s).
            st.integers(min_value=0, max_value=400),  # time since the previous step
            st.booleans(),  # answered (else abandoned)
            st.integers(min_value=0, max_value=60),  # wait
            st.booleans(),  # read a snapshot after this step
        ),
        max_size=60,
    )
)
def test_sliding_windows_equal_a_recount_of_every_call(
    steps: list[tuple[int, bool, int, bool]],
) -> None:
    """The windows keep running sums; whatever the order of answers,
    abandons and reads, they equal counting the calls of each window anew."""
    clock = ManualClock(start=0.0)
    stats = RealtimeStats(CONFIG, clock)
    done: list[tuple[float, bool, bool]] = []  # (at, answered, within T)
    for i, (gap, answered, wait, read) in enumerate(steps):
        clock.advance(gap)
        at = clock.now()
        stats.apply(Offered(at - wait, f"c{i}", "support", enqueued_at=at - wait))
        stats.apply(Answered(at, f"c{i}", "bob") if answered else Abandoned(at, f"c{i}"))
        if answered or wait >= CONFIG.short_abandon:
            done.append((at, answered, wait <= CONFIG.sl_threshold))
        if not read:
            continue
        queue = stats.snapshot().queues[0]
        for seconds, label in ((300, "5m"), (900, "15m"), (3600, "1h")):
            inside = [d for d in done if d[0] > at - seconds]
            answers = [in_sl for _at, was_answered, in_sl in inside if was_answered]
            expected = sum(answers) / len(answers) if answers else None
            assert queue.service_level[label] == (
                pytest.approx(expected) if expected is not None else None
            )
            expected2 = sum(in_sl for *_x, in_sl in inside) / len(inside) if inside else None
            assert queue.service_level2[label] == (
                pytest.approx(expected2) if expected2 is not None else None
            )
