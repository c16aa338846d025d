"""PostgreSQL access: schema migrations, the connection pool, bounded queries
and what a failure means (:func:`refusal`, :func:`connection_lost`).

asyncpg errors are translated into :class:`StoreError` here, so nothing above
this module handles a driver exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from callcenter.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


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


# -- failures: refused for good, or the database's state ----------------------

REFUSED_SQLSTATE_CLASSES = frozenset({"22", "23"})
"""SQLSTATE classes that refuse a statement for good: data exception, integrity
constraint violation."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why PostgreSQL refuses a statement: running it again cannot succeed."""

    sqlstate: str
    error: str


def refusal(exc: BaseException) -> Refusal | None:
    """The refusal ``exc`` is, or None: a failure to retry.

    Refused: SQLSTATE class 22 (data exception: a NUL byte or an invalid
    byte sequence in a text, a value too long or out of range, a malformed
    JSON value...), class 23 (integrity violation: a check, a foreign key, a
    unique index other than the one the row is idempotent on, which ``ON
    CONFLICT`` absorbs). asyncpg raises an argument it cannot encode (not a
    UUID, an integer beyond int32) as ``DataError``, 22000, before sending.
    Anything else is the database's state, not the statement's, and is
    retried: connection errors (08), too many connections (53), admin
    shutdown (57), serialization failure and deadlock (40), a read-only
    transaction during a failover (25006), a table renamed away (42),
    timeouts, OS errors, driver errors, bugs.
    """
    if not isinstance(exc, asyncpg.PostgresError):
        return None
    sqlstate = str(exc.sqlstate or "")
    if sqlstate[:2] not in REFUSED_SQLSTATE_CLASSES:
        return None
    return Refusal(sqlstate, f"{type(exc).__name__}: {exc}")  # with its DETAIL line


class PoolBusy(TimeoutError):
    """No pool connection within the timeout while every one was in use: the
    database answers, this process has too much in flight."""


def connection_lost(exc: BaseException) -> bool:
    """``exc`` says PostgreSQL cannot be reached at all (not: it is busy, it
    refused this statement, or asyncpg was misused): refused, reset, no
    answer within the timeout, the connection closed (class 08), the server
    shutting down or starting (57P0x), the pool closed."""
    if isinstance(exc, OSError):  # TimeoutError included: see bounded()
        return not isinstance(exc, PoolBusy)
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(exc.sqlstate or "")
        return sqlstate[:2] == "08" or sqlstate[:4] == "57P0"
    text = str(exc)
    return isinstance(exc, asyncpg.InterfaceError) and (
        "pool is clos" in text or "connection is closed" in text
    )


async def bounded(
    pool: asyncpg.Pool, op: Callable[[asyncpg.Connection], Awaitable[T]], timeout: float
) -> T:
    """``op`` on a pool connection, all within ``timeout`` seconds.

    No connection in time raises :class:`PoolBusy` if every connection was
    in use, else TimeoutError (a connect that got no answer). No answer from
    ``op`` in time: the connection is closed (terminate: no cancel request,
    no rollback that could hang on a dead link), which ends it at once, and
    TimeoutError is raised. Anything ``op`` raises passes through.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        connection = await pool.acquire(timeout=timeout)
    except TimeoutError:
        if pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size():
            raise PoolBusy(f"no free PostgreSQL connection within {timeout} s") from None
        raise
    try:
        job = asyncio.ensure_future(op(connection))
        try:
            done, _ = await asyncio.wait({job}, timeout=max(0.0, deadline - loop.time()))
        except asyncio.CancelledError:
            connection.terminate()
            job.cancel()
            await asyncio.wait({job})
            raise
        if not done:
            connection.terminate()
            await asyncio.wait({job})
            if not job.cancelled():
                job.exception()  # retrieved: the connection's end, expected
            raise TimeoutError(f"no answer from PostgreSQL within {timeout} s")
        return job.result()
    finally:
        await pool.release(connection, timeout=timeout)
