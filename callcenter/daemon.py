"""The one wiring module: Asterisk events -> tracker -> (ACD) -> decisions -> actions.

The daemon owns every long-lived component and every task; ``stop`` cancels
and awaits them in reverse order of start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from callcenter.adapters.ami import AmiClient, Connected, Disconnected, Resync, StreamItem
from callcenter.adapters.fastagi import FastAgiServer
from callcenter.adapters.http import HttpServer
from callcenter.clock import Clock, SystemClock
from callcenter.config import Settings
from callcenter.flows.selftest import selftest
from callcenter.protocol.channels import ChannelTracker
from callcenter.store.db import create_pool, migrate

log = structlog.get_logger("callcenter.daemon")


class Daemon:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        node = settings.node.name
        self.tracker = ChannelTracker(node=node)
        self.ami = AmiClient(
            settings.ami, settings.ami.resolved_secret(), node=node, clock=self.clock
        )
        self.ami.subscribe(self._on_ami)
        self.agi = FastAgiServer(
            settings.agi.host,
            settings.agi.port,
            {"selftest": selftest},
            idle_timeout=settings.agi.idle_timeout,
        )
        self.http = HttpServer(settings.http.host, settings.http.port, self.health)
        self.pool: Any = None
        self._started: list[str] = []

    async def start(self) -> None:
        url = self.settings.database.url
        if url is not None:
            revision = await migrate(url.get_secret_value())
            log.info("database.ready", revision=revision)
            self.pool = await create_pool(
                url.get_secret_value(),
                min_size=self.settings.database.min_connections,
                max_size=self.settings.database.max_connections,
            )
            self._started.append("pool")
        await self.agi.start()
        self._started.append("agi")
        await self.http.start()
        self._started.append("http")
        await self.ami.start()
        self._started.append("ami")
        log.info(
            "daemon.started",
            node=self.settings.node.name,
            agi_port=self.agi.port,
            http_port=self.http.port,
        )

    async def stop(self) -> None:
        for name in reversed(self._started):
            try:
                if name == "ami":
                    await self.ami.stop()
                elif name == "http":
                    await self.http.stop()
                elif name == "agi":
                    await self.agi.stop()
                elif name == "pool":
                    await self.pool.close()
            except Exception:
                log.exception("daemon.stop_failed", component=name)
        self._started.clear()
        log.info("daemon.stopped")

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def health(self) -> dict[str, Any]:
        stats = self.ami.stats
        return {
            "ok": self.ami.connected,
            "node": self.settings.node.name,
            "ami": {
                "connected": self.ami.connected,
                "events": stats.events,
                "malformed": stats.malformed,
                "reconnects": stats.reconnects,
                "ping_timeouts": stats.ping_timeouts,
            },
            "channels": len(self.tracker.channels()),
        }

    async def _on_ami(self, item: StreamItem) -> None:
        if isinstance(item, Resync):
            changes = self.tracker.resync(list(item.channels), list(item.bridges))
            log.info("ami.resynced", channels=len(item.channels), changes=len(changes))
        elif isinstance(item, Connected | Disconnected):
            return
        else:
            self.tracker.apply(item)
