"""PostgreSQL access: schema migrations and the connection pool.

asyncpg errors are translated into :class:`StoreError` here, so nothing above
this module handles a driver exception.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from callcenter.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' must be doubled for configparser interpolation.
    sa_url = url.replace("postgresql://", "postgresql+asyncpg://", 1).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", sa_url)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config("postgresql://unused")).get_current_head()
    assert head is not None
    return head


async def migrate(url: str) -> str:
    """Bring the schema to the newest revision; return it. Idempotent."""
    config = _alembic_config(url)
    try:
        # Alembic is synchronous and runs its own event loop: give it a thread.
        await asyncio.to_thread(command.upgrade, config, "head")
    except Exception as exc:
        raise StoreError(f"schema migration failed: {type(exc).__name__}: {exc}") from exc
    return head_revision()


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool
