"""15-minute interval aggregates: a pure function of the records and spans.

Attribution rules (docs/kpis.md):

* A call's counts and its wait, talk, hold and wrap-up seconds belong to the
  interval in which it was **offered**, even when it was answered or ended
  in a later one. Each interval's ratios then compare the same calls (answered
  never exceeds offered), and recomputing an interval needs only the calls
  offered in it.
* Agent time (ready, talk, wrap-up... for occupancy) is time actually spent:
  a state span crossing a boundary is split between the intervals.

The result depends only on the inputs, in any order: recomputing a period
gives the same rows, which the store replaces (idempotent).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callcenter.errors import ConfigError
from callcenter.stats.kpis import (
    FACT_FIELDS,
    MAX_WAIT,
    AgentTime,
    Counts,
    Dimension,
    counts_of,
    facts,
)
from callcenter.stats.model import (
    ON_CALL,
    PAUSED,
    READY,
    RESERVED,
    WRAP_UP,
    AgentSpan,
    InteractionRecord,
    StatsConfig,
)

DEFAULT_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension.QUEUE,
    Dimension.SKILL,
    Dimension.AGENT,
    Dimension.TEAM,
    Dimension.AGENT_KIND,
)

_AGENT_DIMENSIONS = (Dimension.AGENT, Dimension.TEAM, Dimension.AGENT_KIND)
_STATE_INDEX = {READY: 0, RESERVED: 1, ON_CALL: 2, WRAP_UP: 3, PAUSED: 4}


@dataclass(frozen=True, slots=True)
class IntervalRow:
    interval_start: float
    dimension: Dimension
    key: str
    counts: Counts
    agent_time: AgentTime
    """Zero for queue and skill rows: agent time is not split by queue."""


def interval_of(t: float, size: int = 900) -> float:
    """Start of the interval holding ``t``."""
    return math.floor(t / size) * size


def _span_keys(span: AgentSpan, dimensions: Sequence[Dimension]) -> list[tuple[Dimension, str]]:
    keys: list[tuple[Dimension, str]] = []
    for dimension in dimensions:
        if dimension is Dimension.AGENT:
            keys.append((dimension, span.agent_id))
        elif dimension is Dimension.TEAM and span.team:
            keys.append((dimension, span.team))
        elif dimension is Dimension.AGENT_KIND:
            keys.append((dimension, "extended" if span.extended else "regular"))
    return keys


def _keys(records: Sequence[InteractionRecord], dimension: Dimension) -> list[str | None]:
    # dimension_key() inlined: a function call per record and dimension
    # was most of the cost.
    if dimension is Dimension.QUEUE:
        return [r.queue for r in records]
    if dimension is Dimension.SKILL:
        return [r.skill or None for r in records]
    if dimension is Dimension.AGENT:
        return [r.agent_id for r in records]
    if dimension is Dimension.TEAM:
        return [(r.team or None) if r.agent_id is not None else None for r in records]
    assert dimension is Dimension.AGENT_KIND
    return [
        ("extended" if r.extended else "regular") if r.agent_id is not None else None
        for r in records
    ]


def _sum_groups(
    table: npt.NDArray[np.float64],
    slots: npt.NDArray[np.int64],
    keys: list[str | None],
    dimension: Dimension,
    size: int,
) -> dict[tuple[float, Dimension, str], Counts]:
    codes: dict[str | None, int] = {}
    key_ids = np.asarray([codes.setdefault(k, len(codes)) for k in keys], dtype=np.int64)
    names = list(codes)
    keep = key_ids != codes.get(None, -1)
    combined = (slots[keep] - slots.min()) * len(names) + key_ids[keep]
    groups, ids = np.unique(combined, return_inverse=True)
    rows = table[keep]
    sums = np.empty((len(groups), len(FACT_FIELDS)), dtype=np.float64)
    for column in range(len(FACT_FIELDS)):
        if column == MAX_WAIT:
            sums[:, column] = 0.0
            np.maximum.at(sums[:, column], ids, rows[:, column])
        else:
            sums[:, column] = np.bincount(ids, weights=rows[:, column], minlength=len(groups))
    base = int(slots.min())
    result: dict[tuple[float, Dimension, str], Counts] = {}
    for group, values in zip(groups.tolist(), sums.tolist(), strict=True):
        slot, key_id = divmod(group, len(names))
        name = names[key_id]
        assert name is not None
        result[(float((base + slot) * size), dimension, name)] = counts_of(values)
    return result


def aggregate_intervals(
    records: Iterable[InteractionRecord],
    spans: Iterable[AgentSpan],
    config: StatsConfig,
    start: float,
    end: float,
    dimensions: Sequence[Dimension] = DEFAULT_DIMENSIONS,
) -> list[IntervalRow]:
    """Rows for every interval of [start, end) that saw a call or agent time.

    ``start`` and ``end`` must fall on interval boundaries. Records offered
    outside the period and span parts outside it are ignored, so callers may
    pass a generous superset.
    """
    size = config.interval
    if start % size or end % size:
        raise ConfigError(f"period [{start}, {end}) must be aligned on {size}-second intervals")
    if end < start:
        raise ConfigError(f"period [{start}, {end}) ends before it starts")

    # Python touches each record once for its facts and once per dimension
    # for its key; numpy does the grouping and the sums (a million records
    # in seconds, where a per-group accumulator took three times longer).
    chosen = [r for r in records if start <= r.offered_at < end]
    counts: dict[tuple[float, Dimension, str], Counts] = {}
    if chosen:
        table = np.asarray([facts(r, config) for r in chosen], dtype=np.float64)
        slots = np.floor(np.asarray([r.offered_at for r in chosen]) / size).astype(np.int64)
        for dimension in dimensions:
            counts.update(_sum_groups(table, slots, _keys(chosen, dimension), dimension, size))

    agent_dimensions = [d for d in dimensions if d in _AGENT_DIMENSIONS]
    times: dict[tuple[float, Dimension, str], list[float]] = defaultdict(lambda: [0.0] * 5)
    if agent_dimensions:
        for span in spans:
            index = _STATE_INDEX.get(span.state)
            if index is None:  # logged out
                continue
            lo, hi = max(span.start, start), min(span.end, end)
            if hi <= lo:
                continue
            keys = _span_keys(span, agent_dimensions)
            slot = math.floor(lo / size) * size
            while slot < hi:
                part = min(hi, slot + size) - max(lo, slot)
                if part > 0:
                    for dimension, key in keys:
                        times[(slot, dimension, key)][index] += part
                slot += size

    rows: list[IntervalRow] = []
    for row_key in sorted(counts.keys() | times.keys()):
        values = times.get(row_key)
        rows.append(
            IntervalRow(
                row_key[0],
                row_key[1],
                row_key[2],
                counts.get(row_key, Counts()),
                AgentTime(*values) if values is not None else AgentTime(),
            )
        )
    return rows
