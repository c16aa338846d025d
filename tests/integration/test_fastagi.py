"""Tier 2: the FastAGI server over real sockets, with a scripted Asterisk side."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.adapters.fastagi import ERROR_VARIABLE, AgiHandler, AgiSession, FastAgiServer
from callcenter.errors import AGIHangup, AGIProtocolError, AGITimeout


def headers(script: str = "flow?dnis=0800", *args: str) -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        "agi_channel: PJSIP/trunk-00000001",
        "agi_uniqueid: node1-1.1",
        "agi_callerid: 0612345678",
    ]
    lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
    return ("\n".join(lines) + "\n\n").encode()


class FakeAsterisk:
    """The Asterisk end of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def command(self, timeout: float = 5) -> str:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        return line.decode().rstrip("\n")

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def closed(self, timeout: float = 5) -> bool:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b"" or data.endswith(b"\n")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def server(
    routes: dict[str, AgiHandler], idle_timeout: float = 30
) -> AsyncIterator[FastAgiServer]:
    srv = FastAgiServer("127.0.0.1", 0, routes, idle_timeout=idle_timeout, header_timeout=0.5)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@contextlib.asynccontextmanager
async def call(srv: FastAgiServer, head: bytes) -> AsyncIterator[FakeAsterisk]:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    peer = FakeAsterisk(reader, writer)
    peer.send(head)
    try:
        yield peer
    finally:
        await peer.close()


async def test_routes_by_path_with_query_and_args_and_runs_commands() -> None:
    seen: list[object] = []
    finished = asyncio.Event()

    async def flow(session: AgiSession) -> None:
        seen.append((session.request.script, dict(session.request.query), session.request.args))
        await session.answer()
        seen.append(await session.get_data("beep", timeout_ms=3000, max_digits=3))
        seen.append(await session.get_variable("CALLERID(num)"))
        seen.append(await session.get_variable("UNSET"))
        finished.set()

    async with server({"flow": flow}) as srv, call(srv, headers("flow?dnis=0800", "a b")) as ast:
        assert await ast.command() == "ANSWER"
        ast.send(b"200 result=0\n")
        assert await ast.command() == 'GET DATA "beep" "3000" "3"'
        ast.send(b"200 result=123\n")
        assert await ast.command() == 'GET FULL VARIABLE "${CALLERID(num)}"'
        ast.send(b"200 result=1 (0612345678)\n")
        await ast.command()
        ast.send(b"200 result=0\n")
        await asyncio.wait_for(finished.wait(), 5)
        assert await ast.closed()
    assert seen == [("flow", {"dnis": "0800"}, ("a b",)), "123", "0612345678", None]
    assert srv.stats.sessions == 1
    assert srv.stats.active == 0


@pytest.mark.both_loops  # the standard loop's transport needs tcp._break_transport_cycle
async def test_an_ended_session_frees_its_socket_without_a_full_collection() -> None:
    """Refcounting alone frees a finished connection: a reference cycle
    would keep it until a full collection, which pauses the event loop."""
    transports: list[weakref.ref[asyncio.BaseTransport]] = []

    async def flow(session: AgiSession) -> None:
        transports.append(weakref.ref(session._writer.transport))
        await session.answer()

    gc.disable()  # only refcounting frees anything from here on
    try:
        async with server({"flow": flow}) as srv, call(srv, headers()) as ast:
            assert await ast.command() == "ANSWER"
            ast.send(b"200 result=0\n")
            assert await ast.closed()
        assert len(transports) == 1
        assert transports[0]() is None, gc.get_referrers(transports[0]())
    finally:
        gc.enable()


async def test_hangup_line_is_not_taken_as_the_reply() -> None:
    outcome: list[object] = []

    async def flow(session: AgiSession) -> None:
        try:
            await session.stream_file("long-prompt")
        except AGIHangup as exc:
            outcome.append(("hangup", str(exc)))
            raise

    async with server({"flow": flow}) as srv, call(srv, headers()) as ast:
        assert await ast.command() == 'STREAM FILE "long-prompt" ""'
        ast.send(b"HANGUP\n")
        await asyncio.sleep(0.05)
        assert outcome == []  # still waiting for the command's own reply
        ast.send(b"200 result=-1 endpos=100\n")
        assert await ast.closed()
    assert [kind for kind, _ in outcome] == ["hangup"]


async def test_hangup_is_seen_while_handler_waits_elsewhere() -> None:
    noticed = asyncio.Event()

    async def flow(session: AgiSession) -> None:
        await session.wait_hangup()  # e.g. waiting in the ACD queue
        noticed.set()
        with pytest.raises(AGIHangup):
            await session.answer()

    async with server({"flow": flow}) as srv, call(srv, headers()) as ast:
        await asyncio.sleep(0.05)
        ast.send(b"HANGUP\n")
        await asyncio.wait_for(noticed.wait(), 5)
        assert await ast.closed()


async def test_eof_during_command_raises_hangup() -> None:
    errors: list[BaseException] = []

    async def flow(session: AgiSession) -> None:
        try:
            await session.get_data("beep", timeout_ms=10_000, max_digits=4)
        except AGIHangup as exc:
            errors.append(exc)

    async with server({"flow": flow}) as srv:
        async with call(srv, headers()) as ast:
            await ast.command()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.02)
    assert len(errors) == 1


async def test_511_and_minus_one_mean_hangup_510_is_our_error() -> None:
    results: list[str] = []

    async def flow(session: AgiSession) -> None:
        with pytest.raises(AGIProtocolError, match="510"):
            await session.command("NOT A COMMAND")
        results.append("510")
        with pytest.raises(AGIProtocolError, match="520"):
            await session.command("GET DATA")
        results.append("520")
        with pytest.raises(AGIHangup):
            await session.set_variable("X", "1")
        results.append("511")
        with pytest.raises(AGIHangup):
            await session.answer()  # refused at once: the session is closed
        results.append("closed")

    async with server({"flow": flow}) as srv, call(srv, headers()) as ast:
        await ast.command()
        ast.send(b"510 Invalid or unknown command\n")
        await ast.command()
        ast.send(
            b"520-Invalid command syntax.  Proper usage follows:\nUsage\n520 End of proper usage.\n"
        )
        await ast.command()
        ast.send(b"511 Command Not Permitted on a dead channel or intercepted channel\n")
        assert await ast.closed()
    assert results == ["510", "520", "511", "closed"]


async def test_crashed_handler_tells_dialplan_and_releases_channel() -> None:
    async def flow(session: AgiSession) -> None:
        await session.answer()
        raise RuntimeError("bug in a flow")

    async with server({"flow": flow}) as srv, call(srv, headers()) as ast:
        await ast.command()
        ast.send(b"200 result=0\n")
        assert await ast.command() == f'SET VARIABLE "{ERROR_VARIABLE}" "handler_failed"'
        assert await ast.closed()
    assert srv.stats.handler_errors == 1


async def test_unknown_script_is_released_with_a_reason() -> None:
    async with (
        server({"flow": lambda s: asyncio.sleep(0)}) as srv,
        call(srv, headers("nope")) as ast,
    ):
        assert await ast.command() == f'SET VARIABLE "{ERROR_VARIABLE}" "unknown_script"'
        assert await ast.closed()
    assert srv.stats.unknown_scripts == 1


async def test_idle_timeout_closes_a_silent_session() -> None:
    failures: list[BaseException] = []

    async def flow(session: AgiSession) -> None:
        try:
            await session.command("ANSWER", timeout=0.0)
        except AGITimeout as exc:
            failures.append(exc)
            raise

    async with server({"flow": flow}, idle_timeout=0.1) as srv:
        import callcenter.adapters.fastagi as fastagi

        grace, fastagi._REPLY_GRACE = fastagi._REPLY_GRACE, 0.2
        try:
            async with call(srv, headers()) as ast:
                await ast.command()
                assert await ast.closed()
        finally:
            fastagi._REPLY_GRACE = grace
    assert len(failures) == 1
    assert srv.stats.handler_errors == 1


async def test_stop_cancels_live_sessions_and_closes_their_sockets() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def flow(session: AgiSession) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    srv = FastAgiServer("127.0.0.1", 0, {"flow": flow})
    await srv.start()
    async with call(srv, headers()) as ast:
        await asyncio.wait_for(started.wait(), 5)
        await srv.stop()
        assert cancelled.is_set()
        assert await ast.closed()


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\n", b"\x00\xff" * 100, b"agi_x: 1\n" * 300],
)
async def test_garbage_session_start_is_dropped_and_server_survives(garbage: bytes) -> None:
    ran = asyncio.Event()

    async def flow(session: AgiSession) -> None:
        ran.set()

    async with server({"flow": flow}) as srv:
        async with call(srv, garbage) as ast:
            assert await ast.closed()
        assert srv.stats.protocol_errors == 1
        async with call(srv, headers()) as ast:
            await asyncio.wait_for(ran.wait(), 5)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=300))
async def test_garbage_replies_end_the_session_cleanly(garbage: bytes) -> None:
    outcome: list[str] = []

    async def flow(session: AgiSession) -> None:
        try:
            await session.command("ANSWER", timeout=1)
            outcome.append("reply")
        except (AGIProtocolError, AGIHangup, AGITimeout) as exc:
            outcome.append(type(exc).__name__)

    async with server({"flow": flow}) as srv:
        async with call(srv, headers()) as ast:
            await ast.command()
            ast.send(garbage)
            await ast.close()
        for _ in range(200):
            if srv.stats.active == 0 and srv.stats.sessions == 1:
                break
            await asyncio.sleep(0.01)
        assert srv.stats.active == 0
    assert len(outcome) == 1


async def test_missing_sound_on_a_live_channel_is_skipped_not_a_hangup() -> None:
    played: list[str] = []

    async def flow(session: AgiSession) -> None:
        played.append(await session.stream_file("ivr/missing/fr/hello", "1"))
        played.append(await session.get_data("ivr/missing/fr/menu", timeout_ms=1000, max_digits=1))

    async with server({"flow": flow}) as srv, call(srv, headers()) as ast:
        assert await ast.command() == 'STREAM FILE "ivr/missing/fr/hello" "1"'
        ast.send(b"200 result=-1 endpos=0\n")
        assert await ast.command() == "CHANNEL STATUS"
        ast.send(b"200 result=6\n")  # up: the file was missing, the caller is there
        assert await ast.command() == 'GET DATA "ivr/missing/fr/menu" "1000" "1"'
        ast.send(b"200 result=-1\n")
        assert await ast.command() == "CHANNEL STATUS"
        ast.send(b"200 result=6\n")
        assert await ast.command() == 'GET DATA "silence/1" "1000" "1"'
        ast.send(b"200 result=2\n")
        assert await ast.closed()
    assert played == ["", "2"]


async def test_minus_one_then_dead_channel_is_a_hangup() -> None:
    outcome: list[str] = []

    async def flow(session: AgiSession) -> None:
        try:
            await session.stream_file("hello")
        except AGIHangup:
            outcome.append("hangup")
            raise

    async with server({"flow": flow}) as srv, call(srv, headers()) as ast:
        await ast.command()
        ast.send(b"200 result=-1 endpos=10\n")
        assert await ast.command() == "CHANNEL STATUS"
        ast.send(b"511 Command Not Permitted on a dead channel or intercepted channel\n")
        assert await ast.closed()
    assert outcome == ["hangup"]
