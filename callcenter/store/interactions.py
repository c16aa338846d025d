"""Interaction records to PostgreSQL: off the call path, bounded, never lost.

The call path hands every record (a finished interaction and its legs, a
callback's state, an ACD decision, an agent state change) to
:meth:`InteractionWriter.submit`: synchronous, it never waits for the
database or the disk. One owned task writes the rows to PostgreSQL in
submission order, so the successive versions of one interaction land in
order.

Bounded memory, spool file
    At most ``max_memory_rows`` rows wait in memory, and none is added there
    while writes are failing (a database outage). Beyond, rows go to the
    writer's spool file (appended by a second owned task, in a thread,
    ``fsync`` once per batch) and are read back, in order, when memory has
    room. The queue is: the rows in memory (oldest), then the file's unread
    lines, then the rows on their way to the file (newest). If the disk fails
    too, rows stay in memory (the last resort: ``store.spool_failed`` names
    the path, ``spool_failures`` counts) and spooling is retried.

Stop and start
    At stop, after a short wait if writes are succeeding, every unwritten row
    goes to the spool file (rewritten: exactly the unwritten rows, in order).
    At start the file is read first: its rows are written before anything
    submitted since. Once every row read from it is written, the file is
    deleted. A ``kill -9`` loses the rows that were only in memory; the file's
    rows, written or not, are replayed at the next start, harmlessly (below).

Writes
    Each write (acquire a connection, its statements, commit) must end within
    ``write_timeout`` seconds; on timeout the connection is closed, so a host
    that vanished without closing TCP cannot hang the writer. Any failure (a
    timeout, a database error, an unexpected exception) is logged
    (``store.write_failed``, with the row kind) and the row retried after a
    backoff from 0.2 s doubling up to ``retry_max``; the task never dies.
    Every row kind is idempotent, so a retry after a commit whose reply was
    lost, or a replay from the spool, stores nothing twice: interactions,
    their legs and callbacks are upserts on their own ids; ACD decisions and
    agent states carry ``row_key``, a UUID given at submit (kept in the
    spool) and unique in their table (``ON CONFLICT DO NOTHING``). Every
    row also carries its version, its submit time (``version_at``, never
    before the previous row's): an older version written late (a rejected
    row replayed, rows out of order) never replaces a newer one. An
    interaction or a callback is updated only by a version not older than
    the stored one; an agent state is slotted in by ``since`` (then
    ``version_at``), so it ends the state before it only if that one began
    earlier, and stays open only if no later state is stored.

Refused rows
    A row PostgreSQL refuses for what it holds (:func:`refusal`: SQLSTATE
    class 22, data exception, e.g. a NUL byte or a value out of range; class
    23, integrity violation, e.g. a check constraint; asyncpg reports an
    argument it cannot encode as 22000 too) would fail forever and block
    every row behind it. Each row is written on its own (one transaction: an interaction with its
    legs), so the refused row is known: it goes to the rejected file beside
    the spool (``<spool>.rejected``, :mod:`callcenter.store.spool`) with the
    SQLSTATE, the message and the time, is logged (``store.row_rejected``:
    kind, key, reason) and counted (``rejected``), and the next rows go on.
    It is never retried automatically: ``callcenter db replay-rejected``
    (:func:`replay_rejected`) writes it again once the cause is fixed. If
    the rejected file cannot be written (the failed append undone), the row
    stays at the head and is tried again after the backoff, never dropped
    nor set aside twice (``store.reject_failed``, ``kept``). Without a
    spool file the row is only logged, in full. Everything else (connection
    lost, too many connections, admin shutdown, serialization failure, a
    missing table, a timeout, a bug) is retried as above.

The rows are :mod:`callcenter.store.rows`; the spool file's format and
operations are :mod:`callcenter.store.spool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import structlog

from callcenter.errors import StoreError
from callcenter.store.db import Refusal, bounded, refusal
from callcenter.store.rows import (
    AgentStateRow,
    CallbackRow,
    DecisionRow,
    InteractionRow,
    Row,
    json_text,
)
from callcenter.store.spool import (
    Entry,
    SpoolFile,
    append_rejected,
    encode_entry,
    encode_rejected,
    kind_of,
    read_rejected_file,
    replay_lock,
    settle_rejected,
)
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.store")

RETRY_MIN = 0.2
"""First retry delay (seconds); it doubles up to the writer's ``retry_max``."""
_READ_CHUNK = 2_000
"""Spool lines read back at once (in a thread)."""
_SPOOL_BATCH = 1_000
"""Rows appended to the spool per write and fsync."""


def _row_id(row: Row) -> str | None:
    if isinstance(row, InteractionRow):
        return row.interaction_id
    if isinstance(row, CallbackRow):
        return row.callback_id
    return None


# Versions: ``version_at`` is when the row was submitted (Entry.at, kept in
# the spool and the rejected file). An interaction or a callback is updated
# only by a version not older than the stored one, so a late old version (a
# replayed rejected row) changes nothing; equal, it is the same version
# again (a retry) or the same instant. A row without a version (NULL: a
# spool line without its submit time) never replaces a stored row, whatever
# it holds: it cannot be shown newer. A stored row without one (written
# before versions) is of unknown age: the writer replaces it ($REPLACES_NULL
# true: its rows come in submit order, after anything stored before
# versions), a replay of rejected rows does not (false: a row refused long
# ago may be older than what was stored since). No row comes back when
# nothing changed, and the legs are left as they are too.
_UPSERT = """
INSERT INTO interactions (id, channel, direction, node, linkedid, queue, caller_number,
    customer_id, language, priority, created_at, enqueued_at, answered_at, ended_at,
    agent_id, outcome, context, version_at)
VALUES ($1, 'voice', $15, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $16)
ON CONFLICT (id) DO UPDATE SET
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    agent_id = EXCLUDED.agent_id, outcome = EXCLUDED.outcome, context = EXCLUDED.context,
    version_at = EXCLUDED.version_at
WHERE EXCLUDED.version_at IS NOT NULL AND (interactions.version_at <= EXCLUDED.version_at
    OR (interactions.version_at IS NULL AND $17::boolean))
RETURNING id
"""

_CALLBACK = """
INSERT INTO callbacks (id, origin, node, queue, number, language, priority, enqueued_at,
    not_before, status, attempts, agent_id, updated_at, not_after, version_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), $13, $14)
ON CONFLICT (id) DO UPDATE SET
    not_before = EXCLUDED.not_before, not_after = EXCLUDED.not_after, status = EXCLUDED.status,
    attempts = EXCLUDED.attempts, agent_id = EXCLUDED.agent_id, updated_at = now(),
    version_at = EXCLUDED.version_at
WHERE EXCLUDED.version_at IS NOT NULL AND (callbacks.version_at <= EXCLUDED.version_at
    OR (callbacks.version_at IS NULL AND $15::boolean))
RETURNING id
"""

_LEG = """
INSERT INTO call_legs (node, uniqueid, interaction_id, channel_name, role, created_at, ended_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (node, uniqueid) DO UPDATE SET ended_at = EXCLUDED.ended_at
"""

_DECISION = """
INSERT INTO acd_decisions (row_key, at, interaction_id, agent_id, kind, reason)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (row_key) DO NOTHING
"""

# An agent's states follow one another in the order of (since, version_at)
# (NULL, stored or new: before any version; the submit time orders two states with the
# same since, a new pause reason say). A new state (not stored yet: a retry
# changes nothing) ends where the next stored one begins (none: it is the
# open one), and ends the one before it at its own since if that one was
# open or ended later. So a late old state is slotted in where it belongs
# and never closes a newer one. The statement does not see the row its CTE
# inserts.
_AGENT_STATE = """
WITH new AS (
    INSERT INTO agent_states (row_key, agent_id, state, reason, since, until, version_at)
    SELECT $1::uuid, $2::text, $3::text, $4::text, $5::timestamptz, (
        SELECT min(since) FROM agent_states
        WHERE agent_id = $2
            AND (since, coalesce(version_at, '-infinity'))
                > ($5::timestamptz, coalesce($6::timestamptz, '-infinity'))
    ), $6::timestamptz
    ON CONFLICT (row_key) DO NOTHING
    RETURNING id
)
UPDATE agent_states SET until = $5::timestamptz
WHERE id = (
    SELECT id FROM agent_states
    WHERE agent_id = $2
        AND (since, coalesce(version_at, '-infinity'))
            <= ($5::timestamptz, coalesce($6::timestamptz, '-infinity'))
    ORDER BY since DESC, coalesce(version_at, '-infinity') DESC, id DESC
    LIMIT 1
) AND (until IS NULL OR until > $5::timestamptz) AND EXISTS (SELECT 1 FROM new)
"""


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
        " status, attempts::text, agent_id, extract(epoch FROM not_after) AS ends"
        " FROM callbacks WHERE node = $1 AND status = 'pending' ORDER BY enqueued_at",
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
            None if r["ends"] is None else float(r["ends"]),
        )
        for r in rows
    ]


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class InteractionWriter:
    """The rows' way to PostgreSQL; see the module docstring.

    Without ``spool`` (tests, tools) nothing spills to disk: memory is not
    bounded, and what is unwritten at stop is lost (logged).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        spool: Path | None = None,
        max_memory_rows: int = 50_000,
        write_timeout: float = 10.0,
        retry_max: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._file = SpoolFile(spool) if spool is not None else None
        self._max_memory = max_memory_rows
        self._write_timeout = write_timeout
        self._retry_max = retry_max
        self._clock = clock
        # The queue, oldest first: memory, the file's unread lines, the outbox.
        self._memory: deque[Entry] = deque()
        self._outbox: deque[tuple[Entry, bytes]] = deque()
        self._file_rows = 0  # lines not read back yet
        self._read_offset = 0  # bytes, where they start
        self._read_lines = 0  # lines read back (for line numbers in messages)
        self._file_head_at: float | None = None  # submit time of the first unread one (or before)
        self._from_file = 0  # rows in memory read back from the file, not written yet
        self._file_lock = asyncio.Lock()
        self._io_jobs: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._spool_wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._spooler: asyncio.Task[None] | None = None
        self._failing = False
        self._stopped = False
        self.written = 0
        self.failures = 0
        """Writes that failed (timeouts included); each is retried."""
        self.spool_failures = 0
        """Spool operations that failed (rows stay in memory meanwhile)."""
        self.corrupt_lines = 0
        self.rejected = 0
        self._last_at = 0.0
        """Rows PostgreSQL refused, set aside in the rejected file (not retried)."""

    @property
    def spool_path(self) -> Path | None:
        return None if self._file is None else self._file.path

    @property
    def rejected_path(self) -> Path | None:
        return None if self._file is None else self._file.rejected

    @property
    def backlog(self) -> int:
        """Rows not written yet: in memory and in the spool file."""
        return len(self._memory) + len(self._outbox) + self._file_rows

    @property
    def in_memory(self) -> int:
        return len(self._memory) + len(self._outbox)

    @property
    def spooled(self) -> int:
        """Rows in the spool file, not read back yet."""
        return self._file_rows

    def oldest_age(self) -> float:
        """Seconds since the oldest unwritten row was submitted (0: none)."""
        if self._memory:
            oldest: float | None = self._memory[0].at
        elif self._file_rows:
            oldest = self._file_head_at
        elif self._outbox:
            oldest = self._outbox[0][0].at
        else:
            oldest = None
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def submit(self, row: Row) -> None:
        """Queue ``row``; never blocks. Its idempotency key is given here."""
        # The submit time is the row's version (see _UPSERT): never before
        # the previous row's, even if the wall clock steps back.
        self._last_at = max(self._clock(), self._last_at)
        entry = Entry(row, uuid.uuid4(), self._last_at)
        if self._stopped:
            self._submit_after_stop(entry)
            return
        # While writes fail, every new row goes to disk at once: a kill -9
        # during a database outage then loses only what was in memory when
        # it began, not up to max_memory_rows of the outage.
        bound = 0 if self._failing else self._max_memory
        if self._file is not None and (
            self._file_rows or self._outbox or len(self._memory) >= bound
        ):
            try:
                line = encode_entry(entry)
            except (TypeError, ValueError) as exc:
                # Cannot go to disk (nor to the database, which takes the
                # same JSON): kept in memory, ahead of its turn, and logged.
                self.spool_failures += 1
                log.error("store.spool_encode_failed", row=type(row).__name__, error=str(exc))
                self._memory.append(entry)
            else:
                self._outbox.append((entry, line))
                self._spool_wake.set()
        else:
            self._memory.append(entry)
        self._drained.clear()
        self._wake.set()

    async def start(self) -> None:
        if self._file is not None:
            try:
                rows, size, first_at = await asyncio.to_thread(self._file.open)
            except OSError as exc:
                self._file.close()
                raise StoreError(f"spool file {self._file.path}: {exc}") from exc
            self._file_rows, self._file_head_at = rows, first_at
            if rows:
                log.warning("store.spool_replay", path=str(self._file.path), rows=rows, bytes=size)
            self._spooler = asyncio.create_task(self._spool_run(), name="interaction-spooler")
        if self.backlog:
            self._drained.clear()
        self._task = asyncio.create_task(self._run(), name="interaction-writer")

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written (or timeout)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` for the backlog (unless writes are failing),
        then put what is left in the spool file."""
        if self._task is None:
            return
        if not self._failing:
            await self.flush(timeout)
        await cancel_and_wait([t for t in (self._task, self._spooler) if t is not None])
        self._task = self._spooler = None
        await self._settle_io()
        self._stopped = True
        if self._file is None:
            if self.backlog:
                log.error("store.unwritten_at_stop", backlog=self.backlog)
            return
        try:
            await self._save_at_stop(self._file)
        finally:
            self._file.close()

    # -- the writer task ------------------------------------------------------

    async def _run(self) -> None:
        delay = RETRY_MIN
        while True:
            try:
                if not self._memory and (self._file_rows or self._outbox):
                    await self._io(self._refill)
                    continue
                if not self._memory:
                    self._drained.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                entry = self._memory[0]
                try:
                    await self._write_bounded(entry)
                except Exception as exc:
                    refused = refusal(exc)
                    if refused is not None:
                        self._failing = False
                        try:
                            await self._io(functools.partial(self._set_aside, entry, refused))
                        except Exception as failure:
                            # Not in the rejected file (append_rejected
                            # undoes a failed append), kept at the head
                            # (never dropped): written and refused again
                            # after the backoff, then set aside.
                            self.spool_failures += 1
                            log.error(
                                "store.reject_failed",
                                kind=kind_of(entry.row),
                                key=str(entry.key),
                                id=_row_id(entry.row),
                                path=str(self.rejected_path),
                                error=f"{type(failure).__name__}: {failure}",
                                kept="at the head",
                                retry_in=delay,
                            )
                            await asyncio.sleep(delay)
                            delay = min(self._retry_max, delay * 2)
                            continue
                        delay = RETRY_MIN
                        # Set aside and off the queue (store.row_rejected):
                        # what may fail now is the spool's housekeeping.
                        await self._moved_on(entry)
                        continue
                    self.failures += 1
                    self._failing = True
                    log.error(
                        "store.write_failed",
                        row=type(entry.row).__name__,
                        error=f"{type(exc).__name__}: {exc}",
                        retry_in=delay,
                        backlog=self.backlog,
                    )
                    await asyncio.sleep(delay)
                    delay = min(self._retry_max, delay * 2)
                    continue
                delay = RETRY_MIN
                self._failing = False
                self.written += 1
                await self._done(entry)
            except Exception as exc:
                # A bug or a failing disk (reading the spool back): never a
                # dead writer, never a busy loop.
                log.exception("store.writer_error", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(self._retry_max, delay * 2)

    async def _done(self, entry: Entry) -> None:
        """The head row is written: the queue moves on."""
        self._pop(entry)
        await self._moved_on(entry)

    def _pop(self, entry: Entry) -> None:
        """The head row (written or set aside) off the queue."""
        self._memory.popleft()
        if entry.from_spool:
            self._from_file -= 1

    async def _moved_on(self, entry: Entry) -> None:
        """After :meth:`_pop`: the spool file goes once every row read back
        from it is done."""
        if entry.from_spool and not self._from_file and not self._file_rows:
            await self._io(self._remove_consumed)
        if not self.backlog:
            self._drained.set()

    async def _set_aside(self, entry: Entry, refused: Refusal) -> None:
        """The refused head row to the rejected file (logged, counted) and
        off the queue; raises, nothing changed (not in the file, still at
        the head), if the file cannot be written. One job, so a stop
        meanwhile does not spool it again."""
        row = entry.row
        fields = {
            "kind": kind_of(row),
            "key": str(entry.key),
            "id": _row_id(row),
            "sqlstate": refused.sqlstate,
            "error": refused.error,
        }
        path = self.rejected_path
        if path is None:
            log.error("store.row_rejected", **fields, row=repr(row), moved_to=None)
        else:
            try:
                line = encode_rejected(entry, refused.sqlstate, refused.error, self._clock())
            except (TypeError, ValueError) as exc:
                # Not even JSON: the log is its only trace.
                log.error("store.row_rejected", **fields, row=repr(row), unsaved=str(exc))
            else:
                await asyncio.to_thread(append_rejected, path, line, str(entry.key))
                log.error("store.row_rejected", **fields, moved_to=str(path))
        self.rejected += 1
        self._pop(entry)

    async def write_once(self, entry: Entry) -> bool:
        """Write one row now, within ``write_timeout``, without the queue or
        retries (the replay of rejected rows: a stored row without a version
        is kept, see _UPSERT); raises what the write raised. False: an
        interaction or a callback not applied, the stored one being newer
        or of unknown age."""
        return await bounded(
            self._pool, lambda c: self._write(c, entry, replaces_null=False), self._write_timeout
        )

    async def _write_bounded(self, entry: Entry) -> None:
        """One write within ``write_timeout`` (:func:`~callcenter.store.db.bounded`)."""
        await bounded(
            self._pool, lambda c: self._write(c, entry, replaces_null=True), self._write_timeout
        )

    async def _write(
        self, connection: asyncpg.Connection, entry: Entry, *, replaces_null: bool
    ) -> bool:
        row = entry.row
        version = _ts(entry.version)
        if isinstance(row, DecisionRow):
            await connection.execute(
                _DECISION,
                entry.key,
                _ts(row.at),
                _uuid_or_none(row.interaction_id),
                row.agent_id,
                row.kind,
                row.reason,
            )
            return True
        if isinstance(row, AgentStateRow):
            await connection.execute(
                _AGENT_STATE,
                entry.key,
                row.agent_id,
                row.state,
                row.reason,
                _ts(row.since),
                version,
            )
            return True
        if isinstance(row, CallbackRow):
            stored = await connection.fetchval(
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
                json_text(list(row.attempts)),
                row.agent_id,
                _ts(row.not_after),
                version,
                replaces_null,
            )
            return stored is not None
        async with connection.transaction():
            stored = await connection.fetchval(
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
                json_text(row.context),
                row.direction,
                version,
                replaces_null,
            )
            if stored is None:
                return False  # a newer version is stored: its legs stay
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
        return True

    # -- the spool ------------------------------------------------------------

    async def _io(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run a spool operation to its end even if the caller is cancelled
        (stop): the file and the bookkeeping stay consistent."""
        task = asyncio.ensure_future(job())
        self._io_jobs.add(task)
        task.add_done_callback(self._io_jobs.discard)
        await asyncio.shield(task)

    async def _settle_io(self) -> None:
        while self._io_jobs:
            await asyncio.gather(*self._io_jobs, return_exceptions=True)

    async def _spool_run(self) -> None:
        delay = RETRY_MIN
        while True:
            try:
                if not self._outbox:
                    self._spool_wake.clear()
                    await self._spool_wake.wait()
                    continue
                await self._io(self._append_batch)
                delay = RETRY_MIN
            except Exception as exc:
                self.spool_failures += 1
                log.error(
                    "store.spool_failed",
                    path=str(self._file.path if self._file else None),
                    error=f"{type(exc).__name__}: {exc}",
                    rows_in_memory=self.in_memory,
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(self._retry_max, delay * 2)

    async def _append_batch(self) -> None:
        assert self._file is not None
        async with self._file_lock:
            batch = list(itertools.islice(self._outbox, _SPOOL_BATCH))
            if not batch:
                return
            await asyncio.to_thread(self._file.append, b"".join(line for _, line in batch))
            for _ in batch:
                self._outbox.popleft()
            if not self._file_rows:
                self._file_head_at = batch[0][0].at
            self._file_rows += len(batch)

    async def _refill(self) -> None:
        """Memory takes the next rows: the file's unread lines, else the outbox."""
        assert self._file is not None
        async with self._file_lock:
            room = self._max_memory - len(self._memory)
            if room <= 0:
                return
            if not self._file_rows:
                while self._outbox and room > 0:
                    self._memory.append(self._outbox.popleft()[0])
                    room -= 1
                return
            lines, offset = await asyncio.to_thread(
                self._file.read, self._read_offset, min(room, _READ_CHUNK)
            )
            if not lines:
                log.error(
                    "store.spool_truncated",
                    path=str(self._file.path),
                    missing=self._file_rows,
                    offset=self._read_offset,
                )
                self._file_rows = 0
            bad: list[bytes] = []
            for number, (line, decoded) in enumerate(lines, start=self._read_lines + 1):
                if isinstance(decoded, Entry):
                    self._memory.append(decoded)
                    self._from_file += 1
                    self._file_head_at = decoded.at
                else:
                    bad.append(line)
                    log.error(
                        "store.spool_line_corrupt",
                        path=str(self._file.path),
                        line=number,
                        error=decoded,
                        moved_to=str(self._file.bad),
                    )
            self._read_offset = offset
            self._read_lines += len(lines)
            self._file_rows = max(0, self._file_rows - len(lines))
            if bad:
                self.corrupt_lines += len(bad)
                try:
                    await asyncio.to_thread(self._file.quarantine, bad)
                except OSError as exc:
                    self.spool_failures += 1
                    log.error(
                        "store.spool_quarantine_failed",
                        path=str(self._file.bad),
                        error=str(exc),
                        lines=[line.decode(errors="replace") for line in bad],
                    )
            if not self._file_rows and not self._from_file:
                await asyncio.to_thread(self._file.remove)
                self._read_offset = self._read_lines = 0

    async def _remove_consumed(self) -> None:
        """Every row read back from the file is written: the file goes."""
        assert self._file is not None
        async with self._file_lock:
            if self._file_rows or self._from_file:
                return
            await asyncio.to_thread(self._file.remove)
            self._read_offset = self._read_lines = 0
            self._file_head_at = None

    async def _save_at_stop(self, spool: SpoolFile) -> None:
        memory = list(self._memory)
        tail = b"".join(line for _, line in self._outbox)
        rows = len(memory) + self._file_rows + len(self._outbox)

        def save() -> int:
            head: list[bytes] = []
            for entry in memory:
                try:
                    head.append(encode_entry(entry))
                except (TypeError, ValueError) as exc:
                    log.error(
                        "store.unwritten_at_stop",
                        path=str(spool.path),
                        row=repr(entry.row),
                        error=str(exc),
                    )
            if not head and not self._file_rows and not tail:
                spool.remove()
            elif head or tail or self._read_offset:
                spool.rewrite(b"".join(head), self._read_offset, tail)
            return len(head) + self._file_rows + len(self._outbox)

        try:
            saved = await asyncio.to_thread(save)
        except OSError as exc:
            log.error("store.unwritten_at_stop", path=str(spool.path), backlog=rows, error=str(exc))
            return
        self._memory.clear()
        self._outbox.clear()
        self._file_rows, self._read_offset, self._read_lines, self._from_file = saved, 0, 0, 0
        if saved:
            log.warning("store.spooled_at_stop", path=str(spool.path), rows=saved)

    def _submit_after_stop(self, entry: Entry) -> None:
        """Late rows (nothing should submit after stop): straight to the file."""
        if self._file is not None:
            try:
                self._file.append(encode_entry(entry))
            except (OSError, TypeError, ValueError) as exc:
                log.error(
                    "store.unwritten_at_stop",
                    path=str(self._file.path),
                    row=repr(entry.row),
                    error=str(exc),
                )
                return
            self._file_rows += 1
            log.warning("store.spooled_after_stop", path=str(self._file.path), rows=1)
            return
        log.error("store.unwritten_at_stop", backlog=1, row=repr(entry.row))


# -- replaying the rejected rows ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayResult:
    written: int
    refused: int
    """Still refused: kept in the file, with the new reason."""
    unreadable: int
    """Lines that cannot be decoded: kept as they are."""
    stopped: str | None
    """The failure (database unavailable...) that stopped the replay: this
    row and the next ones are kept as they were."""
    not_applied: int = 0
    """Of ``written``: interactions and callbacks that changed nothing, the
    stored row being newer, or of unknown age (no version, or none on the
    replayed row); each logged in full (``store.replay_not_applied``)."""


async def replay_rejected(
    pool: asyncpg.Pool,
    path: Path,
    *,
    write_timeout: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> ReplayResult:
    """Write the rejected file's rows again, in order (``callcenter db
    replay-rejected``); the file keeps only those still refused (and lines
    a writer appended meanwhile). Rows keep their idempotency key and their
    version (submit time): a second replay stores nothing twice, and an old
    version never replaces a newer one stored since. A row without a version
    (a line without ``at``) is stored only where none is, and a stored row
    without one (written before versions) is never replaced: either could be
    the newer, and what is stored is kept (``not_applied``, logged).

    One replay at a time (:func:`~callcenter.store.spool.replay_lock`:
    StoreError "a replay is already running"); StoreError, the file left
    as it is, if it was replaced or edited during the replay."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(replay_lock(path))
        except FileNotFoundError:
            return ReplayResult(0, 0, 0, None)  # no such directory: no file
        return await _replay_locked(pool, path, write_timeout=write_timeout, clock=clock)


async def _replay_locked(
    pool: asyncpg.Pool, path: Path, *, write_timeout: float, clock: Callable[[], float]
) -> ReplayResult:
    read = await asyncio.to_thread(read_rejected_file, path)
    lines = read.lines
    writer = InteractionWriter(pool, write_timeout=write_timeout, clock=clock)
    keep: list[bytes] = []
    written = refused_count = unreadable = not_applied = 0
    stopped: str | None = None
    for number, (line, decoded) in enumerate(lines, start=1):
        if stopped is not None:
            keep.append(line)
            continue
        if not isinstance(decoded, Entry):
            unreadable += 1
            keep.append(line)
            log.error("store.rejected_line_corrupt", path=str(path), line=number, error=decoded)
            continue
        try:
            applied = await writer.write_once(decoded)
        except Exception as exc:
            refused = refusal(exc)
            if refused is None:
                stopped = f"{type(exc).__name__}: {exc}"
                keep.append(line)
                continue
            refused_count += 1
            keep.append(encode_rejected(decoded, refused.sqlstate, refused.error, clock()))
            log.error(
                "store.row_still_rejected",
                kind=kind_of(decoded.row),
                key=str(decoded.key),
                id=_row_id(decoded.row),
                sqlstate=refused.sqlstate,
                error=refused.error,
            )
            continue
        written += 1
        if not applied:
            not_applied += 1
            # Settled (replaying it again would change nothing either); the
            # line is logged so that an operator can still apply it by hand.
            log.warning(
                "store.replay_not_applied",
                kind=kind_of(decoded.row),
                key=str(decoded.key),
                id=_row_id(decoded.row),
                version=decoded.version,
                line=line.decode(errors="replace").rstrip("\n"),
            )
    if lines:
        await asyncio.to_thread(settle_rejected, path, b"".join(keep), read.consumed, read.identity)
    return ReplayResult(written, refused_count, unreadable, stopped, not_applied)
