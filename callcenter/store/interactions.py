"""Interaction and callback records to PostgreSQL, off the call path.

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
import uuid
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
VALUES ($1, 'voice', $15, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO UPDATE SET
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    agent_id = EXCLUDED.agent_id, outcome = EXCLUDED.outcome, context = EXCLUDED.context
"""

_CALLBACK = """
INSERT INTO callbacks (id, origin, node, queue, number, language, priority, enqueued_at,
    not_before, status, attempts, agent_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
ON CONFLICT (id) DO UPDATE SET
    not_before = EXCLUDED.not_before, status = EXCLUDED.status,
    attempts = EXCLUDED.attempts, agent_id = EXCLUDED.agent_id, updated_at = now()
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
    linkedid: str | None
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
    direction: str = "inbound"


@dataclass(frozen=True, slots=True)
class CallbackRow:
    """A callback's durable state; times are wall-clock epoch seconds."""

    callback_id: str
    origin: str | None
    node: str
    queue: str
    number: str
    language: str
    priority: int
    enqueued_at: float
    not_before: float | None
    status: str  # pending, done, failed, cancelled
    attempts: tuple[dict[str, Any], ...] = ()
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One ACD decision with its reason (audit); ``at`` is epoch seconds."""

    at: float
    kind: str
    interaction_id: str | None
    agent_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class AgentStateRow:
    """An agent entered ``state`` at ``since`` (epoch seconds)."""

    agent_id: str
    state: str
    reason: str | None
    since: float


Row = InteractionRow | CallbackRow | DecisionRow | AgentStateRow


async def current_agent_states(pool: asyncpg.Pool) -> list[AgentStateRow]:
    """Each agent's open state (the last one, not yet ended)."""
    rows = await pool.fetch(
        "SELECT agent_id, state, reason, extract(epoch FROM since) AS since"
        " FROM agent_states WHERE until IS NULL ORDER BY agent_id"
    )
    return [AgentStateRow(r["agent_id"], r["state"], r["reason"], float(r["since"])) for r in rows]


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def pending_callbacks(pool: asyncpg.Pool, node: str) -> list[CallbackRow]:
    """Callbacks still to make on this node (after a restart, say)."""
    rows = await pool.fetch(
        "SELECT id::text, origin::text, node, queue, number, language, priority,"
        " extract(epoch FROM enqueued_at) AS enqueued, extract(epoch FROM not_before) AS due,"
        " status, attempts::text, agent_id FROM callbacks"
        " WHERE node = $1 AND status = 'pending' ORDER BY enqueued_at",
        node,
    )
    return [
        CallbackRow(
            r["id"],
            r["origin"],
            r["node"],
            r["queue"],
            r["number"],
            r["language"],
            r["priority"],
            float(r["enqueued"]),
            None if r["due"] is None else float(r["due"]),
            r["status"],
            tuple(json.loads(r["attempts"])),
            r["agent_id"],
        )
        for r in rows
    ]


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class InteractionWriter:
    def __init__(self, pool: asyncpg.Pool, *, retry_max: float = 30.0) -> None:
        self._pool = pool
        self._pending: deque[Row] = deque()
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

    def submit(self, row: Row) -> None:
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
                    row=type(row).__name__,
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

    async def _write(self, row: Row) -> None:
        if isinstance(row, DecisionRow):
            await self._pool.execute(
                "INSERT INTO acd_decisions (at, interaction_id, agent_id, kind, reason)"
                " VALUES ($1, $2, $3, $4, $5)",
                _ts(row.at),
                _uuid_or_none(row.interaction_id),
                row.agent_id,
                row.kind,
                row.reason,
            )
            return
        if isinstance(row, AgentStateRow):
            async with self._pool.acquire() as connection, connection.transaction():
                await connection.execute(
                    "UPDATE agent_states SET until = $2 WHERE agent_id = $1 AND until IS NULL",
                    row.agent_id,
                    _ts(row.since),
                )
                await connection.execute(
                    "INSERT INTO agent_states (agent_id, state, reason, since)"
                    " VALUES ($1, $2, $3, $4)",
                    row.agent_id,
                    row.state,
                    row.reason,
                    _ts(row.since),
                )
            return
        if isinstance(row, CallbackRow):
            await self._pool.execute(
                _CALLBACK,
                row.callback_id,
                row.origin,
                row.node,
                row.queue,
                row.number,
                row.language,
                row.priority,
                _ts(row.enqueued_at),
                _ts(row.not_before),
                row.status,
                json.dumps(list(row.attempts)),
                row.agent_id,
            )
            return
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
                row.direction,
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
