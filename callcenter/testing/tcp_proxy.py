"""A TCP proxy for fault injection between the daemon and Asterisk.

* ``cut()``: close every proxied connection at once (a reset link).
* ``blackhole()``: keep connections open but silently drop all bytes in
  both directions (a half-open link: no FIN, no RST, nothing arrives).
* ``blackhole_after(marker)``: forward the client's next bytes holding
  ``marker`` (an AMI action), then blackhole: the server gets the request,
  its answer never comes back (``tripped`` says when).
* ``refuse(True)``: new connections are closed immediately.
* ``heal()``: back to forwarding for new connections.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from callcenter.tasks import cancel_and_wait


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._blackholed = False
        self._refusing = False
        self._trip: bytes | None = None
        self.tripped = False
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut()
        await self._reap()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def blackhole(self) -> None:
        self._blackholed = True

    def blackhole_after(self, marker: bytes) -> None:
        # A client writes one action at a time, so the marker is not split
        # across two reads in practice.
        self._trip = marker
        self.tripped = False

    def refuse(self, refusing: bool = True) -> None:
        self._refusing = refusing

    def heal(self) -> None:
        self._blackholed = False
        self._refusing = False
        self._trip = None

    async def _reap(self) -> None:
        await cancel_and_wait(list(self._pipes))
        self._pipes.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        for source, sink, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pipe(source, sink, upstream=upstream))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self._blackholed:
                    continue
                writer.write(data)
                if upstream and self._trip is not None and self._trip in data:
                    # Before yielding to the loop: the server's answer cannot
                    # have been read by the other pipe yet.
                    self._trip = None
                    self._blackholed = self.tripped = True
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


async def proxy_in_front_of(url: str) -> tuple[TcpProxy, str]:
    """A started proxy in front of the server of a database ``url``, and the
    same URL through the proxy (for faults between a pool and PostgreSQL)."""
    target = urlsplit(url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    through = target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}").geturl()
    return proxy, through
