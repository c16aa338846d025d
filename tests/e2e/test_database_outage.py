"""Tier 3: PostgreSQL goes down while calls flow through the real daemon.

The daemon runs on a private PostgreSQL cluster (the session's shared one is
never stopped). Calls are served; the cluster is stopped for real
(``pg_ctl stop -m immediate``: every connection dies); more callers arrive
and are connected, an agent pauses and comes back, a disposition is set, an
agent's desktop keeps receiving its events. The writer's backlog shows on
``/health`` and ``/metrics``. The cluster comes back on the same port and
data directory; the pool reconnects, the backlog drains, and every call of
both phases is in ``interactions`` exactly once, with its legs, the agent
state history and the disposition. Desktop authentication keeps working for
the people already at work: tokens opened before the outage still act through
REST (an agent pauses and comes back with their own token), a user who logged
in since start logs in again (that session reaches ``user_sessions`` when the
database is back, and so does a supervisor's audit row); a token or a user
never seen gets a clear 503 (WebSocket close 1013). The other database users
(the CRM screen-pop, the interval refresher) degrade with a clear answer or
log line meanwhile, and recover.

Second test: the daemon itself is stopped during the outage, with records in
memory and (a small memory bound) in its spool file; a new daemon with the
same spool directory and the database back writes every one of them exactly
once, before it reads the agents' state back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from callcenter.callpath.service import Phase
from callcenter.cti.access import Role, token_digest
from callcenter.daemon import Daemon
from callcenter.sandbox.postgres import PostgresSandbox
from callcenter.store.users import seed_site_users
from callcenter.testing.daemons import rest, running_daemon
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

PASSWORD = "correct horse"
CALLS = 3  # per phase

SITE = """
queues:
  support: {skills: {support: 1}, wrapup: 0.3, ring_timeout: 8, first_announce_after: 60}
routes:
  '3901': {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5}}
  a02: {name: Agent 2, endpoint: agent12, skills: {support: 5}}
"""

# Error-level events a database outage may log: each says what failed and
# that it is retried (or answered 503); nothing is dropped by any of them.
EXPECTED_ERRORS = {"store.write_failed", "interval_refresh.failed", "cti.auth_unavailable"}


async def health(d: Daemon) -> dict[str, Any]:
    url = f"http://127.0.0.1:{d.http.port}/health"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        body: dict[str, Any] = await reply.json()
        return body


async def metric(d: Daemon, name: str) -> float:
    url = f"http://127.0.0.1:{d.http.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        text = await reply.text()
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[-1])


async def login(d: Daemon, user: str) -> str:
    body = {"login": user, "password": PASSWORD}
    status, reply = await rest(d, "POST", "/api/auth/login", body)
    assert status == 200, reply
    return str(reply["token"])


async def open_desktop(
    d: Daemon, http: aiohttp.ClientSession, token: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """A CTI socket as the desktop opens it: the socket and its first reply."""
    ws = await http.ws_connect(f"http://127.0.0.1:{d.http.port}/cti/ws")
    await ws.send_str(json.dumps({"type": "hello", "token": token}))
    reply: dict[str, Any] = json.loads((await ws.receive(timeout=10)).data)
    return ws, reply


async def recorded_and_written(d: Daemon, calls: int) -> None:
    """Every recording processed (its metadata submitted), the writer drained."""
    worker = d.recordings
    assert worker is not None
    await until(lambda: len(worker.done) + worker.failures >= calls, 40, "recordings handled")
    assert worker.failures == 0, "a recording failed: see recording.failed in the log"
    assert len(worker.done) == calls
    # Backoff after failures: the writer retries at most writer_retry_max (5 s) apart.
    await until(
        lambda: d.writer is not None and d.writer.backlog == 0, 40, "backlog written", poll=0.1
    )


async def serve(d: Daemon, asterisk: AsteriskInstance, served_before: int) -> list[str]:
    """CALLS sipp callers, each connected to an agent; their interaction ids."""
    async with sipp_caller(asterisk.ports.sip, "3901", calls=CALLS, rate=CALLS) as callers:
        await until(
            lambda: len(d.callpath.history) == served_before + CALLS,
            timeout=30,
            what=f"{CALLS} calls served",
        )
        result = await callers.wait(timeout=30)
    assert result.ok, result.errors or result.stderr
    records = list(d.callpath.history)[served_before:]
    assert all(r.phase is Phase.COMPLETED for r in records), [r.phase for r in records]
    assert all(r.answered_at is not None and r.agent_id for r in records)
    return [r.interaction_id for r in records]


async def test_calls_keep_flowing_through_a_database_outage_and_nothing_is_lost(
    asterisk: AsteriskInstance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    data = Path(tempfile.mkdtemp(prefix="cc-pg-outage-")) / "data"
    postgres = PostgresSandbox(data)
    url = await asyncio.to_thread(postgres.start)
    try:
        with capture_logs() as logs:
            async with (
                running_daemon(
                    asterisk,
                    tmp_path,
                    SITE,
                    database_url=url,
                    auth="required",
                    contacts=True,
                    extra={"interval_refresh": {"interval": 1.0, "days": 1}},
                ) as d,
                sipp_agents(
                    asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=800
                ),
                aiohttp.ClientSession() as http,
            ):
                assert d.users is not None
                assert d.writer is not None
                assert d.interval_refresher is not None
                await seed_site_users(d.users, d.site, PASSWORD)
                await d.users.add_user("s9", Role.SUPERVISOR, PASSWORD)  # not seen until later
                token = await login(d, "admin")
                a02_token = await login(d, "a02")
                for agent in ("a01", "a02"):
                    status, body = await rest(d, "POST", f"/api/agents/{agent}/login", token=token)
                    assert status == 200, body
                desktop, welcome = await open_desktop(d, http, await login(d, "a01"))
                assert welcome["type"] == "welcome", welcome

                # Phase 1: the database is up.
                before = await serve(d, asterisk, 0)
                await recorded_and_written(d, CALLS)
                probe = await asyncpg.connect(url)
                try:
                    assert await probe.fetchval("SELECT count(*) FROM interactions") == CALLS
                    # The sandbox runs with synchronous_commit=off: make what
                    # is committed durable before the immediate shutdown.
                    await probe.execute("CHECKPOINT")
                finally:
                    await probe.close()

                # The outage: every connection of the pool dies.
                written_before = d.writer.written
                refresher_failures = d.interval_refresher.failures
                outage_started = time.time()
                await asyncio.to_thread(postgres.stop)
                # An agent logged in before the outage works with their token.
                status, body = await rest(
                    d, "POST", "/api/agents/a02/pause", {"reason": "lunch"}, token=a02_token
                )
                assert status == 200, body
                during = await serve(d, asterisk, CALLS)
                assert {r.agent_id for r in list(d.callpath.history)[CALLS:]} == {"a01"}
                status, body = await rest(d, "POST", "/api/agents/a02/ready", token=a02_token)
                assert status == 200, body
                d.callpath.set_disposition(during[0], "a01", "resolved", "written later")
                outage_ended = time.time()

                # Visible backlog, nothing written, nothing dropped.
                assert d.writer.written == written_before
                assert (await health(d))["db_writer_backlog"] > 0
                assert await metric(d, "callcenter_db_writer_backlog") > 0
                # a01's desktop, opened before the outage, saw every call ring.
                rung: set[str] = set()
                while not set(during) <= rung:
                    event = json.loads((await desktop.receive(timeout=10)).data)
                    if event.get("type") == "event" and event["kind"] == "call.ringing":
                        rung.add(event["data"]["interaction"])
                # Sessions open before the outage keep working; a user seen
                # since start logs in again, on REST and on the desktop socket.
                status, body = await rest(d, "GET", "/api/agents", token=token)
                assert status == 200, body
                relogged = await login(d, "a01")
                status, body = await rest(d, "GET", "/api/auth/me", token=relogged)
                assert (status, body["login"]) == (200, "a01"), body
                second_desktop, welcome = await open_desktop(d, http, relogged)
                assert welcome["type"] == "welcome", welcome
                await second_desktop.close()
                # A supervisor's audited action answers 200; its row waits.
                status, body = await rest(
                    d, "POST", "/api/agents/a01/message", {"text": "outage"}, token=token
                )
                assert status == 200, body
                # Never seen since start: cannot be checked, a clear 503, not a 500.
                status, body = await rest(
                    d, "POST", "/api/auth/login", {"login": "s9", "password": PASSWORD}
                )
                assert status == 503, body
                status, body = await rest(d, "GET", "/api/agents", token="never-issued")
                assert status == 503, body
                refused, reply = await open_desktop(d, http, "never-issued")
                assert (reply["type"], reply["code"]) == ("error", "unavailable")
                await refused.receive(timeout=5)
                assert refused.close_code == 1013
                assert d.users.backlog == 2  # the new session and the audit row
                await until(
                    lambda: (
                        d.interval_refresher is not None
                        and d.interval_refresher.failures > refresher_failures
                    ),
                    5,
                    "a refresh failed",
                )

                # The database comes back on the same port and data directory.
                assert (await asyncio.to_thread(postgres.start)) == url
                await recorded_and_written(d, 2 * CALLS)
                assert (await health(d))["db_writer_backlog"] == 0
                status, body = await rest(d, "GET", "/api/agents", token=token)
                assert status == 200, body
                users = d.users
                await until(lambda: users.backlog == 0, 15, "sessions and audit written back")
                probe = await asyncpg.connect(url)
                try:
                    outage_session = await probe.fetchrow(
                        "SELECT login, revoked FROM user_sessions WHERE token_hash = $1",
                        token_digest(relogged),
                    )
                    audited = await probe.fetch(
                        "SELECT actor, action, target FROM audit_log WHERE at BETWEEN"
                        " to_timestamp($1) AND to_timestamp($2)",
                        outage_started,
                        time.time(),
                    )
                finally:
                    await probe.close()
                assert outage_session is not None
                assert (outage_session["login"], outage_session["revoked"]) == ("a01", False)
                assert [tuple(r) for r in audited] == [("admin", "message", "a01")]
                status, body = await rest(d, "GET", "/api/auth/me", token=relogged)
                assert (status, body["login"]) == (200, "a01"), body
                refreshed = d.interval_refresher.runs
                await until(
                    lambda: (
                        d.interval_refresher is not None
                        and d.interval_refresher.runs > refreshed + 1
                        and d.interval_refresher.last_error is None
                    ),
                    10,
                    "interval refresh works again",
                )
                handled = {r.interaction_id: r.agent_id for r in d.callpath.history}
                await desktop.close()

        probe = await asyncpg.connect(url)
        try:
            interactions = await probe.fetch(
                "SELECT id::text AS id, outcome, agent_id, answered_at,"
                " context->>'disposition' AS disposition,"
                " context->>'recording_file' AS recording FROM interactions"
            )
            legs = await probe.fetch(
                "SELECT interaction_id::text AS id, count(*) AS n FROM call_legs GROUP BY 1"
            )
            states = await probe.fetch(
                "SELECT agent_id, state, reason, extract(epoch FROM since) AS since,"
                " until IS NULL AS open FROM agent_states ORDER BY agent_id, since"
            )
            offers = await probe.fetch(
                "SELECT interaction_id::text AS id FROM acd_decisions WHERE kind = 'offer'"
            )
            offered = await probe.fetchval(
                "SELECT sum(offered) FROM interval_stats WHERE dimension = 'queue'"
                " AND key = 'support'"
            )
        finally:
            await probe.close()
    finally:
        await asyncio.to_thread(postgres.destroy)
        shutil.rmtree(data.parent, ignore_errors=True)

    # Every call of both phases, exactly once, with its outcome and legs.
    calls = before + during
    by_id = {r["id"]: r for r in interactions}
    assert len(interactions) == len(by_id) == 2 * CALLS
    assert set(by_id) == set(calls)
    for call in calls:
        row = by_id[call]
        assert row["outcome"] == "completed"
        assert row["agent_id"] == handled[call]
        assert row["answered_at"] is not None
        assert row["recording"], call  # the recording's metadata came later
    assert by_id[during[0]]["disposition"] == "resolved"
    assert {r["id"]: r["n"] for r in legs} == dict.fromkeys(calls, 2)
    assert set(calls) <= {r["id"] for r in offers}
    assert offered == 2 * CALLS  # the interval refresher caught up too

    # The agent state history of the outage: a02's lunch and return, a01's calls.
    a02 = [(r["state"], r["reason"]) for r in states if r["agent_id"] == "a02"]
    assert a02[-2:] == [("paused", "lunch"), ("ready", None)], a02
    lunch = next(r for r in states if r["agent_id"] == "a02" and r["state"] == "paused")
    assert outage_started <= float(lunch["since"]) <= outage_ended
    a01_calls = [
        r
        for r in states
        if r["agent_id"] == "a01"
        and r["state"] == "on_call"
        and outage_started <= float(r["since"]) <= outage_ended
    ]
    assert len(a01_calls) == CALLS
    assert sum(1 for r in states if r["open"]) == 2  # one open state per agent

    # Logged errors are the outage's own (each retried or answered 503).
    errors = [e for e in logs if e["log_level"] in ("error", "critical")]
    assert {e["event"] for e in errors} <= EXPECTED_ERRORS, errors
    assert any(e["event"] == "store.write_failed" for e in errors)
    assert any(e["event"] == "cti.crm_lookup_failed" for e in logs)  # screen-pop without CRM
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records


async def test_a_daemon_stopped_during_the_outage_hands_its_backlog_to_the_next_one(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    """The daemon is stopped while PostgreSQL is down, with rows in memory and
    rows spilled to its spool file (a small memory bound); a new daemon with
    the same spool and the database back writes every one, exactly once,
    before it reads the agents' state back."""
    data = Path(tempfile.mkdtemp(prefix="cc-pg-restart-")) / "data"
    postgres = PostgresSandbox(data)
    url = await asyncio.to_thread(postgres.start)
    spool = tmp_path / "spool" / "interactions-node1.jsonl"
    database = {
        "url": url,
        "spool_dir": str(spool.parent),
        "writer_max_memory_rows": 8,
        "writer_retry_max": 1.0,
    }
    try:
        with capture_logs() as logs:
            async with (
                running_daemon(
                    asterisk, tmp_path, SITE, database_url=url, extra={"database": database}
                ) as d,
                sipp_agents(
                    asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=800
                ),
            ):
                assert d.writer is not None
                for agent in ("a01", "a02"):
                    status, body = await rest(d, "POST", f"/api/agents/{agent}/login")
                    assert status == 200, body
                await until(lambda: d.writer is not None and d.writer.backlog == 0, 10, "logins")
                probe = await asyncpg.connect(url)
                try:
                    await probe.execute("CHECKPOINT")  # synchronous_commit=off: made durable
                finally:
                    await probe.close()

                await asyncio.to_thread(postgres.stop)
                outage_started = time.time()
                written_before = d.writer.written
                during = await serve(d, asterisk, 0)
                d.callpath.set_disposition(during[0], "a01", "resolved", "written by the next one")
                await until(
                    lambda: d.recordings is not None and len(d.recordings.done) == CALLS,
                    20,
                    "recordings processed",
                )
                handled = {r.interaction_id: r.agent_id for r in d.callpath.history}
                assert d.writer.written == written_before
                writer = (await health(d))["db_writer"]
                assert writer["spooled"] > 0, writer
                assert writer["in_memory"] <= 8, writer
                assert writer["spool"] == str(spool)
                assert await metric(d, "callcenter_db_writer_spooled_rows") > 0
                assert await metric(d, "callcenter_db_writer_oldest_seconds") > 0
                assert await metric(d, "callcenter_db_writer_failures_total") > 0
                backlog = d.writer.backlog
            outage_ended = time.time()

            # Stopped: the whole backlog is in the spool file, nothing lost.
            lines = [json.loads(line) for line in spool.read_bytes().splitlines()]
            assert len(lines) == backlog
            assert {
                line["row"]["interaction_id"] for line in lines if line["kind"] == "interaction"
            } == set(during)
            spool_bytes = spool.stat().st_size

            assert (await asyncio.to_thread(postgres.start)) == url
            async with running_daemon(
                asterisk, tmp_path, SITE, database_url=url, extra={"database": database}
            ) as d:
                assert d.writer is not None
                # Replayed during start, before the agents were restored.
                assert d.writer.written >= backlog
                assert not spool.exists()
                restored = [e for e in logs if e["event"] == "daemon.restored"][-1]
                assert restored["agents"] == 2  # as the spool left them

        probe = await asyncpg.connect(url)
        try:
            interactions = await probe.fetch(
                "SELECT id::text AS id, outcome, agent_id,"
                " context->>'disposition' AS disposition,"
                " context->>'recording_file' AS recording FROM interactions"
            )
            legs = await probe.fetch(
                "SELECT interaction_id::text AS id, count(*) AS n FROM call_legs GROUP BY 1"
            )
            offers = await probe.fetch(
                "SELECT interaction_id::text AS id, count(*) AS n FROM acd_decisions"
                " WHERE kind = 'offer' GROUP BY 1"
            )
            on_call = await probe.fetchval(
                "SELECT count(*) FROM agent_states WHERE state = 'on_call'"
                " AND since BETWEEN to_timestamp($1) AND to_timestamp($2)",
                outage_started,
                outage_ended,
            )
            open_states = await probe.fetchval(
                "SELECT count(*) FROM agent_states WHERE until IS NULL"
            )
        finally:
            await probe.close()
    finally:
        await asyncio.to_thread(postgres.destroy)
        shutil.rmtree(data.parent, ignore_errors=True)

    # Every call of the outage, exactly once, complete.
    by_id = {r["id"]: r for r in interactions}
    assert len(interactions) == len(by_id) == CALLS
    assert set(by_id) == set(during)
    for call in during:
        assert by_id[call]["outcome"] == "completed"
        assert by_id[call]["agent_id"] == handled[call]
        assert by_id[call]["recording"], call
    assert by_id[during[0]]["disposition"] == "resolved"
    assert {r["id"]: r["n"] for r in legs} == dict.fromkeys(during, 2)
    assert {r["id"]: r["n"] for r in offers} == dict.fromkeys(during, 1)
    assert on_call == CALLS
    assert open_states == 2  # one per agent
    errors = [e for e in logs if e["log_level"] in ("error", "critical")]
    assert {e["event"] for e in errors} <= EXPECTED_ERRORS, errors
    assert any(e["event"] == "store.spooled_at_stop" for e in logs)
    assert any(e["event"] == "store.spool_replay" for e in logs)
    print(f"spool: {backlog} rows, {spool_bytes} bytes, {spool_bytes / backlog:.0f} bytes/row")
