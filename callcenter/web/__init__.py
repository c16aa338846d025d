"""The browser pages: agent desktop and supervisor wallboard (static files).

Plain HTML, CSS and JavaScript with no build step, so an operator can read
and adapt them; they talk to the daemon only through the documented REST API
and the CTI WebSocket (docs/cti-protocol.md).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


def web_routes() -> list[web.AbstractRouteDef]:
    async def desktop(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "desktop.html")

    async def wallboard(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "wallboard.html")

    async def home(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/desktop")

    return [
        web.get("/", home),
        web.get("/desktop", desktop),
        web.get("/wallboard", wallboard),
        web.static("/static", STATIC),
    ]
