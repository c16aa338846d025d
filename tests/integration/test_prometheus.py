"""Tier 2: a real Prometheus scrapes the exporter; every dashboard panel's PromQL
must return series with the labels its legend shows.

The exporter is mounted on the daemon's own HttpServer, as the wiring will
do, and fed synthetic events through the real-time aggregator.
"""

from __future__ import annotations

import json
import re

import aiohttp
from prometheus_client.exposition import generate_latest

from callcenter.adapters.http import HttpServer
from callcenter.adapters.metrics import DaemonHealth, MetricsExporter, metrics_routes
from callcenter.clock import ManualClock
from callcenter.stats import RealtimeStats, StatsConfig
from callcenter.stats.events import (
    Abandoned,
    AgentStateChanged,
    Answered,
    CallbackRequested,
    CallbacksPending,
    Ended,
    IvrNodeExited,
    Offered,
    RecordingWritten,
    SpeechNoMatch,
    StatsEvent,
    Transferred,
    WrapUpEnded,
)
from callcenter.stats.model import AGENT_STATES
from callcenter.testing.prometheus import (
    DASHBOARDS,
    LEGEND_LABEL,
    panels,
    prometheus,
    promql,
)

CONFIG = StatsConfig(sl_threshold=20, short_abandon=5, queue_sl_thresholds={"sales": 60})
ALLOWED = {
    "queue": {"support", "sales"},
    "skill": {"fr", "en", "none"},
    "state": set(AGENT_STATES),
    "window": {"5m", "15m", "1h"},
    "outcome": {"answered", "abandoned"},
    "script": {"accueil"},
    "node": {"menu", "ask"},
    "exit": {"1", "timeout"},
}


def feed(stats: RealtimeStats, clock: ManualClock, round_: int) -> None:
    """Known traffic: every family gets series (queue support on skills fr
    and en, queue sales on no skill)."""
    t = clock.now()
    n = f"r{round_}-"
    if round_ == 0:
        stats.declare_queue("support", ("fr", "en"))
        stats.declare_queue("sales", ("",))
        stats.apply(AgentStateChanged(t, "a1", "ready", ("fr", "en"), team="t1"))
        stats.apply(AgentStateChanged(t, "a2", "ready", ("fr",), team="t1"))
        stats.apply(AgentStateChanged(t, "a3", "paused", (), team="shop", extended=True))
    events: list[StatsEvent] = [
        Offered(t, n + "fast", "support", "fr", customer_id="cust-1"),
        Offered(t, n + "slow", "support", "en"),
        Offered(t, n + "gone", "support", "en"),
        Offered(t, n + "short", "support", "fr"),
        Offered(t, n + "s1", "sales"),
        Offered(t, n + "cb", "sales"),
        Offered(t + 1, n + "wait", "support", "fr"),  # still waiting at the end
        Abandoned(t + 2, n + "short"),
        Answered(t + 10, n + "fast", "a2", team="t1"),
        Abandoned(t + 20, n + "gone"),  # at T: within
        CallbackRequested(t + 30, n + "cb"),
        Answered(t + 45, n + "slow", "a1", team="t1"),  # outside support's 20 s
        Answered(t + 50, n + "s1", "a3", team="shop", extended=True),  # inside sales' 60 s
        Transferred(t + 80, n + "s1"),
        Ended(t + 80, n + "s1"),
        WrapUpEnded(t + 80, n + "s1"),
        Ended(t + 100, n + "fast", hold_seconds=10),
        WrapUpEnded(t + 130, n + "fast"),
        AgentStateChanged(t + 130, "a1", "on_call", ("fr", "en"), team="t1"),
        AgentStateChanged(t + 130, "a2", "wrap_up", ("fr",), team="t1"),
        CallbacksPending(t + 130, "support", 2),
        IvrNodeExited(t + 130, "accueil", "menu", "1"),
        IvrNodeExited(t + 130, "accueil", "menu", "timeout"),
        SpeechNoMatch(t + 130, "accueil", "ask"),
        RecordingWritten(t + 130, "support"),
    ]
    for event in events:
        clock.advance(max(event.at - clock.now(), 0.0))
        stats.apply(event)
    clock.advance(5)


async def test_every_dashboard_panel_returns_series_with_its_labels() -> None:
    clock = ManualClock(start=1000.0)
    stats = RealtimeStats(CONFIG, clock)
    exporter = MetricsExporter(stats, lambda: DaemonHealth(True, 0.02, 3, 0))
    http = HttpServer("127.0.0.1", 0, lambda: {"ok": True})
    http.app.router.add_routes(metrics_routes(exporter))
    await http.start()
    try:
        feed(stats, clock, 0)
        async with prometheus([f"127.0.0.1:{http.port}"], scrape_interval=0.5) as prom:
            await prom.wait_for_scrapes(2)
            assert await prom.targets_up()
            feed(stats, clock, 1)  # counters move between scrapes: rates are not all zero
            await prom.wait_for_scrapes(3)

            # A few figures end to end: exporter -> Prometheus -> PromQL.
            sl = await prom.query('callcenter_queue_service_level_ratio{window="15m"}')
            assert {s["metric"]["queue"]: float(s["value"][1]) for s in sl} == {
                "support": 0.5,  # per round: fast (10 s) within, slow (45 s) outside
                "sales": 1.0,
            }
            waiting = await prom.query("callcenter_queue_calls_waiting")
            assert {s["metric"]["queue"]: s["value"][1] for s in waiting} == {
                "support": "2",
                "sales": "0",
            }
            short = await prom.query("sum(callcenter_queue_short_abandoned_total)")
            assert short[0]["value"][1] == "2"

            checked = 0
            for path in sorted(DASHBOARDS.glob("*.json")):
                board = json.loads(path.read_text())
                for panel in panels(board):
                    for target in panel.get("targets", []):
                        expr = promql(target["expr"], board)
                        where = f"{path.name} / {panel['title']!r}: {expr}"
                        result = await prom.query(expr)
                        assert result, f"no series for {where}"
                        labels = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
                        for series in result:
                            metric = series["metric"]
                            assert labels <= metric.keys(), f"{where} lacks {labels}: {metric}"
                            for label in labels:
                                assert metric[label] in ALLOWED[label], f"{where}: {metric}"
                        checked += 1
            assert checked >= 40, checked  # all three dashboards were read
    finally:
        await http.stop()


async def test_metrics_endpoint_names_and_bounded_labels() -> None:
    clock = ManualClock(start=0.0)
    stats = RealtimeStats(CONFIG, clock)
    feed(stats, clock, 0)
    exporter = MetricsExporter(
        stats,
        lambda: DaemonHealth(
            False, 1.5, 0, 7, users_backlog=3, users_spool_failures=2, ami_dialer_connected=False
        ),
    )
    # The fast writer gives exactly what prometheus_client's own would.
    assert exporter.render() == generate_latest(exporter.registry)
    http = HttpServer("127.0.0.1", 0, lambda: {"ok": True})
    http.app.router.add_routes(metrics_routes(exporter))
    await http.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http.port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
    finally:
        await http.stop()
    label_names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name = line.split("{")[0].split(" ")[0]
        assert name.startswith("callcenter_"), line
        label_names |= set(re.findall(r'(\w+)="', line))
    # Bounded labels only: never a caller number, an interaction or an agent id.
    assert label_names <= {"queue", "skill", "state", "window", "outcome", "le"} | {
        "script",
        "node",
        "exit",
    }
    assert "cust-1" not in text
    # A user store that cannot spool loses logins and logouts at a restart: ops see it.
    assert "callcenter_users_spool_failures_total 2.0" in text
    assert "callcenter_users_backlog 3.0" in text
    assert "callcenter_ami_dialer_connected 0.0" in text
    assert (
        'callcenter_queue_wait_seconds_bucket{le="20",outcome="abandoned",queue="support"} 1.0'
        in text
    )
