"""Interaction records to PostgreSQL, off the call path.

The call path hands a finished interaction to :meth:`InteractionWriter.submit`
(synchronous, never blocks on the database); one owned task writes them in
order. A failed write is retried with backoff and nothing is dropped; the
backlog is visible (health, metrics). Writes are upserts keyed by the
interaction id, so a retry after an unclear failure is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.store")

_UPSERT = """
INSERT INTO interactions (id, channel, direction, node, linkedid, queue, caller_number,
    customer_id, language, priority, created_at, enqueued_at, answered_at, ended_at,
    agent_id, outcome, context)
VALUES ($1, 'voice', 'inbound', $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO UPDATE SET
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    agent_id = EXCLUDED.agent_id, outcome = EXCLUDED.outcome, context = EXCLUDED.context
"""

_LEG = """
INSERT INTO call_legs (node, uniqueid, interaction_id, channel_name, role, created_at, ended_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (node, uniqueid) DO UPDATE SET ended_at = EXCLUDED.ended_at
"""


@dataclass(frozen=True, slots=True)
class Leg:
    uniqueid: str
    channel_name: str
    role: str  # "caller" or "agent"
    created_at: float
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class InteractionRow:
    """One finished interaction; times are wall-clock epoch seconds."""

    interaction_id: str
    node: str
    linkedid: str
    queue: str
    caller_number: str
    language: str
    priority: int
    enqueued_at: float
    answered_at: float | None
    ended_at: float | None
    agent_id: str | None
    outcome: str
    context: dict[str, Any] = field(default_factory=dict)
    legs: tuple[Leg, ...] = ()


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class InteractionWriter:
    def __init__(self, pool: asyncpg.Pool, *, retry_max: float = 30.0) -> None:
        self._pool = pool
        self._pending: deque[InteractionRow] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._retry_max = retry_max
        self.written = 0
        self.failures = 0

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def submit(self, row: InteractionRow) -> None:
        self._pending.append(row)
        self._drained.clear()
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="interaction-writer")

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written (or timeout)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        await self.flush(timeout)
        if self._pending:
            log.error("store.unwritten_at_stop", backlog=len(self._pending))
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _run(self) -> None:
        delay = 0.2
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            row = self._pending[0]
            try:
                await self._write(row)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.failures += 1
                log.error(
                    "store.write_failed",
                    interaction=row.interaction_id,
                    error=str(exc),
                    retry_in=delay,
                    backlog=len(self._pending),
                )
                await asyncio.sleep(delay)
                delay = min(self._retry_max, delay * 2)
                continue
            delay = 0.2
            self._pending.popleft()
            self.written += 1
            if not self._pending:
                self._drained.set()

    async def _write(self, row: InteractionRow) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                _UPSERT,
                row.interaction_id,
                row.node,
                row.linkedid,
                row.queue,
                row.caller_number or None,
                row.caller_number or None,
                row.language,
                row.priority,
                _ts(row.enqueued_at),
                _ts(row.answered_at),
                _ts(row.ended_at),
                row.agent_id,
                row.outcome,
                json.dumps(row.context),
            )
            for leg in row.legs:
                await connection.execute(
                    _LEG,
                    row.node,
                    leg.uniqueid,
                    row.interaction_id,
                    leg.channel_name,
                    leg.role,
                    _ts(leg.created_at),
                    _ts(leg.ended_at),
                )
