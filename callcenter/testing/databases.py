"""A fresh, empty database per test on the shared throw-away cluster."""

from __future__ import annotations

import uuid

import asyncpg


async def fresh_database(database_url: str) -> str:
    """Create an empty database next to ``database_url``'s; return its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url.rsplit("/", 1)[0] + "/" + name
