"""Tier 1: a callback's window (``not_before`` .. ``not_after``) on the live
call path, with the real ACD, a manual clock and a fake telephony: nobody
took it by the end, it expires (phase ``expired``, stored so, never offered);
taken before the end, it goes on as any callback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from test_callpath_races import make_path  # the same fake telephony and site

from callcenter.adapters.metrics import MetricsExporter
from callcenter.callpath.service import CallPath, CallRecord, Phase, row_of
from callcenter.callpath.site import Site
from callcenter.clock import ManualClock
from callcenter.errors import AsteriskError, RoutingError
from callcenter.protocol.ami_events import ChannelState
from callcenter.protocol.channels import Channel, ChannelRemoved, DialEnded, OriginateResult
from callcenter.stats import RealtimeStats, StatsConfig
from callcenter.stats.realtime import QueueNow
from callcenter.store.rows import CallbackRow
from callcenter.testing.waiting import until

NUMBER = "0698765432"


class Fixture:
    def __init__(self) -> None:
        self.path, self.telephony, self.clock = make_path("L1", "L2", "L3")
        self.rows: list[CallbackRow] = []
        self.finished: list[CallRecord] = []
        self.path.on_callback = self.rows.append
        self.path.on_finished = self.finished.append

    def statuses(self, callback_id: str) -> list[str]:
        return [r.status for r in self.rows if r.callback_id == callback_id]

    async def at(self, seconds: float) -> None:
        """Time passes; the call path's timer loop serves the ACD's timers."""
        self.clock.advance(seconds)
        self.path.telephony_restored()  # wakes the timer loop (nobody ready: no offer)
        for _ in range(5):
            await asyncio.sleep(0)


@pytest.fixture
async def f() -> AsyncIterator[Fixture]:
    fixture = Fixture()
    await fixture.path.start()
    yield fixture
    await fixture.path.stop()


def leg_gone(path: CallPath, leg: str) -> None:
    channel = Channel("node1", leg, "PJSIP/agent1-00000001", ChannelState.UP, "", "", "", "",
                      leg, "callcenter-callback", "s")  # fmt: skip
    path.on_change(ChannelRemoved(channel, 16, "Normal Clearing"))


def expired_in_acd(path: CallPath, interaction_id: str) -> bool:
    audit = path.acd.audit  # the Engine behind the port
    return any(e.kind == "expired" and e.interaction_id == interaction_id for e in audit)


async def test_a_callback_nobody_took_by_its_window_end_expires_and_is_never_offered(
    f: Fixture,
) -> None:
    end = f.clock.wall() + 60
    callback_id = f.path.register_callback("support", NUMBER, language="fr", not_after_wall=end)
    record = f.path.calls[callback_id]
    assert (record.phase, record.not_after_wall) == (Phase.WAITING, end)
    assert f.rows[-1].not_after == end
    await f.at(59)
    assert record.phase is Phase.WAITING
    await f.at(2)
    await until(lambda: record.phase is Phase.EXPIRED, timeout=2, what="expired")
    assert callback_id not in f.path.calls
    assert f.finished == [record]
    assert row_of(record).outcome == "expired"
    assert f.statuses(callback_id) == ["pending", "expired"]
    assert f.rows[-1].not_after == end
    assert expired_in_acd(f.path, callback_id)
    f.path.agent_login("a01", "agent1")
    await asyncio.sleep(0)
    assert f.telephony.rings == []  # never offered


async def test_a_callback_taken_before_its_window_end_does_not_expire(f: Fixture) -> None:
    f.path.agent_login("a01", "agent1")
    end = f.clock.wall() + 60
    callback_id = f.path.register_callback("support", NUMBER, language="fr", not_after_wall=end)
    record = f.path.calls[callback_id]
    assert record.phase is Phase.RINGING
    await asyncio.sleep(0)
    assert f.telephony.rings == [("agent1", NUMBER, "L1")]
    f.path.on_change(OriginateResult("node1", None, "L1", True, 4))  # the agent answered
    assert record.phase is Phase.DIALING
    await f.at(120)  # the window ends while the customer is being dialled
    assert record.phase is Phase.DIALING
    f.path.on_change(DialEnded("node1", "L1", "PJSIP/trunk-00000002", "ANSWER"))
    assert record.phase is Phase.CONNECTED
    leg_gone(f.path, "L1")
    assert record.phase is Phase.COMPLETED
    assert f.statuses(callback_id) == ["pending", "done"]
    assert not expired_in_acd(f.path, callback_id)


async def test_a_callback_ringing_when_its_window_ends_rings_out_then_expires(
    f: Fixture,
) -> None:
    f.path.agent_login("a01", "agent1")
    callback_id = f.path.register_callback(
        "support", NUMBER, language="fr", not_after_wall=f.clock.wall() + 60
    )
    record = f.path.calls[callback_id]
    await asyncio.sleep(0)
    f.path.agent_login("a02", "agent2")  # ready, would be next
    await f.at(61)
    assert record.phase is Phase.RINGING  # the ring goes on: only a waiting one expires
    f.path.on_change(OriginateResult("node1", None, "L1", False, 3))  # rang out (RONA)
    assert record.phase is Phase.EXPIRED
    assert f.statuses(callback_id) == ["pending", "expired"]
    await asyncio.sleep(0)
    assert [ring[0] for ring in f.telephony.rings] == ["agent1"]  # not offered to a02


async def test_a_retry_that_would_start_after_the_window_end_fails_the_callback(
    f: Fixture,
) -> None:
    f.path.agent_login("a01", "agent1")
    retry = f.path.site.queues["support"].callback_retry_delay
    callback_id = f.path.register_callback(
        "support", NUMBER, language="fr", not_after_wall=f.clock.wall() + retry / 2
    )
    record = f.path.calls[callback_id]
    f.path.on_change(OriginateResult("node1", None, "L1", True, 4))
    f.path.on_change(DialEnded("node1", "L1", "PJSIP/trunk-00000002", "NOANSWER"))
    leg_gone(f.path, "L1")
    assert record.phase is Phase.FAILED
    assert f.statuses(callback_id) == ["pending", "failed"]


def test_restored_callbacks_keep_their_window_and_one_past_its_end_expires() -> None:
    path, _telephony, clock = make_path()
    rows: list[CallbackRow] = []
    path.on_callback = rows.append
    wall = clock.wall()

    def pending(callback_id: str, not_after: float) -> CallbackRow:
        return CallbackRow(callback_id, None, "node1", "support", NUMBER, "fr", 0, wall - 600,
                           None, "pending", not_after=not_after)  # fmt: skip

    path.restore_callbacks([pending("c-late", wall - 1), pending("c-open", wall + 600)])
    assert "c-late" not in path.calls
    assert [r.status for r in rows if r.callback_id == "c-late"] == ["pending", "expired"]
    late = path.recent("c-late")
    assert late is not None
    assert late.phase is Phase.EXPIRED
    assert path.calls["c-open"].not_after_wall == wall + 600
    assert path.calls["c-open"].phase is Phase.WAITING


def test_a_window_that_ends_in_the_past_or_before_it_starts_is_refused() -> None:
    path, _telephony, clock = make_path()
    wall = clock.wall()
    with pytest.raises(RoutingError, match="end in the future"):
        path.register_callback("support", NUMBER, language="fr", not_after_wall=wall - 1)
    with pytest.raises(RoutingError, match="after it starts"):
        path.register_callback(
            "support", NUMBER, language="fr", not_before_wall=wall + 60, not_after_wall=wall + 30
        )
    assert path.calls == {}


# ------------------------------------------- live queue figures (real time)
def live_stats(path: CallPath, clock: ManualClock) -> RealtimeStats:
    """The real-time aggregator fed by the call path, as the daemon wires it."""
    stats = RealtimeStats(StatsConfig(), clock)
    path.on_stats = stats.apply
    return stats


def support_now(stats: RealtimeStats) -> QueueNow:
    [queue] = [q for q in stats.snapshot().queues if q.queue == "support"]
    return queue


async def test_an_expired_callback_leaves_the_live_queue_figures(f: Fixture) -> None:
    stats = live_stats(f.path, f.clock)
    callback_id = f.path.register_callback(
        "support", NUMBER, language="fr", not_after_wall=f.clock.wall() + 60
    )
    await f.at(30)
    assert (support_now(stats).waiting, support_now(stats).longest_wait) == (1, 30.0)
    await f.at(31)
    await until(lambda: callback_id not in f.path.calls, timeout=2, what="expired")
    await f.at(100)
    assert (support_now(stats).waiting, support_now(stats).longest_wait) == (0, 0.0)
    [counters] = [c for c in stats.snapshot().counters if c.queue == "support"]
    assert (counters.offered, counters.callbacks_expired, counters.abandoned) == (1, 1, 0)
    assert stats.snapshot().ignored_events == 0


async def test_a_failed_callback_leaves_the_live_queue_figures() -> None:
    site = Site.model_validate(
        {
            "queues": {"support": {"skills": {"support": 1}, "callback_attempts": 1}},
            "routes": {"default": {"queue": "support"}},
            "agents": {"a01": {"name": "Agent 1", "endpoint": "agent1", "skills": {"support": 5}}},
        }
    )
    path, _telephony, clock = make_path("L1", site=site)
    stats = live_stats(path, clock)
    await path.start()
    try:
        path.agent_login("a01", "agent1")
        path.agent_pause("a01", path.site.pause_reasons[0])
        callback_id = path.register_callback("support", NUMBER, language="fr")
        record = path.calls[callback_id]
        clock.advance(40)
        assert (support_now(stats).waiting, support_now(stats).longest_wait) == (1, 40.0)
        path.agent_ready("a01")
        assert record.phase is Phase.RINGING
        await asyncio.sleep(0)
        path.on_change(OriginateResult("node1", None, "L1", True, 4))
        path.on_change(DialEnded("node1", "L1", "PJSIP/trunk-00000002", "NOANSWER"))
        leg_gone(path, "L1")
        assert record.phase is Phase.FAILED  # its one attempt is over
        clock.advance(100)
        assert (support_now(stats).waiting, support_now(stats).longest_wait) == (0, 0.0)
        [counters] = [c for c in stats.snapshot().counters if c.queue == "support"]
        assert (counters.offered, counters.answered, counters.callbacks_failed) == (1, 0, 1)
        assert stats.snapshot().ignored_events == 0
        scrape = MetricsExporter(stats).render().decode()
        assert (
            'callcenter_queue_callbacks_failed_total{queue="support",skill="support"} 1.0'
            in scrape.splitlines()
        )
    finally:
        await path.stop()


async def test_a_callback_offer_not_placed_after_its_window_end_expires_never_offered_again(
    f: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    placed = asyncio.Event()

    async def not_placed(endpoint: str, number: str, *, channel_id: str, **_: object) -> str:
        f.telephony.rings.append((endpoint, number, channel_id))
        await placed.wait()
        raise AsteriskError("AMI link down")  # could not even ring

    monkeypatch.setattr(f.telephony, "ring_agent_for_callback", not_placed)
    stats = live_stats(f.path, f.clock)
    f.path.agent_login("a01", "agent1")
    callback_id = f.path.register_callback(
        "support", NUMBER, language="fr", not_after_wall=f.clock.wall() + 60
    )
    record = f.path.calls[callback_id]
    await asyncio.sleep(0)
    f.path.agent_login("a02", "agent2")  # ready, would be next
    await f.at(61)
    assert record.phase is Phase.RINGING  # still being placed when the window ends
    placed.set()
    await until(lambda: record.phase is Phase.EXPIRED, timeout=2, what="expired")
    assert f.statuses(callback_id) == ["pending", "expired"]
    await f.at(1)  # telephony back: a redispatch
    assert [ring[0] for ring in f.telephony.rings] == ["agent1"]  # never offered to a02
    assert support_now(stats).waiting == 0


def test_an_expiry_out_of_step_with_the_call_path_is_logged_and_changes_nothing() -> None:
    """The ACD says a callback expired while the call path has it connected:
    the table refuses it, the record stays in view, nothing raises (the rest
    of the ACD's batch of offers and agent states must go on)."""
    path, _telephony, _clock = make_path()
    callback_id = path.register_callback("support", NUMBER, language="fr")
    record = path.calls[callback_id]
    record.phase = Phase.CONNECTED  # as if the service and the ACD disagreed
    path._expired(callback_id)
    assert record.phase is Phase.CONNECTED
    assert path.calls[callback_id] is record
