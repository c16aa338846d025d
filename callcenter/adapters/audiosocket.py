"""AudioSocket server: Asterisk streams a call's audio to us over TCP.

``AudioSocket(<uuid>,<host>:<port>)`` (``app_audiosocket``, run from the IVR's
FastAGI session with ``EXEC``) connects, sends the UUID, then 20 ms frames of
8 kHz signed-linear audio, and plays whatever audio we send back. When we send
a *hangup* frame (or close), the application returns 0 and the AGI session
goes on (Asterisk 22: ``ast_audiosocket_receive_frame_with_hangup``).

Whoever expects a call registers a handler for its UUID (:meth:`expect`); the
server runs that handler in the connection's task, which the server owns and
cancels on :meth:`stop`. A connection with an unknown or missing UUID is
hung up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import structlog

from callcenter.adapters.tcp import SessionServer
from callcenter.errors import AudioSocketProtocolError, SpeechError
from callcenter.protocol.audiosocket import (
    Audio,
    AudioSocketParser,
    Event,
    Hangup,
    Uuid,
    audio_frames,
    encode_hangup,
)

__all__ = ["AudioSocketConnection", "AudioSocketHandler", "AudioSocketServer", "AudioSocketStats"]

log = structlog.get_logger("callcenter.audiosocket")

AudioSocketHandler = Callable[["AudioSocketConnection"], Awaitable[None]]


@dataclass
class AudioSocketStats:
    sessions: int = 0
    active: int = 0
    unknown: int = 0
    protocol_errors: int = 0
    handler_errors: int = 0


class AudioSocketConnection:
    """One call's audio. Read with :meth:`read`; answer with :meth:`send_audio`."""

    def __init__(
        self,
        call_id: uuid.UUID,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: AudioSocketParser,
        pending: list[Event],
    ) -> None:
        self.call_id = call_id
        self._reader = reader
        self._writer = writer
        self._parser = parser
        self._pending = pending
        self.closed = False
        self.hung_up = False

    async def read(self) -> list[Event]:
        """The next events; ``[]`` once the peer hung up or the link closed."""
        if self._pending:
            events, self._pending = self._pending, []
            return self._seen(events)
        while not self.hung_up:
            try:
                data = await self._reader.read(65536)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self.hung_up = True
                return []
            events = self._parser.feed(data)
            if events:
                return self._seen(events)
        return []

    def _seen(self, events: list[Event]) -> list[Event]:
        if any(isinstance(e, Hangup) for e in events):
            self.hung_up = True
        return events

    async def send_audio(self, pcm: bytes) -> None:
        """Send audio to the caller as 20 ms frames (the caller hears it as it
        arrives: pace long audio yourself)."""
        if self.closed or self.hung_up:
            return
        try:
            self._writer.write(b"".join(audio_frames(pcm)))
            await self._writer.drain()
        except (ConnectionError, OSError):
            self.hung_up = True

    async def hangup(self) -> None:
        """End the session: Asterisk's AudioSocket application returns."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            self._writer.write(encode_hangup())
            await asyncio.wait_for(self._writer.drain(), 1.0)


class AudioSocketServer(SessionServer):
    """Listen for AudioSocket connections and hand each to the handler
    registered for its UUID."""

    service = "AudioSocket"
    listen_error = SpeechError

    def __init__(
        self,
        host: str,
        port: int,
        *,
        advertise: str | None = None,
        header_timeout: float = 5.0,
    ) -> None:
        self.stats = AudioSocketStats()
        super().__init__(host, port, self.stats)
        self._advertise = advertise
        self.header_timeout = header_timeout
        self._handlers: dict[uuid.UUID, AudioSocketHandler] = {}

    @property
    def address(self) -> str:
        """``host:port`` for ``AudioSocket(uuid,host:port)``."""
        return self._advertise or f"{self.host}:{self.port}"

    @contextlib.contextmanager
    def expect(self, call_id: uuid.UUID, handler: AudioSocketHandler) -> Iterator[None]:
        """Route the connection that announces *call_id* to *handler* while
        the ``with`` block runs."""
        if call_id in self._handlers:
            raise SpeechError(f"AudioSocket call {call_id} is already expected")
        self._handlers[call_id] = handler
        try:
            yield
        finally:
            self._handlers.pop(call_id, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = AudioSocketParser()
        try:
            call_id, pending = await asyncio.wait_for(
                _read_uuid(reader, parser), self.header_timeout
            )
        except (TimeoutError, AudioSocketProtocolError, ConnectionError, OSError) as exc:
            self.stats.protocol_errors += 1
            log.warning("audiosocket.bad_start", error=str(exc) or repr(exc))
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(encode_hangup())
            return
        handler = self._handlers.get(call_id)
        connection = AudioSocketConnection(call_id, reader, writer, parser, pending)
        if handler is None:
            self.stats.unknown += 1
            log.warning("audiosocket.unknown_call", call=str(call_id))
            await connection.hangup()
            return
        try:
            await handler(connection)
        except asyncio.CancelledError:
            raise
        except AudioSocketProtocolError as exc:
            self.stats.protocol_errors += 1
            log.warning("audiosocket.protocol_error", call=str(call_id), error=str(exc))
        except Exception:
            self.stats.handler_errors += 1
            log.exception("audiosocket.handler_failed", call=str(call_id))
        finally:
            await connection.hangup()


async def _read_uuid(
    reader: asyncio.StreamReader, parser: AudioSocketParser
) -> tuple[uuid.UUID, list[Event]]:
    while True:
        data = await reader.read(65536)
        if not data:
            raise AudioSocketProtocolError("connection closed before the uuid frame")
        events = parser.feed(data)
        if events:
            first, *rest = events
            if not isinstance(first, Uuid):
                kind = "audio" if isinstance(first, Audio) else type(first).__name__.lower()
                raise AudioSocketProtocolError(f"first frame is {kind}, expected the uuid")
            return first.value, rest
