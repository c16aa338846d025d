"""Tier 2: the AMI adapter against an in-process server speaking the AMI wire
protocol. Each panoramisk flaw the adapter fixes has a test here; the same
faults are replayed against the real Asterisk in tests/e2e/test_ami_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from callcenter.adapters.ami import AmiClient, Disconnected, Resync, StreamItem
from callcenter.adapters.telephony import Telephony
from callcenter.config import AmiConfig
from callcenter.errors import (
    AMIDisconnected,
    AMIProtocolError,
    AsteriskError,
    OriginateUnconfirmed,
)
from callcenter.protocol.ami_events import Hangup
from callcenter.testing.ami_server import FakeAmiServer, channel_entry
from callcenter.testing.tcp_proxy import TcpProxy
from callcenter.testing.waiting import until


def make_config(port: int, **overrides: float | int) -> AmiConfig:
    values: dict[str, float | int] = {
        "port": port,
        "ping_interval": 0.2,
        "ping_timeout": 0.2,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
        "action_timeout": 2.0,
    }
    values.update(overrides)
    return AmiConfig(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(
    server: FakeAmiServer, *, port: int | None = None, **overrides: float | int
) -> AsyncIterator[tuple[AmiClient, list[StreamItem]]]:
    """``port``: reach the server there instead (a TcpProxy in front of it)."""
    client = AmiClient(make_config(port or server.port, **overrides), SecretStr(server.secret))
    received: list[StreamItem] = []
    client.subscribe(received.append)
    await client.start()
    try:
        await client.wait_connected(5)
        yield client, received
    finally:
        await client.stop()
        alive = [t for t in asyncio.all_tasks() if t.get_name().startswith("ami-") and not t.done()]
        assert alive == [], f"AmiClient.stop() left tasks running: {alive}"


@pytest.fixture
async def server() -> AsyncIterator[FakeAmiServer]:
    srv = FakeAmiServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def names(items: list[StreamItem]) -> list[str]:
    return [type(i).__name__ for i in items]


async def test_connects_and_delivers_resync_snapshot(server: FakeAmiServer) -> None:
    server.channels = [channel_entry("node1-1.1", "PJSIP/trunk-00000001")]
    async with running(server) as (client, received):
        await until(lambda: any(isinstance(i, Resync) for i in received))
        resync = next(i for i in received if isinstance(i, Resync))
        assert [c.uniqueid for c in resync.channels] == ["node1-1.1"]
        kinds = names(received)
        assert kinds.index("Connected") < kinds.index("Resync")
        assert client.connected


async def test_wrong_secret_is_a_clear_error_not_a_crash(server: FakeAmiServer) -> None:
    client = AmiClient(make_config(server.port), SecretStr("wrong"))
    await client.start()
    try:
        with pytest.raises(AsteriskError):
            await client.wait_connected(0.5)
        assert server.count("Login") >= 1
    finally:
        await client.stop()


async def test_pending_action_fails_on_disconnect_and_is_never_resent(
    server: FakeAmiServer,
) -> None:
    """panoramisk re-sends unanswered actions after a reconnect: an Originate
    could ring a phone twice. Ours fails the action and sends nothing again."""
    server.hold_originate = True
    async with running(server) as (client, _received):
        pending = asyncio.create_task(
            client.send(
                "Originate",
                {"Channel": "PJSIP/agent1", "Async": "true", "Application": "Wait", "Data": "1"},
            )
        )
        await until(lambda: server.count("Originate") == 1)
        server.drop()
        with pytest.raises(AMIDisconnected):
            await pending
        await until(lambda: server.logins == 2)
        await client.wait_connected(5)
        await client.send("Ping")
        assert server.count("Originate") == 1


async def test_originate_is_idempotent_across_a_cut(server: FakeAmiServer) -> None:
    """The link drops after Asterisk took the Originate but before we read the
    answer: after reconnecting, the channel exists, so it is not sent again."""
    server.hold_originate = True
    async with running(server) as (client, _received):
        task = asyncio.create_task(
            client.originate("PJSIP/agent1", channel_id="cc-test-1", application="Wait", data="5")
        )
        await until(lambda: server.count("Originate") == 1)
        server.channels = [channel_entry("cc-test-1", "PJSIP/agent1-00000001")]
        server.drop()
        assert await asyncio.wait_for(task, 5) == "cc-test-1"
        assert server.count("Originate") == 1


async def test_originate_without_an_answer_is_unconfirmed_not_refused(
    server: FakeAmiServer,
) -> None:
    """Asterisk took the Originate and stays silent about it: the channel may
    ring, so the caller must not take it for a refusal, and it is not re-sent."""
    server.hold_originate = True
    async with running(server, action_timeout=0.3) as (client, _received):
        with pytest.raises(OriginateUnconfirmed) as failure:
            await client.originate(
                "PJSIP/agent1", channel_id="cc-test-4", application="Wait", data="5"
            )
        assert failure.value.channel_id == "cc-test-4"
        assert server.count("Originate") == 1


@contextlib.asynccontextmanager
async def proxy_to(server: FakeAmiServer) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", server.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_originate_cut_off_past_its_retry_window_is_unconfirmed(
    server: FakeAmiServer,
) -> None:
    server.hold_originate = True
    async with proxy_to(server) as proxy, running(server, port=proxy.port) as (client, _r):
        task = asyncio.create_task(
            client.originate(
                "PJSIP/agent1", channel_id="cc-test-5", application="Wait", retry_window=0.5
            )
        )
        await until(lambda: server.count("Originate") == 1)
        proxy.refuse()  # the link stays down past the retry window
        proxy.cut()
        with pytest.raises(OriginateUnconfirmed) as failure:
            await asyncio.wait_for(task, 5)
        assert failure.value.channel_id == "cc-test-5"
        proxy.heal()
        await client.wait_connected(5)
        assert server.count("Originate") == 1  # never sent blindly again


async def test_originate_never_written_is_a_plain_disconnect(server: FakeAmiServer) -> None:
    """The link was down before the Originate could be written: certainly
    not placed, so not "unconfirmed"."""
    async with proxy_to(server) as proxy, running(server, port=proxy.port) as (client, _r):
        proxy.refuse()
        proxy.cut()
        await until(lambda: not client.connected)
        with pytest.raises(AMIDisconnected) as failure:
            await client.originate("PJSIP/agent1", application="Wait", retry_window=0.3)
        assert not isinstance(failure.value, OriginateUnconfirmed)
        assert server.count("Originate") == 0


async def test_originate_is_sent_again_when_asterisk_never_got_it(
    server: FakeAmiServer,
) -> None:
    server.hold_originate = True
    async with running(server) as (client, _received):
        task = asyncio.create_task(
            client.originate("PJSIP/agent1", channel_id="cc-test-2", application="Wait", data="5")
        )
        await until(lambda: server.count("Originate") == 1)
        server.hold_originate = False
        server.drop()  # no channel cc-test-2 exists afterwards
        assert await asyncio.wait_for(task, 5) == "cc-test-2"
        originates = [a for a in server.actions if a.get("Action") == "Originate"]
        assert len(originates) == 2
        assert {a["ChannelId"] for a in originates} == {"cc-test-2"}


async def test_half_open_link_is_detected_by_ping_and_reconnected(
    server: FakeAmiServer,
) -> None:
    """panoramisk sends Ping but never checks the answer."""
    async with running(server) as (client, received):
        await until(lambda: "Resync" in names(received))
        server.silent = True  # TCP stays open, nothing comes back
        await until(lambda: client.stats.ping_timeouts >= 1, timeout=3)
        server.silent = False
        await until(lambda: server.logins >= 2, timeout=3)
        await client.wait_connected(3)
        assert client.stats.reconnects >= 1


async def test_event_answering_an_action_also_reaches_subscribers(
    server: FakeAmiServer,
) -> None:
    """OriginateResponse carries the Originate's ActionID: panoramisk gave it to
    the action's future only, and the rest of the system never saw it."""
    server.hold_originate = True
    async with running(server) as (client, received):
        task = asyncio.create_task(
            client.send(
                "Originate",
                {"Channel": "PJSIP/agent1", "Async": "true", "Application": "Wait", "Data": "1"},
            )
        )
        await until(lambda: server.count("Originate") == 1)
        action_id = next(a for a in server.actions if a.get("Action") == "Originate")["ActionID"]
        server.send_event(
            {
                "Response": "Success",
                "ActionID": action_id,
                "Message": "Originate successfully queued",
            }
        )
        server.send_event(
            {
                "Event": "OriginateResponse",
                "ActionID": action_id,
                "Response": "Failure",
                "Channel": "PJSIP/agent1",
                "Context": "",
                "Exten": "",
                "Application": "Wait",
                "Data": "1",
                "Reason": "3",
                "Uniqueid": "<null>",
                "CallerIDNum": "<unknown>",
                "CallerIDName": "<unknown>",
            }
        )
        await task
        await until(lambda: "OriginateResponse" in names(received))


async def test_originate_without_async_does_not_break_the_connection(
    server: FakeAmiServer,
) -> None:
    """panoramisk issue 90: its completion rules raise KeyError for an
    Originate without 'Async'. The action may fail; the link must not."""
    async with running(server) as (client, _received):
        with contextlib.suppress(AMIProtocolError):
            await client.send(
                "Originate", {"Channel": "PJSIP/agent1", "Application": "Wait", "Data": "1"}
            )
        frames = await client.send("Ping")
        assert frames[0].get("Ping") == "Pong"
        assert client.connected


async def test_events_are_delivered_in_order_by_one_consumer(server: FakeAmiServer) -> None:
    seen: list[str] = []

    async def slow_handler(item: StreamItem) -> None:
        uniqueid = getattr(item, "uniqueid", None)
        if uniqueid and uniqueid.startswith("order-"):
            if int(uniqueid[6:]) % 7 == 0:
                await asyncio.sleep(0.001)
            seen.append(uniqueid)

    def failing_handler(item: StreamItem) -> None:
        if getattr(item, "uniqueid", "") == "order-5":
            raise RuntimeError("a handler bug must not stop delivery")

    async with running(server) as (client, _received):
        client.subscribe(failing_handler)
        client.subscribe(slow_handler)
        for i in range(300):
            server.send_event(hangup_event(f"order-{i}"))
        await until(lambda: len(seen) == 300)
        assert seen == [f"order-{i}" for i in range(300)]
        assert client.stats.handler_errors == 1


async def test_an_event_is_handled_as_it_is_read_not_a_loop_turn_later(
    server: FakeAmiServer,
) -> None:
    """Issue 4's agent-free -> ring: with nothing queued ahead, synchronous
    handlers run in the read callback itself (outside any task), not after
    a hop through the consumer task."""
    handled_in: list[asyncio.Task[object] | None] = []

    def handler(item: StreamItem) -> None:
        if getattr(item, "uniqueid", "").startswith("now-"):
            handled_in.append(asyncio.current_task())

    async with running(server) as (client, received):
        await until(lambda: any(isinstance(i, Resync) for i in received))
        client.subscribe(handler)
        for i in range(20):
            server.send_event(hangup_event(f"now-{i}"))
        await until(lambda: len(handled_in) == 20)
        assert handled_in == [None] * 20


async def test_a_handler_to_await_holds_the_next_handlers_and_items_back(
    server: FakeAmiServer,
) -> None:
    """Handled at once or by the consumer, items keep their order; the
    handlers after one that returned an awaitable see the item only once it
    is done, and so do the items behind it."""
    log: list[str] = []

    async def slowly(uniqueid: str) -> None:
        await asyncio.sleep(0.002)
        log.append(f"awaited {uniqueid}")

    def first(item: StreamItem) -> Awaitable[None] | None:
        uniqueid = getattr(item, "uniqueid", "")
        if not uniqueid.startswith("mix-"):
            return None
        log.append(f"first {uniqueid}")
        return slowly(uniqueid) if int(uniqueid[4:]) % 5 == 0 else None

    def second(item: StreamItem) -> None:
        uniqueid = getattr(item, "uniqueid", "")
        if uniqueid.startswith("mix-"):
            log.append(f"second {uniqueid}")

    async with running(server) as (client, received):
        await until(lambda: any(isinstance(i, Resync) for i in received))
        client.subscribe(first)
        client.subscribe(second)
        for i in range(60):
            server.send_event(hangup_event(f"mix-{i}"))
            if i % 3 == 0:
                await asyncio.sleep(0.001)
        await until(lambda: log.count("second mix-59") == 1)
        await client.drain()
        expected: list[str] = []
        for i in range(60):
            expected.append(f"first mix-{i}")
            if i % 5 == 0:
                expected.append(f"awaited mix-{i}")
            expected.append(f"second mix-{i}")
        assert log == expected
        assert [getattr(i, "uniqueid", "") for i in received if isinstance(i, Hangup)] == [
            f"mix-{i}" for i in range(60)
        ]


async def test_backpressure_pauses_reading_and_loses_nothing(server: FakeAmiServer) -> None:
    seen: list[str] = []

    async def slow(item: StreamItem) -> None:
        if getattr(item, "uniqueid", "").startswith("bp-"):
            await asyncio.sleep(0)
            seen.append(item.uniqueid)  # type: ignore[union-attr]

    async with running(server, event_queue_size=100) as (client, received):
        client.subscribe(slow)
        # Steady state: events during the first resync are held, not paused.
        await until(lambda: any(isinstance(i, Resync) for i in received))
        for i in range(5000):
            server.send_event(hangup_event(f"bp-{i}"))
        await until(lambda: len(seen) == 5000, timeout=20, poll=0.01)
        assert seen == [f"bp-{i}" for i in range(5000)]
        assert client.stats.paused_reads >= 1
        assert client.stats.backlog_max < 5000


async def test_a_link_paused_by_backpressure_is_not_taken_for_dead(server: FakeAmiServer) -> None:
    """Reading stops while the consumer is behind, so the Pong waits on the
    socket: the watchdog must not cut the link (and lose the events queued
    on it) for a silence that is ours."""
    seen: list[str] = []
    release = asyncio.Event()

    async def stuck(item: StreamItem) -> None:
        if getattr(item, "uniqueid", "").startswith("bp-"):
            await release.wait()  # behind for longer than ping_timeout
            seen.append(item.uniqueid)  # type: ignore[union-attr]

    async with running(server, event_queue_size=100, ping_interval=0.05, ping_timeout=0.1) as (
        client,
        received,
    ):
        client.subscribe(stuck)
        await until(lambda: any(isinstance(i, Resync) for i in received))
        for i in range(1000):
            server.send_event(hangup_event(f"bp-{i}"))
        await until(lambda: client.stats.paused_reads >= 1)
        await asyncio.sleep(0.6)  # several pings go unanswered meanwhile
        release.set()
        await until(lambda: len(seen) == 1000, timeout=10, poll=0.01)
        assert seen == [f"bp-{i}" for i in range(1000)]
        assert client.stats.ping_timeouts == 0
        assert not any(isinstance(i, Disconnected) for i in received)


async def test_malformed_event_is_reported_and_the_stream_goes_on(
    server: FakeAmiServer,
) -> None:
    async with running(server) as (client, received):
        server.send_event({"Event": "Hangup", "Channel": "PJSIP/x"})  # no Uniqueid
        server.send_raw(b"this line has no colon\r\n\r\n")
        server.send_event(hangup_event("after-garbage"))
        await until(lambda: any(getattr(i, "uniqueid", "") == "after-garbage" for i in received))
        assert client.stats.malformed >= 1
        assert client.connected


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(max_size=400))
async def test_garbage_never_kills_the_client(server: FakeAmiServer, garbage: bytes) -> None:
    async with running(server) as (client, received):
        server.send_raw(garbage + b"\r\n\r\n")
        server.send_event(hangup_event("sentinel"))
        await until(lambda: any(getattr(i, "uniqueid", "") == "sentinel" for i in received))
        frames = await client.send("Ping")
        assert frames[0].get("Ping") == "Pong"


def hangup_event(uniqueid: str) -> dict[str, str]:
    return {
        "Event": "Hangup",
        "Privilege": "call,all",
        "Channel": f"PJSIP/trunk-{uniqueid}",
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "CallerIDNum": "0612345678",
        "CallerIDName": "Test",
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "fr",
        "AccountCode": "",
        "Context": "from-trunk",
        "Exten": "100",
        "Priority": "1",
        "Uniqueid": uniqueid,
        "Linkedid": uniqueid,
        "Cause": "16",
        "Cause-txt": "Normal Clearing",
    }


async def test_a_dialer_session_has_no_events_and_its_own_action_ids(
    server: FakeAmiServer,
) -> None:
    async with running(server) as (main, _received):
        dialer = AmiClient(
            make_config(server.port), SecretStr(server.secret), events=False, lane="d"
        )
        telephony = Telephony(main, dialer=dialer)
        assert telephony.dialer is main  # not connected yet: the main session serves
        await dialer.start()
        try:
            await dialer.wait_connected(5)
            assert telephony.dialer is dialer
            leg = main.new_channel_id()
            assert (
                await telephony.dialer.originate("PJSIP/agent1", channel_id=leg, application="Wait")
                == leg
            )
        finally:
            await dialer.stop()
        assert telephony.dialer is main  # down again: back to the main session
    logins = [a for a in server.actions if a.get("Action") == "Login"]
    assert [a.get("Events") for a in logins] == [None, "off"]
    assert server.count("CoreShowChannels") == 1  # the main session's resync only
    [originate] = [a for a in server.actions if a.get("Action") == "Originate"]
    # Replies such as OriginateResponse reach every session: the main one
    # must never take the dialer's for one of its own pending actions.
    assert originate["ActionID"].startswith("cc-node1-d")
