"""Report REST endpoints (aiohttp), read from PostgreSQL::

    GET /api/reports/daily?from=2024-05-01&to=2024-05-07[&queue=support][&by=queue][&tz=UTC]
    GET /api/reports/intervals?from=2024-05-01&to=2024-05-01[&queue=...][&by=agent]
    GET /api/reports/agents?from=2024-05-01&to=2024-05-31[&agent=a01]

JSON ``{"from": epoch, "to": epoch, "tz": ..., "rows": [...]}`` with the
columns of :data:`callcenter.stats.reports.FIGURE_COLUMNS` (agents:
``AGENT_COLUMNS``); ``&format=csv`` answers the same rows as CSV. Periods are
as for ``callcenter report``: dates are whole local days, both ends included.
``queue`` and ``agent`` may repeat. A bad parameter is a 400 naming it; no
database (yet) a 503.

Wiring (before the HTTP server starts: its router freezes)::

    add_report_routes(app, lambda: pool)   # pool: asyncpg.Pool or None
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Any

import asyncpg
from aiohttp import web

from callcenter.adapters.rest_auth import authorize, json_error
from callcenter.clock import time_zone
from callcenter.cti.access import Action
from callcenter.errors import ConfigError, StoreError
from callcenter.stats.kpis import Dimension
from callcenter.stats.model import StatsConfig
from callcenter.stats.reports import AGENT_COLUMNS, FIGURE_COLUMNS, parse_period, to_csv
from callcenter.store.reports import agent_report, daily_report, interval_report
from callcenter.store.stats import AgentInfo

PoolProvider = Callable[[], "asyncpg.Pool | None"]
MAX_DAYS = 400
"""Longest period one request may ask for."""


def _params(
    request: web.Request, config: StatsConfig
) -> tuple[float, float, tzinfo, Dimension, list[str] | None]:
    query = request.query
    start_text, end_text = query.get("from"), query.get("to")
    if not start_text or not end_text:
        raise ConfigError("from and to are required (2024-05-01 or 2024-05-01T08:00)")
    tz = time_zone(query.get("tz", "UTC"), "tz")
    start, end = parse_period(start_text, end_text, tz, config.interval)
    if end - start > MAX_DAYS * 86_400:
        raise ConfigError(f"period longer than {MAX_DAYS} days")
    by = query.get("by", "queue")
    try:
        dimension = Dimension(by)
    except ValueError:
        raise ConfigError(f"by: one of {', '.join(d.value for d in Dimension)}") from None
    queues = query.getall("queue", []) or None
    return start, end, tz, dimension, queues


def _answer(
    request: web.Request,
    columns: Sequence[str],
    rows: list[dict[str, Any]],
    start: float,
    end: float,
    tz: tzinfo,
) -> web.Response:
    if request.query.get("format") == "csv":
        return web.Response(
            text=to_csv(columns, rows),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="report.csv"'},
        )
    return web.json_response({"from": start, "to": end, "tz": str(tz), "rows": rows})


def add_report_routes(
    app: web.Application,
    pool_provider: PoolProvider,
    *,
    config: StatsConfig | None = None,
    agents: Mapping[str, AgentInfo] | None = None,
) -> None:
    """Add the report endpoints. ``pool_provider`` returns the pool once the
    database is up (None before). ``config`` gives the FCR window; the SL
    thresholds are already in the stored interval rows."""
    stats = config or StatsConfig()

    def guarded(
        handler: Callable[[web.Request, asyncpg.Pool], Awaitable[web.Response]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            authorize(request, Action.SUPERVISE)  # reports are for supervisors and admins
            pool = pool_provider()
            if pool is None:
                raise json_error(503, "no database")
            if request.query.get("format", "json") not in ("json", "csv"):
                raise json_error(400, "format: json or csv")
            try:
                return await handler(request, pool)
            except ConfigError as exc:
                raise json_error(400, str(exc)) from None
            except StoreError as exc:
                raise json_error(503, str(exc)) from None

        return run

    async def daily(request: web.Request, pool: asyncpg.Pool) -> web.Response:
        start, end, tz, dimension, queues = _params(request, stats)
        keys = queues if dimension is Dimension.QUEUE else None
        lines = await daily_report(
            pool, start, end, stats, dimension=dimension, tz=tz, keys=keys, agents=agents
        )
        return _answer(request, FIGURE_COLUMNS, [x.figures() for x in lines], start, end, tz)

    async def intervals(request: web.Request, pool: asyncpg.Pool) -> web.Response:
        start, end, tz, dimension, queues = _params(request, stats)
        keys = queues if dimension is Dimension.QUEUE else None
        lines = await interval_report(pool, start, end, dimension=dimension, tz=tz, keys=keys)
        return _answer(request, FIGURE_COLUMNS, [x.figures() for x in lines], start, end, tz)

    async def agent_figures(request: web.Request, pool: asyncpg.Pool) -> web.Response:
        start, end, tz, _dimension, queues = _params(request, stats)
        chosen = request.query.getall("agent", []) or None
        lines = await agent_report(pool, start, end, stats, keys=chosen, queues=queues)
        return _answer(request, AGENT_COLUMNS, [x.figures() for x in lines], start, end, tz)

    app.router.add_routes(
        [
            web.get("/api/reports/daily", guarded(daily)),
            web.get("/api/reports/intervals", guarded(intervals)),
            web.get("/api/reports/agents", guarded(agent_figures)),
        ]
    )
