"""What reports read from PostgreSQL, and the report queries the CLI and REST share.

* Interval figures come from the ``interval_stats`` table
  (:func:`callcenter.store.stats.fetch_intervals`; recompute it first with
  :func:`callcenter.store.stats.recompute_intervals`).
* FCR, dispositions and CSAT need the interactions themselves: the
  statistics record (built by :func:`callcenter.store.stats.record_of`, the
  same mapping the recompute uses), ``context->>'disposition'`` (set by the
  agent, ``POST /api/interactions/{id}/disposition``) and
  ``context->'survey'`` (the post-call IVR survey: ``score`` 1..5 or null).
* The queue_log export reads the interactions, their agent leg
  (``call_legs``) and the ACD's ``offer`` / ``rona`` decisions (ring times).

The figures themselves are computed by the pure
:mod:`callcenter.stats.reports` and :mod:`callcenter.stats.queue_log`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import asyncpg

from callcenter.errors import StoreError
from callcenter.stats.intervals import IntervalRow
from callcenter.stats.kpis import Dimension
from callcenter.stats.model import DAY, InteractionRecord, StatsConfig
from callcenter.stats.queue_log import QueueCall, Ring, Transfer
from callcenter.stats.reports import (
    AgentLine,
    ContactFact,
    ReportLine,
    agent_lines,
    daily_lines,
    fcr_by_day,
    interval_lines,
)
from callcenter.store.stats import AgentInfo, fetch_intervals, record_of

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_CONTACTS = """
SELECT id::text AS id, queue, outcome, agent_id,
       coalesce(customer_id, context->>'customer_id') AS customer_id, channel,
       extract(epoch FROM enqueued_at) AS enqueued,
       extract(epoch FROM answered_at) AS answered,
       extract(epoch FROM ended_at) AS ended,
       context->'stats' AS stats,
       context ? 'transfer' AS has_transfer,
       context->>'origin' AS origin,
       context ? 'transferred_by' AS transfer_leg,
       context->>'disposition' AS disposition,
       jsonb_typeof(context->'survey') = 'object' AS surveyed,
       context->'survey'->>'score' AS survey_score
FROM interactions
WHERE direction = 'inbound' AND queue IS NOT NULL
  AND enqueued_at >= $1 AND enqueued_at < $2
ORDER BY enqueued_at, id
"""

_QUEUE_CALLS = """
SELECT i.id::text AS id, i.linkedid, i.queue, i.outcome, i.agent_id,
       coalesce(i.caller_number, '') AS caller_number,
       extract(epoch FROM i.enqueued_at) AS enqueued,
       extract(epoch FROM i.answered_at) AS answered,
       extract(epoch FROM i.ended_at) AS ended,
       i.context->'transfer' AS transfer,
       i.context ? 'transferred_by' AS transfer_leg,
       i.context->>'ended_by' AS ended_by,
       jsonb_typeof(i.context->'survey') = 'object' AS surveyed,
       (SELECT l.uniqueid FROM call_legs l
         WHERE l.interaction_id = i.id AND l.role = 'agent'
         ORDER BY l.created_at DESC LIMIT 1) AS agent_uniqueid
FROM interactions i
WHERE i.direction = 'inbound' AND i.queue IS NOT NULL
  AND i.enqueued_at >= $1 AND i.enqueued_at < $2
ORDER BY i.enqueued_at, i.id
"""

_RINGS = """
SELECT interaction_id::text AS id, agent_id, kind, extract(epoch FROM at) AS at
FROM acd_decisions
WHERE kind IN ('offer', 'rona') AND interaction_id = ANY($1::uuid[])
ORDER BY at, id
"""


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _score(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Contacts:
    """The interactions a report period needs beyond the interval rows."""

    facts: list[ContactFact]
    """Offered in the period: dispositions and surveys."""
    records: list[InteractionRecord]
    """Offered in the period or up to ``fcr_days`` after it (FCR repeats)."""
    until: float
    """How far the data goes: min(database now, end + fcr_days)."""


async def fetch_contacts(
    pool: asyncpg.Pool,
    start: float,
    end: float,
    config: StatsConfig,
    agents: Mapping[str, AgentInfo] | None = None,
) -> Contacts:
    """Interactions offered in [start, end + fcr_days): facts of those in [start, end)."""
    window = config.fcr_days * DAY
    try:
        async with pool.acquire() as connection:
            rows = await connection.fetch(_CONTACTS, _ts(start), _ts(end + window))
            now = float(await connection.fetchval("SELECT extract(epoch FROM now())"))
    except _DB_ERRORS as exc:
        raise StoreError(f"reading interactions for reports failed: {exc}") from exc
    directory = agents or {}
    records: list[InteractionRecord] = []
    facts: list[ContactFact] = []
    for row in rows:
        record = record_of(row, directory, {})
        records.append(record)
        if record.offered_at < end:
            facts.append(
                ContactFact.of(
                    record,
                    disposition=row["disposition"],
                    surveyed=bool(row["surveyed"]),
                    survey_score=_score(row["survey_score"]),
                )
            )
    return Contacts(facts, records, min(now, end + window))


async def fetch_rows(
    pool: asyncpg.Pool, start: float, end: float, dimensions: Iterable[Dimension]
) -> list[IntervalRow]:
    """Stored interval rows of [start, end) for these dimensions."""
    return await fetch_intervals(pool, start, end, list(dimensions))


async def daily_report(
    pool: asyncpg.Pool,
    start: float,
    end: float,
    config: StatsConfig,
    *,
    dimension: Dimension = Dimension.QUEUE,
    tz: tzinfo = UTC,
    keys: Sequence[str] | None = None,
    agents: Mapping[str, AgentInfo] | None = None,
) -> list[ReportLine]:
    """Daily lines with FCR (per queue or skill, agent, team, agent kind)."""
    rows = await fetch_rows(pool, start, end, {dimension, Dimension.AGENT_KIND})
    contacts = await fetch_contacts(pool, start, end, config, agents)
    fcr = fcr_by_day(
        contacts.records,
        config,
        start=start,
        end=end,
        until=contacts.until,
        tz=tz,
        dimension=dimension,
    )
    return daily_lines(rows, dimension, tz=tz, keys=keys, fcr=fcr)


async def interval_report(
    pool: asyncpg.Pool,
    start: float,
    end: float,
    *,
    dimension: Dimension = Dimension.QUEUE,
    tz: tzinfo = UTC,
    keys: Sequence[str] | None = None,
) -> list[ReportLine]:
    rows = await fetch_rows(pool, start, end, [dimension])
    return interval_lines(rows, dimension, tz=tz, keys=keys)


async def agent_report(
    pool: asyncpg.Pool,
    start: float,
    end: float,
    config: StatsConfig,
    *,
    keys: Sequence[str] | None = None,
    queues: Sequence[str] | None = None,
) -> list[AgentLine]:
    """Agent performance; with ``queues``, dispositions and surveys of those
    queues only (interval agent rows are not split by queue)."""
    rows = await fetch_rows(pool, start, end, [Dimension.AGENT])
    contacts = await fetch_contacts(pool, start, end, config)
    facts = [f for f in contacts.facts if queues is None or f.queue in queues]
    return agent_lines(rows, facts, keys=keys)


def _transfer(raw: Any, leg: bool) -> Transfer | None:
    if raw is None or leg:  # a transfer leg inherits its parent's context
        return None
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        return None
    if value.get("attended"):
        return Transfer(str(value.get("to_number") or ""), attended=True)
    if value.get("to_queue"):
        return Transfer(f"q{value['to_queue']}")
    if value.get("to_agent"):
        return Transfer(f"a{value['to_agent']}")
    return Transfer(str(value.get("to_number") or ""))


def _rings(decisions: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[str, str, float]]]:
    by_call: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for d in decisions:
        by_call[d["id"]].append((d["kind"], d["agent_id"] or "", float(d["at"])))
    return by_call


def queue_call_of(row: Mapping[str, Any], decisions: Sequence[tuple[str, str, float]]) -> QueueCall:
    """The queue_log view of one ``interactions`` row and its ACD decisions."""
    enqueued = float(row["enqueued"])
    answered = None if row["answered"] is None else max(float(row["answered"]), enqueued)
    ended = None if row["ended"] is None else float(row["ended"])
    agent = row["agent_id"]
    rings: list[Ring] = []
    ringing: dict[str, float] = {}
    for kind, who, at in decisions:
        if kind == "offer":
            ringing[who] = at
        elif kind == "rona" and who in ringing:
            rings.append(Ring(who, ringing.pop(who), at))
    if answered is not None and agent and agent in ringing:
        rings.append(Ring(agent, ringing[agent], answered, answered=True))
    outcome: Any
    if answered is not None and agent:
        outcome = "answered"
        if ended is not None:
            ended = max(ended, answered)
    elif row["outcome"] in ("abandoned", "callback") and ended is not None:
        outcome = row["outcome"]
        ended = max(ended, enqueued)
    else:
        outcome, ended = "open", None
    ended_by = row["ended_by"]
    if ended_by not in ("caller", "agent"):
        # The post-call survey runs only when the agent hangs up first.
        ended_by = "agent" if row["surveyed"] else None
    return QueueCall(
        callid=row["linkedid"] or row["id"],
        queue=row["queue"],
        enqueued_at=enqueued,
        outcome=outcome,
        caller_number=row["caller_number"],
        answered_at=answered if outcome == "answered" else None,
        ended_at=ended,
        agent=agent if outcome == "answered" else None,
        agent_uniqueid=row["agent_uniqueid"] or "",
        rings=tuple(rings),
        ended_by=ended_by,
        transfer=_transfer(row["transfer"], bool(row["transfer_leg"])),
    )


async def fetch_queue_calls(pool: asyncpg.Pool, start: float, end: float) -> list[QueueCall]:
    """Inbound interactions offered in [start, end) for the queue_log export."""
    try:
        async with pool.acquire() as connection:
            rows = await connection.fetch(_QUEUE_CALLS, _ts(start), _ts(end))
            decisions = await connection.fetch(_RINGS, [r["id"] for r in rows])
    except _DB_ERRORS as exc:
        raise StoreError(f"reading interactions for the queue_log failed: {exc}") from exc
    rings = _rings(decisions)
    return [queue_call_of(row, rings.get(row["id"], [])) for row in rows]
