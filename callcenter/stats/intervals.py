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

How (a million interactions is the design load): Python touches each record
once for its facts (:func:`callcenter.stats.kpis.facts`, the one place the
KPI definitions live) and once per dimension for its key; each group is then
a number ``slot * stride + key rank`` and numpy does the grouping, the sums
(``bincount``: sequential, in input order, as a running total would) and the
row order. The frozen rows are built once, at the end, column by column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from callcenter.errors import ConfigError
from callcenter.stats.kpis import (
    FACT_FIELDS,
    MAX_WAIT,
    AgentTime,
    Counts,
    Dimension,
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
_STATES = 5
_FACTS = len(FACT_FIELDS)
_INTEGER_FACTS = 9
"""The first nine facts are counts (ints in :class:`Counts`)."""
_NO_COUNTS = Counts()
_CHUNK = 65_536
_NO_TIME = AgentTime()

T = TypeVar("T")
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


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


def _span_keys(spans: Sequence[AgentSpan], dimension: Dimension) -> list[str | None]:
    if dimension is Dimension.AGENT:
        return [s.agent_id for s in spans]
    if dimension is Dimension.TEAM:
        return [s.team or None for s in spans]
    assert dimension is Dimension.AGENT_KIND
    return ["extended" if s.extended else "regular" for s in spans]


def _fact_table(records: Sequence[InteractionRecord], config: StatsConfig) -> Floats:
    """``table[fact, i]``: what record ``i`` contributes to each :class:`Counts` field."""
    table = np.empty((_FACTS, len(records)), dtype=np.float64)
    # In chunks: a small row-major buffer, transposed while it is in cache.
    for lo in range(0, len(records), _CHUNK):
        chunk = records[lo : lo + _CHUNK]
        flat = np.fromiter(
            chain.from_iterable(map(facts, chunk, repeat(config))), np.float64, len(chunk) * _FACTS
        )
        table[:, lo : lo + len(chunk)] = flat.reshape(len(chunk), _FACTS).T
    return table


def _codes(keys: Sequence[str | None], ranks: Mapping[str | None, int]) -> Ints:
    return np.fromiter(map(ranks.__getitem__, keys), dtype=np.int64, count=len(keys))


def _group(combined: Ints, bins: int) -> tuple[Ints, Ints]:
    """The distinct values of ``combined`` (sorted) and each element's index in them."""
    if bins <= max(4 * len(combined), 1 << 16):
        # A counting pass instead of a sort: a week of 15-minute intervals
        # times a thousand agents is under a million bins.
        present = np.bincount(combined, minlength=bins) > 0
        index = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(np.int64), index[combined]
    groups, inverse = np.unique(combined, return_inverse=True)
    return groups.astype(np.int64), inverse.reshape(-1).astype(np.int64)


@dataclass(slots=True)
class _Pieces:
    """Agent state spans cut at interval boundaries, clipped to the period,
    only the parts that last (in span order, then time order)."""

    span: Ints
    """Index of the piece's span in the spans given."""
    slot: Ints
    """Interval number, from the period's first (0)."""
    state: Ints
    seconds: Floats


def _cut(spans: Sequence[AgentSpan], size: int, start: float, end: float) -> _Pieces:
    base = math.floor(start / size)
    state = np.fromiter(
        (_STATE_INDEX.get(s.state, -1) for s in spans), dtype=np.int64, count=len(spans)
    )
    lo = np.maximum(np.fromiter((s.start for s in spans), np.float64, len(spans)), start)
    hi = np.minimum(np.fromiter((s.end for s in spans), np.float64, len(spans)), end)
    kept = np.flatnonzero((state >= 0) & (hi > lo))  # logged out is not paid time
    state, lo, hi = state[kept], lo[kept], hi[kept]
    # Every interval from the one holding lo to the one holding hi; a part
    # of zero length (hi on a boundary) is dropped below.
    first = np.floor(lo / size).astype(np.int64)
    pieces = np.floor(hi / size).astype(np.int64) - first + 1
    owner = np.repeat(np.arange(len(kept), dtype=np.int64), pieces)
    slot = first[owner] + (
        np.arange(len(owner), dtype=np.int64) - (np.cumsum(pieces) - pieces)[owner]
    )
    bound = (slot * size).astype(np.float64)
    seconds = np.minimum(hi[owner], bound + size) - np.maximum(lo[owner], bound)
    lasting = seconds > 0
    return _Pieces(
        kept[owner[lasting]], slot[lasting] - base, state[owner[lasting]], seconds[lasting]
    )


@dataclass(slots=True)
class _Block:
    """One dimension's rows, sorted by (interval, key)."""

    dimension: Dimension
    names: list[str]
    stride: int
    groups: Ints
    """``slot * stride + key rank`` of each row."""
    counted: Ints
    """Rows that hold calls, and their sums (``counts[fact, i]``)."""
    counts: Floats
    timed: Ints
    """Rows that hold agent time, and its seconds (``times[i, state]``)."""
    times: Floats


def _block(
    dimension: Dimension,
    keys: Sequence[str | None] | None,
    table: Floats,
    call_slots: Ints,
    span_keys: Sequence[str | None] | None,
    pieces: _Pieces | None,
    slots: int,
) -> _Block:
    distinct = dict.fromkeys(chain(keys or (), span_keys or ()))
    names = sorted(name for name in distinct if name is not None)
    ranks: dict[str | None, int] = {name: rank for rank, name in enumerate(names)}
    ranks[None] = len(names)  # no group: dropped
    stride = len(names) + 1
    bins = slots * stride
    call_groups = np.zeros(0, dtype=np.int64)
    counts = np.zeros((_FACTS, 0), dtype=np.float64)
    if keys:
        groups, ids = _group(call_slots * stride + _codes(keys, ranks), bins)
        counts = np.empty((_FACTS, len(groups)), dtype=np.float64)
        for fact in range(_FACTS):
            if fact == MAX_WAIT:
                counts[fact] = 0.0
                np.maximum.at(counts[fact], ids, table[fact])
            else:
                counts[fact] = np.bincount(ids, weights=table[fact], minlength=len(groups))
        named = groups % stride != len(names)
        call_groups, counts = groups[named], counts[:, named]
    time_groups = np.zeros(0, dtype=np.int64)
    times = np.zeros((0, _STATES), dtype=np.float64)
    if span_keys and pieces is not None and len(pieces.span):
        codes = _codes(span_keys, ranks)[pieces.span]
        named = codes != len(names)
        combined = pieces.slot[named] * stride + codes[named]
        time_groups, ids = _group(combined, bins)
        sums = np.bincount(
            ids * _STATES + pieces.state[named],
            weights=pieces.seconds[named],
            minlength=len(time_groups) * _STATES,
        )
        times = np.asarray(sums, dtype=np.float64).reshape(len(time_groups), _STATES)
    if not len(time_groups):
        rows = call_groups
    elif not len(call_groups):
        rows = time_groups
    else:
        rows = np.union1d(call_groups, time_groups).astype(np.int64)
    return _Block(
        dimension,
        names,
        stride,
        rows,
        np.searchsorted(rows, call_groups).astype(np.int64),
        counts,
        np.searchsorted(rows, time_groups).astype(np.int64),
        times,
    )


def _rows(blocks: Sequence[_Block], base: int, size: int) -> list[IntervalRow]:
    """The frozen rows of every block, ordered by (interval, dimension, key)."""
    blocks = [b for b in blocks if len(b.groups)]
    if not blocks:
        return []
    offsets = np.cumsum([0] + [len(b.groups) for b in blocks])
    total = int(offsets[-1])
    slot = np.concatenate([b.groups // b.stride for b in blocks])
    rank = np.concatenate([b.groups % b.stride for b in blocks])
    which = np.repeat(np.arange(len(blocks), dtype=np.int64), [len(b.groups) for b in blocks])
    # Blocks come in dimension order and each is sorted by (slot, key): a
    # stable sort on the slot gives (slot, dimension, key).
    order = np.argsort(slot, kind="stable")
    where = np.empty(total, dtype=np.int64)
    where[order] = np.arange(total, dtype=np.int64)

    starts = ((slot[order] + base) * size).astype(np.float64).tolist()
    dimensions = np.array([b.dimension for b in blocks], dtype=object)[which[order]].tolist()
    name_offsets = np.cumsum([0] + [len(b.names) for b in blocks])
    names = np.array([n for b in blocks for n in b.names], dtype=object)
    keys = names[name_offsets[which[order]] + rank[order]].tolist()

    counted = np.concatenate([b.counted + offsets[i] for i, b in enumerate(blocks)])
    sums = np.concatenate([b.counts for b in blocks], axis=1)
    counts = _place(
        where[counted],
        sums,
        lambda columns: map(
            Counts,
            *(c.astype(np.int64).tolist() for c in columns[:_INTEGER_FACTS]),
            *(c.tolist() for c in columns[_INTEGER_FACTS:]),
        ),
        _NO_COUNTS,
        total,
    )
    timed = np.concatenate([b.timed + offsets[i] for i, b in enumerate(blocks)])
    seconds = np.concatenate([b.times for b in blocks], axis=0).T
    times = _place(
        where[timed],
        seconds,
        lambda columns: map(AgentTime, *(c.tolist() for c in columns)),
        _NO_TIME,
        total,
    )
    return list(map(IntervalRow, starts, dimensions, keys, counts, times))


def _place(
    positions: Ints,
    columns: Floats,
    build: Callable[[Floats], Iterable[T]],
    missing: T,
    total: int,
) -> list[T]:
    """``total`` values: one built from each column set at its position, ``missing`` elsewhere."""
    order = np.argsort(positions)
    built = build(columns[:, order])
    if len(positions) == total:
        return list(built)
    values = [missing] * total
    for position, value in zip(positions[order].tolist(), built, strict=True):
        values[position] = value
    return values


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
    base = math.floor(start / size)
    # One more slot: a time just below ``end`` may round onto it when divided.
    slots = math.floor(end / size) - base + 1
    chosen = [r for r in records if start <= r.offered_at < end]
    n = len(chosen)
    table = _fact_table(chosen, config)
    offered = np.fromiter((r.offered_at for r in chosen), np.float64, n)
    call_slots = np.floor(offered / size).astype(np.int64) - base

    wanted = sorted(dict.fromkeys(dimensions))  # Dimension is a StrEnum: the row order
    pieces: _Pieces | None = None
    states: list[AgentSpan] = []
    if any(d in _AGENT_DIMENSIONS for d in wanted):
        states = list(spans)
        pieces = _cut(states, size, start, end)
    blocks = [
        _block(
            dimension,
            _keys(chosen, dimension) if n else None,
            table,
            call_slots,
            _span_keys(states, dimension) if dimension in _AGENT_DIMENSIONS and states else None,
            pieces,
            slots,
        )
        for dimension in wanted
    ]
    return _rows(blocks, base, size)
