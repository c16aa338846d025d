"""The CTI WebSocket endpoint (aiohttp): hello, resume, push, heartbeats.

Each connection follows one journal stream: an agent's own, or the
supervisors'. Events are appended to the journal first and then queued to
every connection on that stream, so a page that drops can always resume from
its last sequence number. A connection that cannot keep up (its queue is
full) is closed with 1013 and resumes: slower pages never slow the others,
and nothing is lost.

Closing a socket never changes an agent's state: agents take calls on their
SIP phone, and a throttled background tab or a network blip must not log
anyone out (the failure VICIdial users know as "LAGGED").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from callcenter.clock import Clock
from callcenter.cti.access import Principal, Role
from callcenter.cti.journal import SUPERVISORS, Journal, agent_stream
from callcenter.cti.projector import Publication
from callcenter.cti.protocol import (
    MAX_FRAME,
    Error,
    Event,
    Hello,
    Ping,
    Pong,
    ServerMessage,
    Welcome,
    encode,
    parse_client,
)
from callcenter.errors import AuthError, CTIProtocolError, Forbidden, StoreError
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.cti")

Authenticate = Callable[[str], Awaitable[Principal]]
Snapshot = Callable[[Principal], dict[str, Any]]

# WebSocket close codes (4000-4999 are ours, see docs/cti-protocol.md).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_HELLO = 4400
CLOSE_SILENT = 4408

MAX_ERRORS = 20
"""Protocol errors tolerated on one connection before it is closed (1008)."""


class _Connection:
    def __init__(self, ws: web.WebSocketResponse, principal: Principal, stream: str, size: int):
        self.ws = ws
        self.principal = principal
        self.stream = stream
        self.outbox: asyncio.Queue[ServerMessage | str] = asyncio.Queue(maxsize=size)
        """Messages, or frames already encoded (journal events)."""
        self.overflowed = False

    def push(self, message: ServerMessage | str) -> None:
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True


class CtiServer:
    def __init__(
        self,
        journal: Journal,
        authenticate: Authenticate,
        snapshot: Snapshot,
        clock: Clock,
        *,
        heartbeat: float = 15.0,
        hello_timeout: float = 10.0,
        queue_size: int = 1_000,
    ) -> None:
        self.journal = journal
        self._authenticate = authenticate
        self._snapshot = snapshot
        self._clock = clock
        self.heartbeat = heartbeat
        self.hello_timeout = hello_timeout
        self.queue_size = queue_size
        self._subscribers: dict[str, set[_Connection]] = {}
        self.published = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/cti/ws", self.handle)]

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, publication: Publication) -> Event:
        appended = self.journal.append(
            publication.stream, publication.at, publication.kind, publication.data
        )
        self.published += 1
        for connection in self._subscribers.get(publication.stream, ()):
            connection.push(appended.frame)
        return appended.event

    async def close_all(self) -> None:
        """Daemon shutdown: tell every page to come back later (it resumes)."""
        connections = [c for s in self._subscribers.values() for c in s]
        for connection in connections:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await connection.ws.close(code=CLOSE_GOING_AWAY, message=b"daemon stopping")

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # aiohttp closes with 1009 a frame above max_msg_size: a clean close.
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, autoping=True)
        await ws.prepare(request)
        hello = await self._read_hello(ws)
        if hello is None:
            return ws
        try:
            principal = await self._authenticate(hello.token)
            stream = _stream_of(principal)
        except AuthError as exc:
            await ws.send_str(encode(Error("unauthenticated", str(exc))))
            await ws.close(code=CLOSE_UNAUTHENTICATED, message=b"unauthenticated")
            return ws
        except StoreError as exc:
            log.error("cti.auth_unavailable", error=str(exc))
            await ws.send_str(encode(Error("unavailable", "try again shortly")))
            await ws.close(code=CLOSE_TRY_AGAIN, message=b"try again")
            return ws
        connection = _Connection(ws, principal, stream, self.queue_size)
        # No await between reading the journal and subscribing: every event
        # is either in the replay or pushed after it, never both, never none.
        missed = self.journal.since(stream, hello.epoch, hello.after)
        resumed = missed is not None
        welcome = Welcome(
            login=principal.login,
            role=principal.role.value,
            agent=principal.site_id if principal.role is Role.AGENT else None,
            epoch=self.journal.epoch,
            seq=hello.after or 0 if resumed else self.journal.seq(stream),
            resumed=resumed,
            snapshot={} if resumed else self._snapshot(principal),
            heartbeat=self.heartbeat,
        )
        connection.push(welcome)
        for event in missed or ():
            connection.push(event)
        self._subscribers.setdefault(stream, set()).add(connection)
        log.info(
            "cti.connected",
            login=principal.login,
            stream=stream,
            resumed=missed is not None,
            replayed=len(missed or ()),
        )
        sender = asyncio.create_task(self._send_loop(connection), name=f"cti-send-{stream}")
        try:
            await self._read_loop(connection, sender)
        finally:
            self._subscribers.get(stream, set()).discard(connection)
            await cancel_and_wait([sender])
            if not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.close()
            log.info("cti.disconnected", login=principal.login, code=ws.close_code)
        return ws

    async def _read_hello(self, ws: web.WebSocketResponse) -> Hello | None:
        try:
            async with asyncio.timeout(self.hello_timeout):
                message = await ws.receive()
        except TimeoutError:
            await ws.close(code=CLOSE_NO_HELLO, message=b"hello expected")
            return None
        if message.type is not WSMsgType.TEXT:
            await ws.close(code=CLOSE_NO_HELLO, message=b"hello expected")
            return None
        try:
            parsed = parse_client(message.data)
        except CTIProtocolError as exc:
            await ws.send_str(encode(Error("protocol", str(exc))))
            await ws.close(code=CLOSE_NO_HELLO, message=b"hello expected")
            return None
        if not isinstance(parsed, Hello):
            await ws.send_str(encode(Error("protocol", "the first message must be hello")))
            await ws.close(code=CLOSE_NO_HELLO, message=b"hello expected")
            return None
        return parsed

    async def _read_loop(self, connection: _Connection, sender: asyncio.Task[None]) -> None:
        ws = connection.ws
        errors = 0
        silence = self.heartbeat * 3
        while not sender.done():
            try:
                async with asyncio.timeout(silence):
                    message = await ws.receive()
            except TimeoutError:
                # Nothing from the page for three heartbeats: close; it
                # resumes when it wakes up. The agent's state is untouched.
                await ws.close(code=CLOSE_SILENT, message=b"no heartbeat")
                return
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if message.type is WSMsgType.ERROR:
                return
            if message.type is not WSMsgType.TEXT:
                reply: ServerMessage = Error("protocol", "text frames only")
            else:
                try:
                    parsed = parse_client(message.data)
                except CTIProtocolError as exc:
                    reply = Error("protocol", str(exc))
                else:
                    if isinstance(parsed, Ping):
                        connection.push(Pong(parsed.nonce))
                        continue
                    if isinstance(parsed, Pong):
                        continue
                    reply = Error("protocol", "hello was already received")
            errors += 1
            connection.push(reply)
            if errors >= MAX_ERRORS:
                await ws.close(code=CLOSE_POLICY, message=b"too many protocol errors")
                return

    async def _send_loop(self, connection: _Connection) -> None:
        ws = connection.ws
        outbox = connection.outbox
        while True:
            try:
                async with asyncio.timeout(self.heartbeat):
                    message = await outbox.get()
            except TimeoutError:
                message = Ping(str(int(self._clock.wall())))
            if connection.overflowed:
                log.warning("cti.slow_consumer", login=connection.principal.login)
                await ws.close(code=CLOSE_TRY_AGAIN, message=b"too slow: resume")
                return
            try:
                await ws.send_str(message if isinstance(message, str) else encode(message))
            except (ConnectionError, RuntimeError):
                return


def _stream_of(principal: Principal) -> str:
    if principal.role is not Role.AGENT:
        return SUPERVISORS
    if principal.site_id is None:
        raise Forbidden(f"{principal.login} is an agent user with no agent id in the site")
    return agent_stream(principal.site_id)
