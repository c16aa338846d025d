"""The daemon's HTTP server (aiohttp): health now; REST, CTI and /metrics later."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

HealthProbe = Callable[[], Mapping[str, Any]]


class HttpServer:
    def __init__(self, host: str, port: int, health: HealthProbe) -> None:
        self._host = host
        self._port = port
        self._health = health
        self.app = web.Application()
        self.app.router.add_get("/health", self._handle_health)
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # Port 0 asks for any free port: report the one we got.
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_health(self, _request: web.Request) -> web.Response:
        report = dict(self._health())
        status = 200 if report.get("ok") else 503
        return web.json_response(report, status=status)
