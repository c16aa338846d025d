"""Tier 2: schema migrations against a real PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from callcenter.errors import StoreError
from callcenter.store.db import create_pool, head_revision, migrate
from callcenter.testing.databases import fresh_database

pytestmark = pytest.mark.postgres


async def test_upgrade_from_empty_database(database_url: str) -> None:
    url = await fresh_database(database_url)
    assert await migrate(url) == head_revision()
    connection = await asyncpg.connect(url)
    try:
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
        tables = {
            r["tablename"]
            for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
            )
        }
    finally:
        await connection.close()
    assert version == head_revision()
    assert {"interactions", "call_legs", "acd_decisions", "agent_states"} <= tables


async def test_migrate_is_idempotent_and_keeps_data(database_url: str) -> None:
    url = await fresh_database(database_url)
    await migrate(url)
    pool = await create_pool(url)
    try:
        await pool.execute(
            "INSERT INTO interactions (id, direction, node, linkedid)"
            " VALUES ($1, 'inbound', 'n1', 'x')",
            uuid.uuid4(),
        )
        await migrate(url)
        assert await pool.fetchval("SELECT count(*) FROM interactions") == 1
    finally:
        await pool.close()


async def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        await create_pool("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="migration failed"):
        await migrate("postgresql://nobody@127.0.0.1:1/none")
