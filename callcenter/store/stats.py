"""Interval statistics in PostgreSQL: recompute from the raw tables, read back.

:func:`recompute_intervals` reads the inbound interactions offered in a
period and the agent states overlapping it, computes the 15-minute rows with
the pure :func:`callcenter.stats.aggregate_intervals` (in a thread: a big
period is seconds of CPU), and replaces the period's rows in one
transaction. Running it twice, or over an overlapping period, gives the same
table: it is safe to re-run for any period, after late writes or a fix.

What a row of ``interactions`` means to statistics (the input contract):

* ``enqueued_at`` offered, ``answered_at`` answered, ``ended_at`` the end of
  the conversation (answered) or the moment the caller left (abandoned,
  callback: ``outcome`` says which);
* ``context->'stats'`` may carry what the columns do not: ``skill``,
  ``team``, ``extended``, ``hold_seconds``, ``wrap_ended_at`` (epoch),
  ``transferred``. Missing keys fall back to: the agent directory given to
  the recompute (team, extended); the agent's ``wrap_up`` state starting when
  the call ended (wrap-up end); ``context->'transfer'`` set on a row that is
  not itself a transfer leg (transferred); hold 0; no skill.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from callcenter.errors import ConfigError, StoreError
from callcenter.stats.intervals import IntervalRow, aggregate_intervals
from callcenter.stats.kpis import AgentTime, Counts, Dimension
from callcenter.stats.model import WRAP_UP, AgentSpan, InteractionRecord, Outcome, StatsConfig

# A wrap-up state is matched to the call it follows when it starts this close
# to the call's end (the agent-state row and the interaction row are written
# by different paths, with their own timestamps).
WRAP_MATCH_SECONDS = 2.0
# Wrap-up after a call offered at the end of the period starts after it.
_LOOKAHEAD = 86_400.0

_INTERACTIONS = """
SELECT id::text AS id, queue, outcome, agent_id,
       coalesce(customer_id, context->>'customer_id') AS customer_id, channel,
       extract(epoch FROM enqueued_at) AS enqueued,
       extract(epoch FROM answered_at) AS answered,
       extract(epoch FROM ended_at) AS ended,
       context->'stats' AS stats,
       context ? 'transfer' AS has_transfer,
       context->>'origin' AS origin,
       context ? 'transferred_by' AS transfer_leg
FROM interactions
WHERE direction = 'inbound' AND queue IS NOT NULL
  AND enqueued_at >= $1 AND enqueued_at < $2
"""

_STATES = """
SELECT agent_id, state, extract(epoch FROM since) AS since,
       extract(epoch FROM coalesce(until, least(now(), $3))) AS until
FROM agent_states
WHERE since < $2 AND coalesce(until, now()) > $1
"""

_COLUMNS = (
    "interval_start",
    "interval_seconds",
    "dimension",
    "key",
    "offered",
    "answered",
    "answered_in_sl",
    "abandoned",
    "abandoned_in_sl",
    "short_abandoned",
    "callbacks",
    "transferred",
    "handled",
    "wait_answered_s",
    "wait_abandoned_s",
    "max_wait_s",
    "talk_s",
    "hold_s",
    "wrap_s",
    "ready_s",
    "reserved_s",
    "agent_talk_s",
    "agent_wrap_s",
    "paused_s",
)


@dataclass(frozen=True, slots=True)
class AgentInfo:
    team: str = ""
    extended: bool = False


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _stats_context(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _wrap_end(
    wraps: Mapping[str, tuple[list[float], list[float]]], agent: str, ended: float
) -> float | None:
    starts, ends = wraps.get(agent, ([], []))
    i = bisect.bisect_left(starts, ended - WRAP_MATCH_SECONDS)
    if i < len(starts) and starts[i] <= ended + WRAP_MATCH_SECONDS:
        return ends[i]
    return None


def record_of(
    row: Mapping[str, Any],
    agents: Mapping[str, AgentInfo],
    wraps: Mapping[str, tuple[list[float], list[float]]],
) -> InteractionRecord:
    """The statistics record of one ``interactions`` row (see the module doc)."""
    extra = _stats_context(row["stats"])
    offered = float(row["enqueued"])
    answered = _float(row["answered"])
    ended = _float(row["ended"])
    agent = row["agent_id"]
    info = agents.get(agent, AgentInfo()) if agent else AgentInfo()
    common: dict[str, Any] = {
        "skill": str(extra.get("skill") or ""),
        "customer_id": row["customer_id"],
        "channel": row["channel"] or "voice",
        "origin": row["origin"] if row["transfer_leg"] else None,
    }
    if answered is not None and agent:
        answered = max(answered, offered)
        if ended is not None:
            ended = max(ended, answered)
        wrap_ended = _float(extra.get("wrap_ended_at"))
        if wrap_ended is None and ended is not None:
            wrap_ended = _wrap_end(wraps, agent, ended)
        wrap_ended = ended if wrap_ended is None or ended is None else max(wrap_ended, ended)
        hold = _float(extra.get("hold_seconds")) or 0.0
        if ended is not None:
            hold = min(max(hold, 0.0), ended - answered)
        transferred = extra.get("transferred")
        if transferred is None:
            # A transfer leg inherits its parent's context, "transfer" key included.
            transferred = bool(row["has_transfer"]) and not row["transfer_leg"]
        return InteractionRecord(
            row["id"],
            row["queue"],
            offered,
            Outcome.ANSWERED,
            answered_at=answered,
            ended_at=ended,
            wrap_ended_at=wrap_ended,
            hold_seconds=hold,
            agent_id=agent,
            team=str(extra.get("team") or info.team),
            extended=bool(extra.get("extended", info.extended)),
            transferred=bool(transferred),
            **common,
        )
    outcome = {"abandoned": Outcome.ABANDONED, "callback": Outcome.CALLBACK}.get(row["outcome"])
    if outcome is None or ended is None:
        return InteractionRecord(row["id"], row["queue"], offered, Outcome.OPEN, **common)
    return InteractionRecord(
        row["id"], row["queue"], offered, outcome, left_at=max(ended, offered), **common
    )


def _check_period(start: float, end: float, config: StatsConfig) -> None:
    if start % config.interval or end % config.interval or end < start:
        raise ConfigError(
            f"period [{start}, {end}) must be aligned on {config.interval}-second intervals"
        )


def _compute(
    interactions: Sequence[Mapping[str, Any]],
    states: Sequence[Mapping[str, Any]],
    agents: Mapping[str, AgentInfo],
    config: StatsConfig,
    start: float,
    end: float,
) -> list[tuple[Any, ...]]:
    spans: list[AgentSpan] = []
    wrap_spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in states:
        since, until = float(s["since"]), max(float(s["until"]), float(s["since"]))
        info = agents.get(s["agent_id"], AgentInfo())
        spans.append(AgentSpan(s["agent_id"], s["state"], since, until, info.team, info.extended))
        if s["state"] == WRAP_UP:
            wrap_spans[s["agent_id"]].append((since, until))
    wraps = {
        agent: ([a for a, _ in sorted(pairs)], [b for _, b in sorted(pairs)])
        for agent, pairs in wrap_spans.items()
    }
    records = [record_of(row, agents, wraps) for row in interactions]
    rows = aggregate_intervals(records, spans, config, start, end)
    return [_db_row(r, config.interval) for r in rows]


def _db_row(r: IntervalRow, seconds: int) -> tuple[Any, ...]:
    c, t = r.counts, r.agent_time
    return (
        _ts(r.interval_start),
        seconds,
        r.dimension.value,
        r.key,
        c.offered,
        c.answered,
        c.answered_in_sl,
        c.abandoned,
        c.abandoned_in_sl,
        c.short_abandoned,
        c.callbacks,
        c.transferred,
        c.handled,
        c.wait_answered,
        c.wait_abandoned,
        c.max_wait,
        c.talk,
        c.hold,
        c.wrap,
        t.ready,
        t.reserved,
        t.talk,
        t.wrap,
        t.paused,
    )


async def recompute_intervals(
    pool: asyncpg.Pool,
    start: float,
    end: float,
    config: StatsConfig,
    *,
    agents: Mapping[str, AgentInfo] | None = None,
) -> int:
    """Replace the interval rows of [start, end) (epoch seconds, aligned on
    the interval); return how many rows the period now has."""
    _check_period(start, end, config)
    directory = agents or {}
    try:
        async with pool.acquire() as connection:
            interactions = await connection.fetch(_INTERACTIONS, _ts(start), _ts(end))
            states = await connection.fetch(
                _STATES, _ts(start), _ts(end + _LOOKAHEAD), _ts(end + _LOOKAHEAD)
            )
            rows = await asyncio.to_thread(
                _compute, interactions, states, directory, config, start, end
            )
            async with connection.transaction():
                # Serialises concurrent recomputes of overlapping periods.
                await connection.execute("LOCK TABLE interval_stats IN SHARE ROW EXCLUSIVE MODE")
                await connection.execute(
                    "DELETE FROM interval_stats WHERE interval_start >= $1 AND interval_start < $2",
                    _ts(start),
                    _ts(end),
                )
                if rows:
                    await connection.copy_records_to_table(
                        "interval_stats", records=rows, columns=_COLUMNS
                    )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"interval statistics recompute failed: {exc}") from exc
    return len(rows)


async def fetch_intervals(
    pool: asyncpg.Pool,
    start: float,
    end: float,
    dimensions: Iterable[Dimension] | None = None,
) -> list[IntervalRow]:
    """Stored interval rows of [start, end), ordered like the recompute's."""
    wanted = [d.value for d in dimensions] if dimensions is not None else None
    try:
        records = await pool.fetch(
            f"SELECT extract(epoch FROM interval_start) AS start_epoch, {', '.join(_COLUMNS[2:])}"
            " FROM interval_stats WHERE interval_start >= $1 AND interval_start < $2"
            " AND ($3::text[] IS NULL OR dimension = ANY($3))"
            ' ORDER BY interval_start, dimension, key COLLATE "C"',
            _ts(start),
            _ts(end),
            wanted,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"reading interval statistics failed: {exc}") from exc
    return [
        IntervalRow(
            float(r["start_epoch"]),
            Dimension(r["dimension"]),
            r["key"],
            Counts(
                r["offered"],
                r["answered"],
                r["answered_in_sl"],
                r["abandoned"],
                r["abandoned_in_sl"],
                r["short_abandoned"],
                r["callbacks"],
                r["transferred"],
                r["handled"],
                r["wait_answered_s"],
                r["wait_abandoned_s"],
                r["max_wait_s"],
                r["talk_s"],
                r["hold_s"],
                r["wrap_s"],
            ),
            AgentTime(
                r["ready_s"], r["reserved_s"], r["agent_talk_s"], r["agent_wrap_s"], r["paused_s"]
            ),
        )
        for r in records
    ]
