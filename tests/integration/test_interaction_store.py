"""Tier 2: finished interactions reach a real PostgreSQL through the writer."""

from __future__ import annotations

import uuid

import pytest

from callcenter.store.db import create_pool, migrate
from callcenter.store.interactions import InteractionRow, InteractionWriter, Leg
from callcenter.testing.databases import fresh_database

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
