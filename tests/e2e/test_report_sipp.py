"""Tier 3: known calls through the real Asterisk, then recompute + report.

sipp callers dial the support queue, one sipp UAS answers for agent a01 and
hangs up after a fixed talk time. The test places three calls on a schedule
and keeps its own record of what it did:

1. **fast**: the agent is free: answered within the SL threshold;
2. **slow**: placed while the agent talks to (1): waits for the talk time
   plus wrap-up: answered outside the threshold;
3. **abandoned**: placed while the agent is busy, the caller hangs up after
   a fixed time in queue (above the short-abandon threshold).

Then ``callcenter report recompute`` and ``report daily --csv`` run
in-process, as a manager would, and the report's figures must equal the ones
computed from the test's record. Counts and SL are exact; times (ASA, AHT,
abandon wait) are compared within a tolerance explained at each assertion.
The queue_log export of the same period is checked too.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callcenter.cli import main
from callcenter.testing.daemons import running_daemon
from callcenter.testing.databases import fresh_database
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

SL_THRESHOLD = 5.0  # seconds: the fast call waits ~1 s, the slow one ~10 s
WRAPUP = 1.0
ANSWER_MS = 300  # the agent's phone rings this long before answering
TALK_MS = 8000  # then the agent talks this long and hangs up
ABANDON_MS = 8000  # the third caller hangs up after this long (short abandons: < 5 s)

SITE = f"""
queues:
  support:
    skills: {{support: 1}}
    ring_timeout: 8
    wrapup: {WRAPUP}
    sl_threshold: {SL_THRESHOLD}
    first_announce_after: 60
    record: false
routes:
  '3901': {{queue: support}}
agents:
  a01: {{name: Agent 1, endpoint: agent11, skills: {{support: 5}}}}
"""


@dataclass
class Placed:
    """What the test did with one call (its own record, not the daemon's)."""

    name: str
    started: float
    """Wall-clock time the sipp caller was started."""
    expect: str
    """"answered" or "abandoned"."""
    expected_wait: float
    """Seconds in queue the test planned for this call (see below)."""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


async def test_report_figures_equal_the_tests_own_record_of_a_sipp_run(
    asterisk: AsteriskInstance,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = await fresh_database(database_url)
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    placed: list[Placed] = []
    talk = TALK_MS / 1000
    async with (
        running_daemon(asterisk, tmp_path, SITE, database_url=url, auth="required") as d,
        sipp_agents(
            asterisk.ports.sip,
            port=asterisk.phones_port,
            answer_ms=ANSWER_MS,
            talk_ms=TALK_MS,
            audio=False,
        ),
    ):
        d.callpath.agent_login("a01")
        t0 = time.time()
        async with contextlib.AsyncExitStack() as calls:
            # 1. The agent is free: the wait is the ring time (plus set-up).
            fast = await calls.enter_async_context(sipp_caller(asterisk.ports.sip, "3901"))
            placed.append(Placed("fast", t0, "answered", ANSWER_MS / 1000))
            await until(
                lambda: d.acd.agent_state("a01") == "on_call", timeout=30, what="fast answered"
            )
            # 2. and 3. while the agent talks to the first caller.
            t1 = time.time()
            slow = await calls.enter_async_context(sipp_caller(asterisk.ports.sip, "3901"))
            # The slow call waits until the first conversation (which started
            # about when this one was placed) and the wrap-up are over, then rings.
            placed.append(Placed("slow", t1, "answered", talk + WRAPUP + ANSWER_MS / 1000))
            await asyncio.sleep(0.5)
            t2 = time.time()
            gone = await calls.enter_async_context(
                sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=ABANDON_MS)
            )
            placed.append(Placed("abandoned", t2, "abandoned", ABANDON_MS / 1000))
            for caller in (fast, slow, gone):
                result = await caller.wait(timeout=60)
                assert result.ok, result.errors or result.stderr
        await until(lambda: len(d.callpath.history) == 3, timeout=30, what="three calls finished")
        await until(
            lambda: d.acd.agent_state("a01") == "ready", timeout=30, what="last wrap-up over"
        )
        first = next(r for r in d.callpath.history if r.agent_id == "a01")
        d.callpath.set_disposition(first.interaction_id, "a01", "resolved", "")
        assert d.writer is not None
        await d.writer.flush()
        assert d.writer.backlog == 0
        t_end = time.time()

    # The manager's side: the CLI, in-process (its own event loop, in a thread).
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CALLCENTER_SITE__FILE", str(site))
    monkeypatch.delenv("CALLCENTER_CONFIG_FILE", raising=False)
    period = ["--from", iso(t0 - 60), "--to", iso(t_end + 60)]
    assert await asyncio.to_thread(main, ["report", "recompute", *period]) == 0
    daily = ["report", "daily", *period, "--csv", "day.csv"]
    assert await asyncio.to_thread(main, daily) == 0
    with (tmp_path / "day.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["key"] == "support"]
        assert rows, "no support line in the daily report"
    assert await asyncio.to_thread(main, ["report", "queue-log", *period, "-o", "queue_log"]) == 0
    events = [line.split("|")[4] for line in (tmp_path / "queue_log").read_text().splitlines()]

    # What the test's record says the report must show.
    answered = [p for p in placed if p.expect == "answered"]
    abandoned = [p for p in placed if p.expect == "abandoned"]
    within = [p for p in answered if p.expected_wait <= SL_THRESHOLD]
    # The run may straddle midnight (UTC): sum the day lines' counts.
    total = {k: sum(int(r[k]) for r in rows) for k in ("offered", "answered", "answered_in_sl",
             "abandoned", "short_abandoned", "callbacks", "handled")}  # fmt: skip
    assert total == {
        "offered": len(placed),
        "answered": len(answered),
        "answered_in_sl": len(within),
        "abandoned": len(abandoned),
        "short_abandoned": 0,
        "callbacks": 0,
        "handled": len(answered),
    }
    if len(rows) == 1:
        [row] = rows
        # Ratios are exact; the CSV writes 4 decimals.
        assert float(row["sl"]) == pytest.approx(len(within) / len(answered), abs=5e-5)
        assert float(row["abandon_rate"]) == pytest.approx(len(abandoned) / len(placed), abs=5e-5)
        # ASA: each wait is the planned one plus the SIP/AGI set-up before the
        # call is queued and the Originate to the agent's phone (loopback,
        # well under a second each on an idle machine); 1.5 s per call covers
        # a loaded 2-core box. Waits are measured from the caller being queued,
        # so nothing of the test's own scheduling enters them.
        expected_asa = sum(p.expected_wait for p in answered) / len(answered)
        assert float(row["asa_s"]) == pytest.approx(expected_asa, abs=1.5)
        # AHT: the agent's talk time (the UAS hangs up after TALK_MS, from its
        # answer) plus the queue's wrap-up; BYE and the wrap-up timer add a
        # few hundred ms at most: 1 s.
        assert float(row["aht_s"]) == pytest.approx(talk + WRAPUP, abs=1.0)
        # The abandoned caller hung up ABANDON_MS after being answered by
        # the AGI, which queued it at once: within 1 s.
        assert float(row["max_wait_s"]) == pytest.approx(
            max(ABANDON_MS / 1000, max(p.expected_wait for p in answered)), abs=1.5
        )
    # Who hung up is not recorded (docs/kpis.md): COMPLETECALLER or COMPLETEAGENT.
    completes = [e for e in events if e.startswith("COMPLETE")]
    others = sorted(e for e in events if not e.startswith("COMPLETE"))
    assert len(completes) == len(answered)
    assert others == sorted(
        ["ENTERQUEUE"] * len(placed) + ["CONNECT"] * len(answered) + ["ABANDON"] * len(abandoned)
    )
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["report", "dispositions", *period, "--csv", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["key,code,count,share", "support,(none),1,0.5", "support,resolved,1,0.5"]
