"""Extended agents' interactions this month, read back from PostgreSQL.

The ACD counts an extended agent's interactions against their
``monthly_cap`` in memory only (``LiveAgent.month_count``); at start the
daemon reads each extended agent's count for the current month from the
stored interactions, and the call path hands it to the ACD in the agent's
profile (``AgentProfile.month_handled``) at their first login, so that a
restart mid-month does not give them a fresh cap.

What counts: an interaction row whose ``agent_id`` is the agent and whose
``answered_at`` is set, i.e. an offer the agent answered. The ACD counts at
offer and gives the unit back when the offer is abandoned, not answered or
not placed, so what it keeps is exactly the answered offers. A row is
written when its interaction ends (:func:`callcenter.callpath.service.row_of`),
with the last agent who answered: a call still connected at the restart is
not in the table yet (it counts at the next start). Every node's rows
count: the cap is the agent's, not one node's.

The month: the calendar month of the agent's answer (``answered_at``), from
the 1st at 00:00 to the next 1st at 00:00, in the zone the daemon's local
days are in (setting ``interval_refresh.tz``, UTC by default: nothing else
in the daemon defines a local calendar); the call path resets the counts
live at each month's start in the same zone (``CallPath.follow_months``).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import tzinfo

import asyncpg
import structlog

from callcenter.clock import month_bounds
from callcenter.errors import StoreError
from callcenter.store.db import bounded

log = structlog.get_logger("callcenter.store")

_HANDLED = """
SELECT agent_id, count(*) AS handled FROM interactions
WHERE agent_id = ANY($1::text[]) AND answered_at >= $2 AND answered_at < $3
GROUP BY agent_id
"""


async def month_handled(
    pool: asyncpg.Pool,
    agent_ids: Collection[str],
    wall: float,
    tz: tzinfo,
    *,
    timeout: float = 10.0,
) -> dict[str, int]:
    """Interactions each of ``agent_ids`` answered in the month of ``wall``
    (agents without any are absent). Any failure, including no answer
    within ``timeout`` seconds, raises :class:`StoreError`."""
    if not agent_ids:
        return {}
    start, end = month_bounds(wall, tz)

    async def op(connection: asyncpg.Connection) -> list[asyncpg.Record]:
        found: list[asyncpg.Record] = await connection.fetch(_HANDLED, list(agent_ids), start, end)
        return found

    try:
        rows = await bounded(pool, op, timeout)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # OSError includes TimeoutError: refused, unreachable, no answer.
        raise StoreError(f"extended agents' month counts: {type(exc).__name__}: {exc}") from exc
    return {r["agent_id"]: int(r["handled"]) for r in rows}


async def month_handled_at_start(
    pool: asyncpg.Pool,
    agent_ids: Collection[str],
    wall: float,
    tz: tzinfo,
    *,
    timeout: float = 10.0,
) -> dict[str, int]:
    """:func:`month_handled` for the daemon's start, which it must never
    block: on failure a warning and no counts, i.e. every extended agent
    counts from 0 this month (their cap may be exceeded by what they had
    already taken)."""
    try:
        counts = await month_handled(pool, agent_ids, wall, tz, timeout=timeout)
    except StoreError as exc:
        log.warning(
            "acd.month_counts_unavailable",
            error=str(exc),
            agents=len(agent_ids),
            consequence="extended agents count from 0 this month",
        )
        return {}
    log.info("acd.month_counts_restored", agents=len(agent_ids), counts=counts)
    return counts
