"""Tier 2: reports on a real PostgreSQL, from rows written by the real
interaction writer: store queries, ``callcenter report ...`` run in-process
(tables, CSV, PNG, queue_log) and the REST endpoints. Figures hand-computed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from callcenter.adapters.rest_auth import auth_middleware
from callcenter.adapters.rest_reports import add_report_routes
from callcenter.cli import main
from callcenter.stats import StatsConfig
from callcenter.stats.model import DAY
from callcenter.stats.reports import ALL
from callcenter.store.db import create_pool
from callcenter.store.reports import daily_report, fetch_contacts, fetch_queue_calls
from callcenter.store.rows import AgentStateRow, DecisionRow, InteractionRow, Leg
from callcenter.store.stats import AgentInfo, recompute_intervals
from callcenter.testing.databases import written_database

pytestmark = pytest.mark.postgres

B = 1_700_006_400.0  # 2023-11-15 00:00 UTC
DAY1 = "2023-11-15"
CONFIG = StatsConfig(queue_sl_thresholds={"support": 20, "sales": 30}, short_abandon=5)
AGENTS = {"a1": AgentInfo("t1"), "a2": AgentInfo("shop", extended=True)}
SITE = """
queues:
  support: {skills: {support: 1}, sl_threshold: 20}
  sales: {skills: {ventes: 1}, sl_threshold: 30}
  billing: {skills: {support: 1}}
agents:
  a1: {name: Agent 1, endpoint: agent1, skills: {support: 5, ventes: 5}, team: t1}
  a2: {name: Agent 2, endpoint: agent2, skills: {support: 5}, team: shop, extended: true}
"""


def iid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


def call(
    name: str,
    enqueued: float,
    outcome: str,
    *,
    caller: str,
    answered: float | None = None,
    ended: float | None = None,
    agent: str | None = None,
    queue: str = "support",
    context: dict[str, Any] | None = None,
) -> InteractionRow:
    legs = (
        (Leg(f"u-{name}", f"agent {agent}", "agent", answered, ended),)
        if agent is not None and answered is not None
        else ()
    )
    return InteractionRow(
        interaction_id=iid(name),
        node="node1",
        linkedid=f"node1-{name}",
        queue=queue,
        caller_number=caller,
        language="fr",
        priority=0,
        enqueued_at=enqueued,
        answered_at=answered,
        ended_at=ended,
        agent_id=agent,
        outcome=outcome,
        context=context or {},
        legs=legs,
    )


def survey(score: int | None, agent: str) -> dict[str, Any]:
    return {"score": score, "comment": None, "agent": agent}


ROWS: list[Any] = [
    AgentStateRow("a1", "ready", None, B),
    AgentStateRow("a1", "on_call", None, B + 110),
    AgentStateRow("a1", "wrap_up", None, B + 200),
    AgentStateRow("a1", "ready", None, B + 230),
    AgentStateRow("a1", "on_call", None, B + 1005),
    AgentStateRow("a1", "ready", None, B + 1100),
    AgentStateRow("a1", "logged_out", None, B + 1800),
    # i1: 10 s wait (within 20), 90 s talk, 30 s wrap-up (a1's state); caller 0611 calls again.
    call(
        "i1", B + 100, "completed", caller="0611", answered=B + 110, ended=B + 200, agent="a1",
        context={"disposition": "resolved", "survey": survey(5, "a1")},
    ),
    # i2: a1 did not answer (15 s), a2 answered after 35 s in queue; agent hung up (survey ran).
    call(
        "i2", B + 150, "completed", caller="0612", answered=B + 185, ended=B + 300, agent="a2",
        context={"disposition": "follow-up", "survey": survey(2, "a2")},
    ),
    DecisionRow(B + 151, "offer", iid("i2"), "a1", "best agent"),
    DecisionRow(B + 166, "rona", iid("i2"), "a1", "no answer"),
    DecisionRow(B + 170, "offer", iid("i2"), "a2", "best agent"),
    call("i3", B + 400, "abandoned", caller="0613", ended=B + 430),  # 30 s: abandoned
    call("i4", B + 500, "abandoned", caller="0614", ended=B + 502),  # short abandon
    call("i7", B + 600, "callback", caller="0617", ended=B + 640),
    # i5: sales, 5 s wait (T = 30), transferred to billing after 95 s.
    call(
        "i5", B + 1000, "completed", caller="0615", answered=B + 1005, ended=B + 1100, agent="a1",
        queue="sales",
        context={"transfer": {"to_queue": "billing", "to_agent": None, "to_number": None}},
    ),
    # i6: the next day, 0611 again: i1 was not resolved at first contact.
    call(
        "i6", B + DAY + 100, "completed", caller="0611", answered=B + DAY + 105,
        ended=B + DAY + 160, agent="a1",
    ),
]  # fmt: skip


async def populate(database_url: str, *, recompute: bool) -> str:
    url, pool = await written_database(database_url, ROWS)
    try:
        if recompute:
            await recompute_intervals(pool, B, B + 2 * DAY, CONFIG, agents=AGENTS)
    finally:
        await pool.close()
    return url


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    url = asyncio.run(populate(database_url, recompute=False))
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CALLCENTER_SITE__FILE", str(site))
    monkeypatch.delenv("CALLCENTER_CONFIG_FILE", raising=False)
    return tmp_path


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


async def test_store_daily_report_and_contacts_are_the_hand_computed_figures(
    database_url: str,
) -> None:
    url = await populate(database_url, recompute=True)
    pool = await create_pool(url)
    try:
        lines = await daily_report(pool, B, B + DAY, CONFIG, agents=AGENTS)
        contacts = await fetch_contacts(pool, B, B + DAY, CONFIG, AGENTS)
        calls = {c.callid: c for c in await fetch_queue_calls(pool, B, B + DAY)}
    finally:
        await pool.close()
    figures = {line.key: line.figures() for line in lines}
    support = figures["support"]
    assert (support["offered"], support["answered"], support["answered_in_sl"]) == (5, 2, 1)
    assert (support["abandoned"], support["short_abandoned"], support["callbacks"]) == (1, 1, 1)
    assert support["sl"] == 0.5
    assert support["asa_s"] == (10 + 35) / 2
    assert support["aht_s"] == (90 + 115 + 30) / 2  # i1's 30 s of wrap-up from a1's state
    assert support["abandon_rate"] == 1 / (5 - 1)
    assert (support["fcr"], support["fcr_eligible"]) == (0.5, 2)  # i1 repeated by i6
    sales = figures["sales"]
    assert (sales["offered"], sales["sl"], sales["transferred"], sales["fcr"]) == (1, 1.0, 1, 1.0)
    total = figures[ALL]
    assert (total["offered"], total["answered"]) == (6, 3)
    assert total["sl"] == 2 / 3
    assert total["occupancy"] == (90 + 30 + 95) / 1800  # a1 logged in for 30 min
    assert total["fcr"] == 2 / 3
    assert [f.disposition for f in contacts.facts if f.answered] == ["resolved", "follow-up", None]
    assert [(f.surveyed, f.survey_score) for f in contacts.facts if f.surveyed] == [
        (True, 5),
        (True, 2),
    ]
    assert contacts.until == B + DAY + 7 * DAY
    assert len(contacts.records) == 7  # i6 is there as a possible repeat
    i2 = calls["node1-i2"]
    assert (i2.agent, i2.agent_uniqueid, i2.ended_by) == ("a2", "u-i2", "agent")
    assert [(r.agent, r.end - r.start, r.answered) for r in i2.rings] == [
        ("a1", 15.0, False),
        ("a2", 15.0, True),
    ]
    assert calls["node1-i5"].transfer is not None
    assert calls["node1-i5"].transfer.extension == "qbilling"
    assert calls["node1-i7"].outcome == "callback"


def test_cli_recompute_then_daily_table_and_csv(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "recompute", "--from", DAY1, "--to", "2023-11-16"]) == 0
    captured = capsys.readouterr()
    assert "recomputed 2 days" in captured.out
    assert "recompute" in captured.err  # tqdm's bar
    assert main(["report", "daily", "--from", DAY1, "--to", DAY1, "--csv", "day.csv"]) == 0
    header, *body = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["period", "key", "offered", "answered"]
    support_line = next(line for line in body if " support " in line)
    assert support_line.split()[2:6] == ["5", "2", "1", "50.0"]
    rows = {r["key"]: r for r in read_csv(cli_env / "day.csv")}
    assert set(rows) == {"sales", "support", ALL}
    assert (rows["support"]["sl"], rows["support"]["asa_s"], rows["support"]["fcr"]) == (
        "0.5",
        "22.5",
        "0.5",
    )
    assert rows[ALL]["occupancy"] == f"{215 / 1800:.4f}"
    assert rows["sales"]["occupancy"] == ""  # no value: empty, never 0
    # Idempotent: a second recompute gives the same report.
    assert main(["report", "recompute", "--from", DAY1, "--to", DAY1]) == 0
    assert main(["report", "daily", "--from", DAY1, "--to", DAY1, "--csv", "again.csv"]) == 0
    assert (cli_env / "again.csv").read_text() == (cli_env / "day.csv").read_text()


def test_cli_intervals_agents_dispositions_csat(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "recompute", "--from", DAY1, "--to", DAY1]) == 0
    capsys.readouterr()
    args = ["--from", DAY1, "--to", DAY1]
    assert main(["report", "intervals", *args, "--queue", "support", "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["period"], r["offered"], r["answered"]) for r in rows] == [
        ("2023-11-15 00:00", "5", "2")
    ]
    assert main(["report", "intervals", *args, "--by", "agent", "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["period"], r["key"], r["answered"]) for r in rows] == [
        ("2023-11-15 00:00", "a1", "1"),
        ("2023-11-15 00:00", "a2", "1"),
        ("2023-11-15 00:15", "a1", "1"),
    ]
    assert main(["report", "agents", *args, "--csv", "agents.csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["a1", "2", "108"]
    agents = {r["agent"]: r for r in read_csv(cli_env / "agents.csv")}
    assert (agents["a1"]["answered"], agents["a1"]["transferred"]) == ("2", "1")
    assert agents["a1"]["aht_s"] == str((90 + 30 + 95) / 2)
    assert agents["a1"]["disposition_rate"] == "0.5"
    assert (agents["a1"]["csat"], agents["a2"]["csat"]) == ("1", "0")
    assert main(["report", "dispositions", *args, "--csv", "-"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["key"], r["code"], r["count"]) for r in rows] == [
        ("sales", "(none)", "1"),
        ("support", "follow-up", "1"),
        ("support", "resolved", "1"),
    ]
    assert main(["report", "csat", *args]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["support", "2", "2", "100.0", "50.0", "3.50"]


def test_cli_chart_writes_a_readable_png(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from matplotlib import image

    assert main(["report", "recompute", "--from", DAY1, "--to", DAY1]) == 0
    assert main(["report", "chart", "--day", DAY1, "-o", "day.png"]) == 0
    png = cli_env / "day.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 20_000 < len(data) < 2_000_000
    pixels = image.imread(png)
    assert pixels.shape[:2] == (600, 1400)  # 14 x 6 inches at 100 dpi
    assert pixels.std() > 0.05  # not a blank page


def test_cli_queue_log_file(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "queue-log", "--from", DAY1, "--to", DAY1, "-o", "queue_log"]) == 0
    lines = (cli_env / "queue_log").read_text().splitlines()
    b = int(B)
    assert lines[:4] == [
        f"{b + 100}|node1-i1|support|NONE|ENTERQUEUE||0611|1",
        f"{b + 110}|node1-i1|support|a1|CONNECT|10|u-i1|0",
        f"{b + 150}|node1-i2|support|NONE|ENTERQUEUE||0612|1",
        f"{b + 166}|node1-i2|support|a1|RINGNOANSWER|15000",
    ]
    assert f"{b + 185}|node1-i2|support|a2|CONNECT|35|u-i2|15" in lines
    assert f"{b + 200}|node1-i1|support|a1|COMPLETEAGENT|10|90|1" in lines
    assert f"{b + 430}|node1-i3|support|NONE|ABANDON|1|1|30" in lines
    assert f"{b + 640}|node1-i7|support|NONE|EXITWITHKEY|1|1|1|40" in lines
    assert (
        f"{b + 1100}|node1-i5|sales|a1|BLINDTRANSFER|qbilling|callcenter-transfer|5|95|1" in lines
    )
    assert not any("node1-i6" in line for line in lines)  # the next day
    assert [int(line.split("|")[0]) for line in lines] == sorted(
        int(x.split("|")[0]) for x in lines
    )


def test_cli_refuses_bad_periods(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "daily", "--from", "2023-11-16", "--to", DAY1]) == 2
    assert "empty period" in capsys.readouterr().err
    assert main(["report", "daily", "--from", DAY1, "--to", DAY1, "--tz", "Mars/Olympus"]) == 2
    assert "unknown time zone" in capsys.readouterr().err


async def test_rest_reports_json_csv_and_errors(database_url: str) -> None:
    url = await populate(database_url, recompute=True)
    pool = await create_pool(url)
    current: list[asyncpg.Pool | None] = [None]
    # Authentication off: a local admin (the role checks are tested in test_cti).
    app = web.Application(middlewares=[auth_middleware(lambda: None, required=False)])
    add_report_routes(app, lambda: current[0], config=CONFIG, agents=AGENTS)
    server = TestServer(app)
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}/api/reports"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/daily?from={DAY1}&to={DAY1}") as reply:
                assert reply.status == 503  # no database yet
            current[0] = pool
            async with http.get(f"{base}/daily?from={DAY1}&to={DAY1}&queue=support") as reply:
                assert reply.status == 200
                body = await reply.json()
            assert (body["from"], body["to"], body["tz"]) == (B, B + DAY, "UTC")
            assert [(r["key"], r["offered"], r["sl"]) for r in body["rows"]] == [
                ("support", 5, 0.5),
                (ALL, 5, 0.5),
            ]
            async with http.get(f"{base}/intervals?from={DAY1}&to={DAY1}&format=csv") as reply:
                assert reply.status == 200
                assert reply.content_type == "text/csv"
                rows = list(csv.DictReader(io.StringIO(await reply.text())))
            assert [(r["period"], r["key"], r["offered"]) for r in rows] == [
                ("2023-11-15 00:00", "support", "5"),
                ("2023-11-15 00:15", "sales", "1"),
            ]
            async with http.get(f"{base}/agents?from={DAY1}&to={DAY1}&agent=a2") as reply:
                agents = (await reply.json())["rows"]
            assert [(a["agent"], a["answered"], a["csat"]) for a in agents] == [("a2", 1, 0.0)]
            async with http.get(
                f"{base}/daily?from={DAY1}&to={DAY1}&by=agent&tz=Europe/Paris"
            ) as reply:
                keys = [(r["period"], r["key"]) for r in (await reply.json())["rows"]]
            assert keys == [(DAY1, "a1"), (DAY1, "a2"), (DAY1, ALL)]
            period = f"from={DAY1}&to={DAY1}"
            bad_queries = ("from=x&to=y", f"from={DAY1}", f"{period}&by=planet")
            for bad in (*bad_queries, f"{period}&format=xml", f"{period}&tz=Nowhere"):
                async with http.get(f"{base}/daily?{bad}") as reply:
                    assert reply.status == 400, bad
                    assert "error" in json.loads(await reply.text())
    finally:
        await server.close()
        await pool.close()
