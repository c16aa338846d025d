"""Tier 3: a real Prometheus scrapes the daemon while sipp calls flow through
the sandbox Asterisk; every Grafana panel's PromQL returns series with the
labels its legend shows.

The traffic: a caller who gives up waiting (no agent yet), two callers who go
through an IVR menu to an agent (the second waits for the first to finish,
the agent hangs up first and the caller answers the survey), a callback
promised by the agent; recordings are processed. Speech no-match is the one
family this traffic cannot produce (no speech model in these tests): it is
checked to exist in /metrics' families and excused from the series check.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from callcenter.callpath.service import Phase
from callcenter.stats.model import AGENT_STATES
from callcenter.testing.daemons import ivr_test_scripts, rest, running_daemon
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.prometheus import DASHBOARDS, LEGEND_LABEL, panels, prometheus, promql
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk


SITE = """
queues:
  support:
    skills: {support: 1}
    language: fr
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 60
    survey: enquete_satisfaction
  ventes:
    skills: {ventes: 1}
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 60
routes:
  '3901': {queue: support}
  '3905': {queue: ventes, ivr: test_menu}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5, ventes: 5}}
"""

ALLOWED = {
    "queue": {"support", "ventes"},
    "skill": {"support", "ventes"},
    "state": set(AGENT_STATES),
    "window": {"5m", "15m", "1h"},
    "outcome": {"answered", "abandoned"},
    "script": {"test_menu", "enquete_satisfaction"},
}
NO_TRAFFIC_FOR = {"callcenter_speech_nomatch_total"}


async def test_every_panel_has_series_from_real_calls(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    scripts = ivr_test_scripts(tmp_path / "scripts")
    async with (
        running_daemon(asterisk, tmp_path, SITE, scripts_dir=scripts) as d,
        prometheus([f"127.0.0.1:{d.http.port}"], scrape_interval=0.5) as prom,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=2500),
    ):
        await prom.wait_for_scrapes(2)
        assert await prom.targets_up()
        # Nobody to answer yet: this caller gives up after 8 s in the queue.
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=8000) as leaver:
            await until(lambda: d.callpath.history, timeout=30, what="an abandon")
            await leaver.wait(timeout=20)
        d.callpath.agent_login("a01")
        async with sipp_caller(
            asterisk.ports.sip, "3905", calls=2, rate=2, digits="2,,,,,,,4,,,,,,#", gap_ms=1000
        ) as callers:
            await until(lambda: len(d.callpath.history) == 3, timeout=60, what="2 calls served")
            await callers.wait(timeout=60)
        served = [r for r in d.callpath.history if r.phase is Phase.COMPLETED]
        body = {"interaction": served[0].interaction_id, "number": "0698765432"}
        body["at"] = "2099-01-01T09:00:00+01:00"  # promised, still pending at the end
        assert (await rest(d, "POST", "/api/agents/a01/callbacks", body))[0] == 200
        await until(
            lambda: sum("recording_file" in r.context for r in served) == 2,
            timeout=30,
            what="recordings processed",
        )
        await prom.wait_for_scrapes(4)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{d.http.port}/metrics") as reply,
        ):
            exposition = await reply.text()
        families = {
            line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE")
        }
        empty: list[str] = []
        for path in sorted(DASHBOARDS.glob("*.json")):
            board = json.loads(path.read_text())
            for panel in panels(board):
                for target in panel.get("targets", []):
                    expr = promql(target["expr"], board)
                    where = f"{path.name} / {panel['title']!r}: {expr}"
                    result = await prom.query(expr)
                    if any(name in expr for name in NO_TRAFFIC_FOR):
                        assert any(name in families for name in NO_TRAFFIC_FOR), where
                        continue
                    if not result:
                        empty.append(where)
                        continue
                    labels = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
                    for series in result:
                        metric = series["metric"]
                        assert labels <= metric.keys(), f"{where} lacks {labels}: {metric}"
                        for label in labels & ALLOWED.keys():
                            assert metric[label] in ALLOWED[label], f"{where}: {metric}"
        assert not empty, "panels without series:\n" + "\n".join(empty)

        pending = await prom.query('callcenter_callbacks_pending{queue="support"}')
        assert [float(s["value"][1]) for s in pending] == [1.0]
        exits = await prom.query("callcenter_ivr_node_exits_total")
        assert {(s["metric"]["script"], s["metric"]["node"]) for s in exits} >= {
            ("test_menu", "menu"),
            ("test_menu", "support"),
        }
