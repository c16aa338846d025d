"""A TCP server whose every connection runs in a task it owns (FastAGI, AudioSocket).

asyncio runs a ``start_server`` callback in a task of its own that it does
not expect to be cancelled (3.11 logs a spurious error when it is), so each
session runs in a task this server owns; :meth:`stop` cancels and awaits
them, which closes their sockets (Asterisk then resumes the dialplan).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar, Protocol

import structlog

from callcenter.errors import CallCenterError
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.tcp")


class SessionCounts(Protocol):
    sessions: int
    """Connections accepted since start."""
    active: int
    """Connections open now."""


class SessionServer:
    service: ClassVar[str]
    """Shown in errors and logs ("FastAGI")."""
    listen_error: ClassVar[type[CallCenterError]]
    """Raised when the port cannot be bound."""

    def __init__(self, host: str, port: int, stats: SessionCounts) -> None:
        self.host = host
        self._port = port
        self._counts = stats
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (port 0 asks for any free one)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._on_connection, self.host, self._port)
        except OSError as exc:
            raise self.listen_error(
                f"cannot listen for {self.service} on {self.host}:{self._port}: {exc}"
            ) from exc
        log.info("tcp.listening", service=self.service, host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await cancel_and_wait(list(self._connections))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, from its first byte to its end."""
        raise NotImplementedError

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.create_task(self._session(reader, writer), name=f"{self.service}-session")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        await asyncio.wait([task])

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._counts.sessions += 1
        self._counts.active += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._counts.active -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            _break_transport_cycle(writer.transport)


def _break_transport_cycle(transport: asyncio.BaseTransport) -> None:
    """CPython 3.11's selector transport keeps a bound method of itself
    (``_read_ready_cb``) after it is closed: a reference cycle that only a
    full garbage collection frees. A FastAGI connection lives as long as its
    caller waits, long enough to reach the oldest generation, so every call
    left two such cycles there, and the full collections they triggered
    paused the event loop for up to 100 ms at 30 calls/s (bench/e2e_load.py).
    Closed, it no longer reads: dropping the method frees it by refcount.
    uvloop's transports (``callcenter run``) have no such attribute; this
    stays for the standard loop (``bench/e2e_load.py --loop asyncio``)."""
    if transport.is_closing() and hasattr(transport, "_read_ready_cb"):
        transport._read_ready_cb = None
