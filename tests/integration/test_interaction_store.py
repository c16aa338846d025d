"""Tier 2: finished interactions reach a real PostgreSQL through the writer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from callcenter.adapters.metrics import DaemonHealth, MetricsExporter
from callcenter.cli import main
from callcenter.clock import ManualClock
from callcenter.errors import StoreError
from callcenter.stats import RealtimeStats, StatsConfig
from callcenter.store import interactions
from callcenter.store import spool as spool_module
from callcenter.store.db import create_pool, migrate
from callcenter.store.interactions import InteractionWriter
from callcenter.store.rows import AgentStateRow, CallbackRow, DecisionRow, InteractionRow, Leg
from callcenter.store.spool import Entry, SpoolFile
from callcenter.testing.databases import fresh_database
from callcenter.testing.tcp_proxy import proxy_in_front_of
from callcenter.testing.waiting import until

pytestmark = pytest.mark.postgres


async def _fresh(database_url: str) -> str:
    url = await fresh_database(database_url)
    await migrate(url)
    return url


def row(outcome: str = "completed", **changes: object) -> InteractionRow:
    linkedid = f"node1-1700000000.{uuid.uuid4().int % 100_000}"
    values: dict[str, object] = {
        "interaction_id": str(uuid.uuid4()),
        "node": "node1",
        "linkedid": linkedid,
        "queue": "support",
        "caller_number": "0612345678",
        "language": "fr",
        "priority": 0,
        "enqueued_at": 1_700_000_000.0,
        "answered_at": 1_700_000_012.5,
        "ended_at": 1_700_000_100.0,
        "agent_id": "a01",
        "outcome": outcome,
        "context": {"dnis": "3901", "offers": 1},
        "legs": (Leg(linkedid, "PJSIP/trunk-00000001", "caller", 1_700_000_000.0, None),),
    }
    values.update(changes)
    return InteractionRow(**values)  # type: ignore[arg-type]


async def test_rows_are_written_in_order_and_upserts_are_idempotent(database_url: str) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool)
    await writer.start()
    try:
        first = row()
        abandoned = row("abandoned", answered_at=None, agent_id=None)
        writer.submit(first)
        writer.submit(abandoned)
        writer.submit(first)  # a retry of the same interaction changes nothing
        await writer.flush()
        assert writer.backlog == 0
        assert writer.written == 3
        records = await pool.fetch(
            "SELECT id::text, outcome, agent_id, answered_at, ended_at - enqueued_at AS held,"
            " context->>'dnis' AS dnis FROM interactions ORDER BY outcome"
        )
        legs = await pool.fetchval("SELECT count(*) FROM call_legs")
    finally:
        await writer.stop()
        await pool.close()
    assert [(r["outcome"], r["agent_id"]) for r in records] == [
        ("abandoned", None),
        ("completed", "a01"),
    ]
    assert records[1]["held"].total_seconds() == 100.0
    assert records[1]["dnis"] == "3901"
    assert records[0]["answered_at"] is None
    assert legs == 2


async def test_a_failing_database_keeps_the_backlog_and_loses_nothing(database_url: str) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool, retry_max=0.2)
    await writer.start()
    try:
        await pool.execute("ALTER TABLE interactions RENAME TO interactions_away")
        writer.submit(row())
        await writer.flush(timeout=1.0)
        assert writer.backlog == 1
        assert writer.failures >= 1
        await pool.execute("ALTER TABLE interactions_away RENAME TO interactions")
        await writer.flush(timeout=10.0)
        assert writer.backlog == 0
        assert await pool.fetchval("SELECT count(*) FROM interactions") == 1
    finally:
        await writer.stop()
        await pool.close()


async def test_every_interaction_of_a_transferred_call_is_stored(database_url: str) -> None:
    # A caller transferred to another queue keeps their channel, so the
    # call's linkedid: the second interaction shares it with the first.
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool)
    await writer.start()
    try:
        first = row(outcome="completed")
        second = row(
            linkedid=first.linkedid,
            legs=first.legs,
            queue="ventes",
            agent_id="a02",
            context={"origin": first.interaction_id, "transferred_by": "a01"},
        )
        writer.submit(first)
        writer.submit(second)
        await writer.flush()
        stored = await pool.fetch(
            "SELECT id::text, queue, agent_id FROM interactions WHERE node = $1 AND linkedid = $2"
            " ORDER BY queue",
            "node1",
            first.linkedid,
        )
        legs = await pool.fetch("SELECT interaction_id::text FROM call_legs")
    finally:
        await writer.stop()
        await pool.close()
    assert writer.rejected == 0
    assert [(r["id"], r["queue"], r["agent_id"]) for r in stored] == [
        (first.interaction_id, "support", "a01"),
        (second.interaction_id, "ventes", "a02"),
    ]
    # The caller's channel is one leg, kept with the interaction it began in.
    assert [r["interaction_id"] for r in legs] == [first.interaction_id]


# -- bounded memory, spool file, timeouts, idempotency (issue 4) -------------


def decision(reason: str) -> DecisionRow:
    return DecisionRow(1_700_000_000.0, "offer", str(uuid.uuid4()), "a01", reason)


async def rename(pool: asyncpg.Pool, tables: tuple[str, ...], *, away: bool) -> None:
    """The tables vanish (every write to them fails) or come back."""
    for table in tables:
        old, new = (table, f"{table}_away") if away else (f"{table}_away", table)
        await pool.execute(f"ALTER TABLE {old} RENAME TO {new}")


def spool_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def test_beyond_the_memory_bound_rows_spill_to_the_spool_and_arrive_in_order(
    database_url: str, tmp_path: Path
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "spool" / "writer.jsonl"
    writer = InteractionWriter(pool, spool=spool, max_memory_rows=5, retry_max=0.2)
    await writer.start()
    try:
        await rename(pool, ("interactions", "acd_decisions"), away=True)
        call = row()
        for i in range(20):  # 20 versions of one interaction, 20 decisions, interleaved
            writer.submit(dataclasses.replace(call, context={"seq": i}))
            writer.submit(decision(f"r{i:02}"))
        await until(lambda: writer.spooled >= 35, 5, "rows beyond the bound on disk")
        assert writer.in_memory <= 5
        assert writer.backlog == 40
        assert writer.written == 0
        lines = spool_lines(spool)
        assert len(lines) == writer.spooled
        assert {line["kind"] for line in lines} == {"interaction", "decision"}
        assert lines[-1]["row"]["reason"] == "r19"
        await asyncio.sleep(0.3)
        assert writer.oldest_age() >= 0.3

        await rename(pool, ("interactions", "acd_decisions"), away=False)
        await writer.flush(timeout=20)
        assert writer.backlog == 0
        assert writer.written == 40
        reasons = [
            r["reason"] for r in await pool.fetch("SELECT reason FROM acd_decisions ORDER BY id")
        ]
        seq = await pool.fetchval("SELECT context->>'seq' FROM interactions")
    finally:
        await writer.stop()
        await pool.close()
    assert reasons == [f"r{i:02}" for i in range(20)]  # written in submission order
    assert seq == "19"  # the last version of the interaction is the one kept
    assert not spool.exists()  # every row read back is written: the file is gone


async def test_during_an_outage_new_rows_go_to_disk_at_once(
    database_url: str, tmp_path: Path
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "spool" / "writer.jsonl"
    writer = InteractionWriter(pool, spool=spool, max_memory_rows=1_000, retry_max=0.2)
    await writer.start()
    try:
        await rename(pool, ("acd_decisions",), away=True)
        writer.submit(decision("first"))
        await until(lambda: writer.failures >= 1, 5, "the outage seen")
        for i in range(5):
            writer.submit(decision(f"r{i}"))
        # Far below the memory bound, yet on disk: a kill -9 now loses one row.
        await until(lambda: writer.spooled == 5, 5, "the outage's rows on disk")
        assert writer.in_memory == 1
        assert [line["row"]["reason"] for line in spool_lines(spool)] == [f"r{i}" for i in range(5)]
        await rename(pool, ("acd_decisions",), away=False)
        await writer.flush(timeout=20)
        reasons = [
            r["reason"] for r in await pool.fetch("SELECT reason FROM acd_decisions ORDER BY id")
        ]
    finally:
        await writer.stop()
        await pool.close()
    assert reasons == ["first", *(f"r{i}" for i in range(5))]


async def test_a_stop_with_a_backlog_spools_it_and_the_next_writer_writes_it_once(
    database_url: str, tmp_path: Path
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    tables = ("interactions", "acd_decisions", "agent_states", "callbacks")
    call = row()
    callback = CallbackRow(
        str(uuid.uuid4()),
        call.interaction_id,
        "node1",
        "support",
        "0612345678",
        "fr",
        0,
        1_700_000_000.0,
        None,
        "pending",
    )
    try:
        first = InteractionWriter(pool, spool=spool, max_memory_rows=3, retry_max=0.2)
        await first.start()
        await rename(pool, tables, away=True)
        first.submit(AgentStateRow("a01", "ready", None, 1_700_000_000.0))
        first.submit(call)
        for i in range(6):
            first.submit(decision(f"r{i}"))
        first.submit(callback)
        first.submit(AgentStateRow("a01", "paused", "lunch", 1_700_000_050.0))
        await until(lambda: first.failures >= 1 and first.spooled > 0, 5, "failing, spilled")
        started = time.monotonic()
        with capture_logs() as logs:
            await first.stop()
        assert time.monotonic() - started < 2  # no waiting for a database that fails
        assert next(e for e in logs if e["event"] == "store.spooled_at_stop")["rows"] == 10
        lines = spool_lines(spool)
        assert [line["kind"] for line in lines] == [
            "agent_state",
            "interaction",
            *["decision"] * 6,
            "callback",
            "agent_state",
        ]  # memory first, then what had spilled: the submission order
        assert len({line["key"] for line in lines}) == 10

        await rename(pool, tables, away=False)
        second = InteractionWriter(pool, spool=spool, retry_max=0.2)
        await second.start()
        assert second.spooled == 10
        await second.flush(timeout=10)
        assert second.backlog == 0
        await second.stop()
        assert not spool.exists()
        third = InteractionWriter(pool, spool=spool)  # nothing left to replay
        await third.start()
        assert third.backlog == 0
        await third.stop()

        counts = {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
        reasons = [
            r["reason"] for r in await pool.fetch("SELECT reason FROM acd_decisions ORDER BY id")
        ]
        states = await pool.fetch(
            "SELECT state, until IS NULL AS open FROM agent_states ORDER BY since"
        )
        legs = await pool.fetchval("SELECT count(*) FROM call_legs")
    finally:
        await pool.close()
    assert counts == {"interactions": 1, "acd_decisions": 6, "agent_states": 2, "callbacks": 1}
    assert reasons == [f"r{i}" for i in range(6)]
    assert [(s["state"], s["open"]) for s in states] == [("ready", False), ("paused", True)]
    assert legs == 1


async def test_a_write_that_hangs_is_timed_out_and_retried(database_url: str) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool, write_timeout=0.5, retry_max=0.2)
    await writer.start()
    holder = await asyncpg.connect(url)
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("LOCK TABLE interactions IN ACCESS EXCLUSIVE MODE")
        with capture_logs() as logs:
            writer.submit(row())
            await until(lambda: writer.failures >= 2, 5, "the hanging write timed out twice")
        assert writer.backlog == 1
        failed = [e for e in logs if e["event"] == "store.write_failed"]
        assert failed[0]["row"] == "InteractionRow"
        assert failed[0]["error"].startswith("TimeoutError")
        await lock.rollback()
        await writer.flush(timeout=10)
        assert writer.backlog == 0
        assert await pool.fetchval("SELECT count(*) FROM interactions") == 1
    finally:
        await holder.close()
        await writer.stop()
        await pool.close()


@pytest.mark.parametrize("kind", ["decision", "agent_state"])
async def test_a_retried_write_whose_commit_reply_was_lost_is_stored_once(
    database_url: str, kind: str
) -> None:
    url = await _fresh(database_url)
    proxy, through = await proxy_in_front_of(url)
    pool = await create_pool(through)
    direct = await asyncpg.connect(url)
    writer = InteractionWriter(pool, write_timeout=0.5, retry_max=0.2)
    await writer.start()
    marker = f"lost-reply-{uuid.uuid4().hex}"
    table = "acd_decisions" if kind == "decision" else "agent_states"
    try:
        # The request reaches PostgreSQL and commits; its reply never comes back.
        proxy.blackhole_after(marker.encode())
        writer.submit(
            decision(marker)
            if kind == "decision"
            else AgentStateRow("a01", "paused", marker, 1.7e9)
        )
        await until(lambda: proxy.tripped, 5, "the write sent")
        count = f"SELECT count(*) FROM {table} WHERE reason = $1"
        for _ in range(100):
            if await direct.fetchval(count, marker) == 1:
                break
            await asyncio.sleep(0.05)
        assert await direct.fetchval(count, marker) == 1  # committed, the writer not told
        await until(lambda: writer.failures >= 1, 5, "the write timed out")
        assert writer.backlog == 1
        proxy.heal()
        await writer.flush(timeout=10)
        assert writer.backlog == 0
        assert await direct.fetchval(count, marker) == 1  # the retry stored nothing twice
        if kind == "agent_state":
            assert (
                await direct.fetchval("SELECT count(*) FROM agent_states WHERE until IS NULL") == 1
            )
    finally:
        await writer.stop()
        await pool.close()
        await direct.close()
        await proxy.stop()


async def test_a_corrupt_spool_line_is_set_aside_and_the_rest_is_written(
    database_url: str, tmp_path: Path
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    try:
        first = InteractionWriter(pool, spool=spool, retry_max=0.2)
        await first.start()
        await rename(pool, ("acd_decisions",), away=True)
        for i in range(3):
            first.submit(decision(f"r{i}"))
        await until(lambda: first.failures >= 1, 5, "failing")
        await first.stop()
        await rename(pool, ("acd_decisions",), away=False)
        lines = spool.read_bytes().splitlines(keepends=True)
        assert len(lines) == 3
        lines[1] = b'{"v":1,"key":"x","kind":"decision","row":{"at":17\n'  # cut short
        # ... and a last line cut short by a crash while appending.
        spool.write_bytes(b"".join(lines) + b'{"v":1,"key":')

        second = InteractionWriter(pool, spool=spool, retry_max=0.2)
        with capture_logs() as logs:
            await second.start()
            await second.flush(timeout=10)
        await second.stop()
        reasons = [
            r["reason"] for r in await pool.fetch("SELECT reason FROM acd_decisions ORDER BY id")
        ]
    finally:
        await pool.close()
    assert reasons == ["r0", "r2"]
    assert second.corrupt_lines == 2
    corrupt = [e for e in logs if e["event"] == "store.spool_line_corrupt"]
    assert [(e["path"], e["line"]) for e in corrupt] == [(str(spool), 2), (str(spool), 4)]
    assert all(e["moved_to"] == str(spool) + ".bad" for e in corrupt)
    assert "JSONDecodeError" in corrupt[0]["error"]
    assert (tmp_path / "writer.jsonl.bad").read_bytes() == lines[1] + b'{"v":1,"key":\n'
    assert not spool.exists()


async def test_an_unexpected_exception_is_retried_and_never_kills_the_writer(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool, retry_max=1.0)
    await writer.start()
    calls = 0
    real_ts = interactions._ts

    def flaky_ts(epoch: float | None) -> datetime | None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("a bug somewhere")
        return real_ts(epoch)

    monkeypatch.setattr(interactions, "_ts", flaky_ts)
    try:
        started = time.monotonic()
        with capture_logs() as logs:
            writer.submit(decision("after a bug"))
            await writer.flush(timeout=5)
        assert writer.backlog == 0
        assert time.monotonic() - started >= 0.6  # backoff 0.2 s then 0.4 s: no busy loop
        assert writer.failures == 2
        failed = [e for e in logs if e["event"] == "store.write_failed"]
        assert [(e["row"], e["error"]) for e in failed] == [
            ("DecisionRow", "RuntimeError: a bug somewhere")
        ] * 2
        assert await pool.fetchval("SELECT count(*) FROM acd_decisions") == 1
    finally:
        await writer.stop()
        await pool.close()


async def test_a_failing_disk_keeps_rows_in_memory_and_loses_none(
    database_url: str, tmp_path: Path
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    writer = InteractionWriter(pool, spool=spool, max_memory_rows=2, retry_max=0.2)
    await writer.start()
    try:
        await rename(pool, ("acd_decisions",), away=True)
        spool.mkdir()  # the file cannot be opened: the disk is failing too
        with capture_logs() as logs:
            for i in range(6):
                writer.submit(decision(f"r{i}"))
            await until(lambda: writer.spool_failures >= 2, 5, "spooling failed")
        assert writer.in_memory == 6  # beyond the bound: kept
        assert writer.spooled == 0
        failed = [e for e in logs if e["event"] == "store.spool_failed"]
        assert failed[0]["path"] == str(spool)
        assert "IsADirectoryError" in failed[0]["error"]
        spool.rmdir()  # the disk is back
        await until(lambda: writer.spooled == 4, 5, "rows spooled")
        await rename(pool, ("acd_decisions",), away=False)
        await writer.flush(timeout=10)
        reasons = [
            r["reason"] for r in await pool.fetch("SELECT reason FROM acd_decisions ORDER BY id")
        ]
    finally:
        await writer.stop()
        await pool.close()
    assert reasons == [f"r{i}" for i in range(6)]


async def test_two_writers_never_share_a_spool_file(database_url: str, tmp_path: Path) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    first = InteractionWriter(pool, spool=spool)
    await first.start()
    try:
        second = InteractionWriter(pool, spool=spool)
        with pytest.raises(StoreError, match="in use by another writer"):
            await second.start()
    finally:
        await first.stop()
        await pool.close()
    third = InteractionWriter(pool, spool=spool)  # free again once the first stopped
    await third.start()
    await third.stop()


# -- rows PostgreSQL refuses: set aside, the rest flows --------------------------


def callback(number: str) -> CallbackRow:
    return CallbackRow(
        str(uuid.uuid4()), None, "node1", "support", number, "fr", 0, 1.7e9, None, "pending"
    )


async def test_a_refused_row_is_set_aside_and_the_rows_behind_it_are_written(
    database_url: str, tmp_path: Path
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    rejected = tmp_path / "writer.jsonl.rejected"
    writer = InteractionWriter(pool, spool=spool, max_memory_rows=2, retry_max=0.2)
    await writer.start()
    good = row()
    nul = row(caller_number="06\x0012")  # text with a NUL byte: SQLSTATE 22021
    bad_callback = callback("not a number")  # CHECK (number ~ digits): 23514
    huge = row(priority=2**31)  # beyond integer: asyncpg's DataError, 22000
    try:
        # Spilled to the spool (memory holds 2): refused rows read back from it too.
        await rename(pool, ("acd_decisions",), away=True)
        with capture_logs() as logs:
            writer.submit(decision("r0"))
            await until(lambda: writer.failures >= 1, 5, "the outage seen")
            for submitted in (good, nul, decision("r1"), bad_callback, huge, decision("r2")):
                writer.submit(submitted)
            await until(lambda: writer.spooled >= 5, 5, "rows on disk")
            await rename(pool, ("acd_decisions",), away=False)
            await writer.flush(timeout=20)
            assert writer.backlog == 0
            writer.submit(decision("r3"))  # the next rows flow
            writer.submit(good)  # its retry: stored once
            await writer.flush(timeout=10)
        assert writer.backlog == 0
        assert writer.written == 6
        assert writer.rejected == 3
        reasons = [
            r["reason"] for r in await pool.fetch("SELECT reason FROM acd_decisions ORDER BY id")
        ]
        stored = [r["id"] for r in await pool.fetch("SELECT id::text FROM interactions")]
        callbacks = await pool.fetchval("SELECT count(*) FROM callbacks")
        exporter = MetricsExporter(
            RealtimeStats(StatsConfig(), ManualClock()),
            lambda: DaemonHealth(
                True, 0.0, 0, writer.backlog, db_writer_rejected_rows=writer.rejected
            ),
        )
        scrape = exporter.render().decode()
    finally:
        await writer.stop()
        await pool.close()
    assert reasons == ["r0", "r1", "r2", "r3"]
    assert stored == [good.interaction_id]
    assert callbacks == 0
    assert not spool.exists()
    lines = spool_lines(rejected)
    assert [(line["kind"], line["rejected"]["sqlstate"]) for line in lines] == [
        ("interaction", "22021"),
        ("callback", "23514"),
        ("interaction", "22000"),
    ]
    assert lines[0]["row"]["caller_number"] == "06\x0012"
    assert "CharacterNotInRepertoireError" in lines[0]["rejected"]["error"]
    assert "CheckViolationError" in lines[1]["rejected"]["error"]
    assert "out of int32 range" in lines[2]["rejected"]["error"]
    assert all(line["rejected"]["at"] > 1.7e9 for line in lines)
    set_aside = [e for e in logs if e["event"] == "store.row_rejected"]
    assert [(e["kind"], e["id"], e["sqlstate"], e["log_level"]) for e in set_aside] == [
        ("interaction", nul.interaction_id, "22021", "error"),
        ("callback", bad_callback.callback_id, "23514", "error"),
        ("interaction", huge.interaction_id, "22000", "error"),
    ]
    assert [e["key"] for e in set_aside] == [line["key"] for line in lines]
    assert all(e["moved_to"] == str(rejected) for e in set_aside)
    assert "callcenter_db_writer_rejected_rows_total 3.0" in scrape


async def test_replay_rejected_writes_the_fixed_rows_and_keeps_the_refused_ones(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    rejected = tmp_path / "writer.jsonl.rejected"
    writer = InteractionWriter(pool, spool=spool)
    await writer.start()
    nul = row(caller_number="06\x0012")
    bad_callback = callback("not a number")
    try:
        writer.submit(nul)
        writer.submit(bad_callback)
        await writer.flush(timeout=10)
        assert writer.rejected == 2
    finally:
        await writer.stop()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("CALLCENTER_CONFIG_FILE", raising=False)
    replay = ["db", "replay-rejected", "--file", str(rejected)]
    try:
        # The operator fixes the interaction (not the callback) and replays.
        text = rejected.read_text()
        assert text.count("\\u0000") == 1
        rejected.write_text(text.replace("06\\u000012", "0612"))
        capsys.readouterr()
        assert await asyncio.to_thread(main, replay) == 1
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"{rejected}: written 1, still refused 1"
        )
        assert await pool.fetchval("SELECT caller_number FROM interactions") == "0612"
        lines = spool_lines(rejected)
        assert [(line["kind"], line["rejected"]["sqlstate"]) for line in lines] == [
            ("callback", "23514")
        ]
        # Fixed too: written, the file goes; a replay again stores nothing twice.
        rejected.write_text(rejected.read_text().replace("not a number", "0699"))
        assert await asyncio.to_thread(main, replay) == 0
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"{rejected}: written 1, still refused 0"
        )
        assert not rejected.exists()
        assert await asyncio.to_thread(main, replay) == 0
        assert await pool.fetchval("SELECT count(*) FROM interactions") == 1
        assert await pool.fetchval("SELECT number FROM callbacks") == "0699"
    finally:
        await pool.close()


# -- versions: an old row written late never replaces a newer one ---------------


async def test_an_old_version_written_after_a_newer_one_leaves_the_newer(
    database_url: str,
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool)
    ended = row(context={"disposition": None, "notes": ""})
    leg = ended.legs[0]
    noted = dataclasses.replace(
        ended,
        context={"disposition": "sale", "notes": "call back on Monday"},
        legs=(dataclasses.replace(leg, ended_at=1_700_000_100.0),),
    )
    pending = callback("0612345678")
    done = dataclasses.replace(pending, status="done", attempts=({"at": 1.7e9 + 60},))
    try:
        # The newer versions are stored, then the older ones come (a replay).
        await writer.write_once(Entry(noted, uuid.uuid4(), 1_700_000_200.0))
        await writer.write_once(Entry(done, uuid.uuid4(), 1_700_000_200.0))
        await writer.write_once(Entry(ended, uuid.uuid4(), 1_700_000_150.0))
        await writer.write_once(Entry(pending, uuid.uuid4(), 1_700_000_150.0))
        interaction = await pool.fetchrow(
            "SELECT context->>'disposition' AS disposition, context->>'notes' AS notes"
            " FROM interactions"
        )
        assert dict(interaction) == {"disposition": "sale", "notes": "call back on Monday"}
        assert await pool.fetchval("SELECT ended_at FROM call_legs") is not None
        assert await pool.fetchval("SELECT status FROM callbacks") == "done"
        assert await interactions.pending_callbacks(pool, "node1") == []
        # A newer version still updates; the same version again (a retry) too.
        later = dataclasses.replace(noted, context={"disposition": "no sale", "notes": ""})
        for _ in range(2):
            await writer.write_once(Entry(later, uuid.uuid4(), 1_700_000_300.0))
        assert await pool.fetchval("SELECT context->>'disposition' FROM interactions") == (
            "no sale"
        )
        # A row stored before versions existed (NULL): the writer's rows come
        # after it (submit order) and replace it...
        await pool.execute("UPDATE callbacks SET version_at = NULL")
        await writer.start()
        writer.submit(dataclasses.replace(done, status="failed"))
        await writer.flush(timeout=10)
        assert await pool.fetchval("SELECT status FROM callbacks") == "failed"
        # ...a replayed rejected row may be older than it: it does not.
        await pool.execute("UPDATE callbacks SET version_at = NULL")
        assert not await writer.write_once(Entry(pending, uuid.uuid4(), 1_700_000_100.0))
        assert await pool.fetchval("SELECT status FROM callbacks") == "failed"
    finally:
        await writer.stop()
        await pool.close()


def unversioned(entry: Entry) -> bytes:
    """The rejected-file line of ``entry`` without its submit time (``at``):
    a line written before rows had versions, or by hand."""
    record = json.loads(spool_module.encode_rejected(entry, "22021", "NUL", 1.7e9))
    del record["at"]
    return (json.dumps(record) + "\n").encode()


async def outcome(pool: asyncpg.Pool, interaction: InteractionRow) -> str:
    sql = "SELECT outcome FROM interactions WHERE id = $1"
    return str(await pool.fetchval(sql, uuid.UUID(interaction.interaction_id)))


async def test_a_replayed_row_without_a_version_never_replaces_a_stored_row(
    database_url: str, tmp_path: Path
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool)
    rejected = tmp_path / "writer.jsonl.rejected"
    stored = row(context={"disposition": "sale"})
    stale = dataclasses.replace(stored, outcome="abandoned", context={"disposition": None})
    stored_callback = dataclasses.replace(callback("0612345678"), status="done")
    stale_callback = dataclasses.replace(stored_callback, status="pending")
    fresh = row("abandoned", answered_at=None, agent_id=None)
    fresh_callback = callback("0699999999")
    try:
        await writer.start()
        writer.submit(stored)
        writer.submit(stored_callback)
        await writer.flush(timeout=10)
        rejected.write_bytes(
            b"".join(
                unversioned(Entry(r, uuid.uuid4(), 1.6e9))  # older than anything, were it known
                for r in (stale, stale_callback, fresh, fresh_callback)
            )
        )
        with capture_logs() as logs:
            result = await interactions.replay_rejected(pool, rejected)
        assert (result.written, result.refused, result.not_applied) == (4, 0, 2)
        assert not rejected.exists()
        # The versioned rows stored are left as they were...
        assert await outcome(pool, stored) == "completed"
        status = "SELECT status FROM callbacks WHERE id = $1"
        assert await pool.fetchval(status, uuid.UUID(stored_callback.callback_id)) == "done"
        # ...what was not stored at all is inserted, without a version.
        inserted = await pool.fetch(
            "SELECT id::text, outcome, version_at FROM interactions WHERE id = $1",
            uuid.UUID(fresh.interaction_id),
        )
        assert [(r["outcome"], r["version_at"]) for r in inserted] == [("abandoned", None)]
        assert await pool.fetchval(
            "SELECT version_at IS NULL FROM callbacks WHERE id = $1",
            uuid.UUID(fresh_callback.callback_id),
        )
        skipped = [e for e in logs if e["event"] == "store.replay_not_applied"]
        assert sorted(e["kind"] for e in skipped) == ["callback", "interaction"]
        # Logged whole, so an operator can still apply one by hand.
        assert {json.loads(e["line"])["row"].get("outcome", "cb") for e in skipped} == {
            "abandoned",
            "cb",
        }
        assert all(e["version"] is None for e in skipped)

        # Neither side has a version: what is stored stays too.
        late = dataclasses.replace(fresh, outcome="completed")
        rejected.write_bytes(unversioned(Entry(late, uuid.uuid4(), 1.6e9)))
        result = await interactions.replay_rejected(pool, rejected)
        assert (result.written, result.not_applied) == (1, 1)
        assert await outcome(pool, fresh) == "abandoned"
        # A versioned row from the live writer does replace a row without one.
        writer.submit(dataclasses.replace(fresh, outcome="timeout"))
        await writer.flush(timeout=10)
        assert await outcome(pool, fresh) == "timeout"
    finally:
        await writer.stop()
        await pool.close()


async def agent_states(pool: asyncpg.Pool, agent_id: str) -> list[tuple[str, Any, Any]]:
    """(state, since, until) in epoch seconds, oldest first."""
    rows = await pool.fetch(
        "SELECT state, extract(epoch FROM since) AS since, extract(epoch FROM until) AS until"
        " FROM agent_states WHERE agent_id = $1 ORDER BY since, id",
        agent_id,
    )
    return [
        (r["state"], float(r["since"]), None if r["until"] is None else float(r["until"]))
        for r in rows
    ]


async def test_an_old_agent_state_written_after_a_newer_one_does_not_close_it(
    database_url: str,
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    writer = InteractionWriter(pool)
    t = 1_700_000_000.0
    try:
        # The newer state first (open), then an older one comes (a replay).
        await writer.write_once(
            Entry(AgentStateRow("a02", "busy", None, t + 20), uuid.uuid4(), t + 21)
        )
        late = Entry(AgentStateRow("a02", "available", None, t + 10), uuid.uuid4(), t + 11)
        await writer.write_once(late)
        assert await agent_states(pool, "a02") == [
            ("available", t + 10, t + 20),  # ends where the stored newer one begins
            ("busy", t + 20, None),
        ]
        # One between two stored states: slotted in, both neighbours right.
        await writer.write_once(
            Entry(AgentStateRow("a02", "wrap_up", None, t + 30), uuid.uuid4(), t + 31)
        )
        await writer.write_once(
            Entry(AgentStateRow("a02", "paused", "lunch", t + 25), uuid.uuid4(), t + 26)
        )
        await writer.write_once(late)  # its retry: nothing changes
        assert await agent_states(pool, "a02") == [
            ("available", t + 10, t + 20),
            ("busy", t + 20, t + 25),
            ("paused", t + 25, t + 30),
            ("wrap_up", t + 30, None),
        ]
        current = await interactions.current_agent_states(pool)
        assert [(s.agent_id, s.state, s.since) for s in current] == [("a02", "wrap_up", t + 30)]
    finally:
        await pool.close()


async def test_agent_states_in_order_close_one_another(database_url: str) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    ticks = iter(range(1_700_000_000, 1_700_001_000))
    writer = InteractionWriter(pool, clock=lambda: float(next(ticks)))
    await writer.start()
    t = 1_700_000_000.0
    try:
        writer.submit(AgentStateRow("a01", "available", None, t + 10))
        writer.submit(AgentStateRow("a01", "paused", "break", t + 20))
        # The same since (a new pause reason): the later row is the current one.
        writer.submit(AgentStateRow("a01", "paused", "lunch", t + 20))
        writer.submit(AgentStateRow("a03", "available", None, t + 5))
        await writer.flush(timeout=10)
        assert writer.backlog == 0
        assert await agent_states(pool, "a01") == [
            ("available", t + 10, t + 20),
            ("paused", t + 20, t + 20),
            ("paused", t + 20, None),
        ]
        current = await interactions.current_agent_states(pool)
        assert [(s.agent_id, s.state, s.reason) for s in current] == [
            ("a01", "paused", "lunch"),
            ("a03", "available", None),
        ]
    finally:
        await writer.stop()
        await pool.close()


# -- replaying the rejected file: one at a time, the file it read ----------------


async def _rejected_file(pool: asyncpg.Pool, spool: Path) -> Path:
    """A rejected file holding one refused interaction (a NUL byte), fixed."""
    writer = InteractionWriter(pool, spool=spool)
    await writer.start()
    try:
        writer.submit(row(caller_number="06\x0012"))
        await writer.flush(timeout=10)
        assert writer.rejected == 1
    finally:
        await writer.stop()
    rejected = spool.with_name(spool.name + ".rejected")
    rejected.write_text(rejected.read_text().replace("06\\u000012", "0612"))
    return rejected


async def test_a_second_replay_stops_at_once_while_one_runs(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    try:
        rejected = await _rejected_file(pool, tmp_path / "writer.jsonl")
        before = rejected.read_bytes()
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.delenv("CALLCENTER_CONFIG_FILE", raising=False)
        replay = ["db", "replay-rejected", "--file", str(rejected)]
        capsys.readouterr()
        with spool_module.replay_lock(rejected):  # a replay running
            assert await asyncio.to_thread(main, replay) == 2
            err = capsys.readouterr().err
            assert "a replay is already running" in err
            assert str(os.getpid()) in err
            assert rejected.read_bytes() == before
            assert await pool.fetchval("SELECT count(*) FROM interactions") == 0
        assert await asyncio.to_thread(main, replay) == 0  # that one ended
        assert not rejected.exists()
        assert await pool.fetchval("SELECT caller_number FROM interactions") == "0612"
    finally:
        await pool.close()


@pytest.mark.parametrize("change", ["replaced", "edited"])
async def test_a_replay_whose_file_changed_meanwhile_settles_nothing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    try:
        rejected = await _rejected_file(pool, tmp_path / "writer.jsonl")
        line = rejected.read_bytes()
        other = spool_module.encode_rejected(
            Entry(decision("set aside meanwhile"), uuid.uuid4(), 1.7e9), "22021", "NUL", 1.8e9
        )
        real_write_once = InteractionWriter.write_once

        async def write_and_change(self: InteractionWriter, entry: Entry) -> bool:
            applied = await real_write_once(self, entry)
            if change == "replaced":  # as another replay (or an editor) would
                tmp = rejected.with_name("tmp")
                tmp.write_bytes(other)
                tmp.replace(rejected)
            else:  # the same file, its lines edited in place
                with rejected.open("r+b") as f:
                    f.write(b" " * len(line))
            return applied

        monkeypatch.setattr(InteractionWriter, "write_once", write_and_change)
        with pytest.raises(StoreError, match="replaced or edited during the replay"):
            await interactions.replay_rejected(pool, rejected)
        # Left as it was made: no line lost, none cut.
        assert rejected.read_bytes() == (other if change == "replaced" else b" " * len(line))
        monkeypatch.undo()
        if change == "replaced":
            result = await interactions.replay_rejected(pool, rejected)
            assert (result.written, result.refused) == (1, 0)
        assert await pool.fetchval("SELECT count(*) FROM interactions") == 1
    finally:
        await pool.close()


# -- setting a refused row aside: exactly once, or still at the head -------------


async def test_a_failed_directory_sync_keeps_the_row_at_the_head_and_sets_it_aside_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    rejected = tmp_path / "writer.jsonl.rejected"
    writer = InteractionWriter(pool, spool=spool, retry_max=0.2)
    await writer.start()
    real_fsync_dir = spool_module._fsync_dir
    failures = 1

    def failing_fsync_dir(path: Path) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError(5, "Input/output error")
        real_fsync_dir(path)

    monkeypatch.setattr(spool_module, "_fsync_dir", failing_fsync_dir)
    nul = row(caller_number="06\x0012")
    try:
        with capture_logs() as logs:
            writer.submit(nul)
            writer.submit(decision("behind it"))
            await writer.flush(timeout=10)
        assert writer.backlog == 0
        assert writer.rejected == 1
        assert await pool.fetchval("SELECT count(*) FROM acd_decisions") == 1
    finally:
        await writer.stop()
        await pool.close()
    assert [line["key"] for line in spool_lines(rejected)] == [
        e["key"] for e in logs if e["event"] == "store.row_rejected"
    ]
    events = [
        (e["event"], e.get("id"), e.get("kept"), e.get("moved_to"))
        for e in logs
        if e["event"] in ("store.reject_failed", "store.row_rejected")
    ]
    assert events == [
        ("store.reject_failed", nul.interaction_id, "at the head", None),
        ("store.row_rejected", nul.interaction_id, None, str(rejected)),
    ]


async def test_a_failure_after_the_row_is_set_aside_is_not_reported_as_kept(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await _fresh(database_url)
    pool = await create_pool(url)
    spool = tmp_path / "writer.jsonl"
    rejected = tmp_path / "writer.jsonl.rejected"
    nul = row(caller_number="06\x0012")
    # Rows a previous run spooled: the refused one is the last read back, so
    # removing the spool file comes right after it is set aside.
    spool.write_bytes(
        spool_module.encode_entry(Entry(decision("before"), uuid.uuid4(), 1.7e9))
        + spool_module.encode_entry(Entry(nul, uuid.uuid4(), 1.7e9))
    )
    real_remove = SpoolFile.remove
    failures = 1

    def failing_remove(self: SpoolFile) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError(5, "Input/output error")
        real_remove(self)

    monkeypatch.setattr(SpoolFile, "remove", failing_remove)
    writer = InteractionWriter(pool, spool=spool, retry_max=0.2)
    try:
        with capture_logs() as logs:
            await writer.start()
            await writer.flush(timeout=10)
            writer.submit(decision("after"))
            await writer.flush(timeout=10)
        assert writer.backlog == 0
        assert writer.rejected == 1
        assert await pool.fetchval("SELECT count(*) FROM acd_decisions") == 2
    finally:
        await writer.stop()
        await pool.close()
    assert len(spool_lines(rejected)) == 1
    events = [e["event"] for e in logs]
    assert "store.reject_failed" not in events
    assert events.count("store.row_rejected") == 1
    assert "store.writer_error" in events  # the spool's housekeeping, said as such
    assert not spool.exists()


def test_an_append_left_by_a_failed_attempt_is_not_made_twice(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl.rejected"
    first = Entry(decision("r0"), uuid.uuid4(), 1.7e9)
    second = Entry(decision("r1"), uuid.uuid4(), 1.7e9)
    spool_module.append_rejected(path, spool_module.encode_rejected(first, "22021", "NUL", 1.8e9))
    line = spool_module.encode_rejected(second, "22021", "NUL", 1.8e9)
    # The line went in, its fsync failed and so did the truncate: the row was
    # kept at the head and is set aside again (another time, same key).
    with path.open("ab") as f:
        f.write(line)
    again = spool_module.encode_rejected(second, "22021", "NUL", 1.9e9)
    spool_module.append_rejected(path, again, str(second.key))
    assert [entry["key"] for entry in spool_lines(path)] == [str(first.key), str(second.key)]
    # A line cut short is not it: appended after it, on a line of its own.
    path.write_bytes(line[:40])
    spool_module.append_rejected(path, again, str(second.key))
    assert path.read_bytes() == line[:40] + b"\n" + again
