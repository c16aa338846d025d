"""A fresh, empty database per test on the shared throw-away cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

from callcenter.store.db import create_pool, migrate
from callcenter.store.interactions import InteractionWriter
from callcenter.store.rows import Row


async def fresh_database(database_url: str) -> str:
    """Create an empty database next to ``database_url``'s; return its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url.rsplit("/", 1)[0] + "/" + name


async def written_database(database_url: str, rows: Iterable[Row]) -> tuple[str, asyncpg.Pool]:
    """A fresh, migrated database holding ``rows``, written as the daemon
    writes them (:class:`InteractionWriter`); its URL and an open pool,
    which the caller closes."""
    url = await fresh_database(database_url)
    await migrate(url)
    pool = await create_pool(url)
    await write_rows(pool, rows)
    return url, pool


async def write_rows(pool: asyncpg.Pool, rows: Iterable[Row]) -> None:
    """Write ``rows`` as the daemon does (:class:`InteractionWriter`), all of them."""
    writer = InteractionWriter(pool)
    await writer.start()
    try:
        for row in rows:
            writer.submit(row)
        await writer.flush()
        assert writer.backlog == 0
    finally:
        await writer.stop()
