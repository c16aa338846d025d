"""KPI definitions: one place, exact formulas (docs/kpis.md explains each).

Counts are additive (two intervals' counts add up to the counts of both), so
ratios are always computed from summed counts, never averaged. A ratio whose
denominator is zero is ``None``: "no call" is not "100 %".
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum

from callcenter.stats.model import (
    DAY,
    ON_CALL,
    READY,
    RESERVED,
    WRAP_UP,
    AgentSpan,
    InteractionRecord,
    Outcome,
    StatsConfig,
)


class Dimension(StrEnum):
    QUEUE = "queue"
    SKILL = "skill"
    AGENT = "agent"
    TEAM = "team"
    AGENT_KIND = "agent_kind"
    """"regular" or "extended": extended agents are reported apart."""


def _kind(extended: bool) -> str:
    return "extended" if extended else "regular"


def dimension_key(record: InteractionRecord, dimension: Dimension) -> str | None:
    """The group a record belongs to, or None when it has none (an unanswered
    call has no agent, team or agent kind; a call routed on no skill has no skill)."""
    if dimension is Dimension.QUEUE:
        return record.queue
    if dimension is Dimension.SKILL:
        return record.skill or None
    if record.agent_id is None:
        return None
    if dimension is Dimension.AGENT:
        return record.agent_id
    if dimension is Dimension.TEAM:
        return record.team or None
    return _kind(record.extended)


@dataclass(frozen=True, slots=True)
class Counts:
    """Additive call counts and time sums of a group of interactions."""

    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    """Abandons at or above the short-abandon threshold."""
    abandoned_in_sl: int = 0
    short_abandoned: int = 0
    callbacks: int = 0
    transferred: int = 0
    handled: int = 0
    wait_answered: float = 0.0
    """Sum of the waits of answered calls (the ASA numerator)."""
    wait_abandoned: float = 0.0
    max_wait: float = 0.0
    talk: float = 0.0
    hold: float = 0.0
    wrap: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        values = {
            f.name: (
                max(getattr(self, f.name), getattr(other, f.name))
                if f.name == "max_wait"
                else getattr(self, f.name) + getattr(other, f.name)
            )
            for f in fields(self)
        }
        return Counts(**values)

    @property
    def service_level(self) -> float | None:
        return service_level(self)

    @property
    def service_level2(self) -> float | None:
        return service_level2(self)

    @property
    def asa(self) -> float | None:
        return asa(self)

    @property
    def aht(self) -> float | None:
        return aht(self)

    @property
    def abandon_rate(self) -> float | None:
        return abandon_rate(self)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def service_level(c: Counts) -> float | None:
    """SL (app_queue ``ServicelevelPerf``): answered within T / answered."""
    return _ratio(c.answered_in_sl, c.answered)


def service_level2(c: Counts) -> float | None:
    """SL2 (app_queue ``ServicelevelPerf2``):
    (answered within T + abandoned within T) / (answered + abandoned).
    Short abandons are in neither term."""
    return _ratio(c.answered_in_sl + c.abandoned_in_sl, c.answered + c.abandoned)


def asa(c: Counts) -> float | None:
    """Average speed of answer: total wait of answered calls / answered."""
    return _ratio(c.wait_answered, c.answered)


def aht(c: Counts) -> float | None:
    """Average handle time: (talk + hold + wrap-up) / handled."""
    return _ratio(c.talk + c.hold + c.wrap, c.handled)


def abandon_rate(c: Counts) -> float | None:
    """Abandoned / (offered − short abandons)."""
    return _ratio(c.abandoned, c.offered - c.short_abandoned)


FACT_FIELDS: tuple[str, ...] = (
    "offered",
    "answered",
    "answered_in_sl",
    "abandoned",
    "abandoned_in_sl",
    "short_abandoned",
    "callbacks",
    "transferred",
    "handled",
    "wait_answered",
    "wait_abandoned",
    "max_wait",
    "talk",
    "hold",
    "wrap",
)
"""The :class:`Counts` fields, in the order :func:`facts` gives them."""
MAX_WAIT = FACT_FIELDS.index("max_wait")
"""The one fact that combines by max, not by sum."""


def facts(record: InteractionRecord, config: StatsConfig) -> tuple[float, ...]:
    """What one record contributes to each :class:`Counts` field: the KPI
    definitions live here and only here."""
    outcome = record.outcome
    if outcome is Outcome.ANSWERED:
        assert record.answered_at is not None
        wait = record.answered_at - record.offered_at
        # "Within T" includes T itself, as app_queue compares waited <= servicelevel.
        in_sl = 1 if wait <= config.threshold(record.queue) else 0
        transferred = 1 if record.transferred else 0
        if record.ended_at is None:
            return (1, 1, in_sl, 0, 0, 0, 0, transferred, 0, wait, 0.0, wait, 0.0, 0.0, 0.0)
        return (
            1,
            1,
            in_sl,
            0,
            0,
            0,
            0,
            transferred,
            1,
            wait,
            0.0,
            wait,
            record.talk,
            record.hold_seconds,
            record.wrap,
        )
    if outcome is Outcome.ABANDONED:
        assert record.left_at is not None
        wait = record.left_at - record.offered_at
        if wait < config.short_abandon:
            return (1, 0, 0, 0, 0, 1, 0, 0, 0, 0.0, 0.0, wait, 0.0, 0.0, 0.0)
        in_sl = 1 if wait <= config.threshold(record.queue) else 0
        return (1, 0, 0, 1, in_sl, 0, 0, 0, 0, 0.0, wait, wait, 0.0, 0.0, 0.0)
    if outcome is Outcome.CALLBACK:
        assert record.left_at is not None
        wait = record.left_at - record.offered_at
        return (1, 0, 0, 0, 0, 0, 1, 0, 0, 0.0, 0.0, wait, 0.0, 0.0, 0.0)
    return (1, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def counts_of(values: Sequence[float]) -> Counts:
    """Counts from combined facts (in :data:`FACT_FIELDS` order)."""
    # Counts are sums of 0s and 1s: exact in a float up to 2**53.
    n = [int(v) for v in values[:9]]
    return Counts(n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8], *values[9:])


class Accumulator:
    """Running :class:`Counts` of a group of records."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values = [0.0] * len(FACT_FIELDS)

    def add(self, record: InteractionRecord, config: StatsConfig) -> None:
        values = self._values
        for i, value in enumerate(facts(record, config)):
            if i == MAX_WAIT:
                if value > values[i]:
                    values[i] = value
            else:
                values[i] += value

    def freeze(self) -> Counts:
        return counts_of(self._values)


def summarize(records: Iterable[InteractionRecord], config: StatsConfig) -> Counts:
    acc = Accumulator()
    for record in records:
        acc.add(record, config)
    return acc.freeze()


def summarize_by(
    records: Iterable[InteractionRecord], dimension: Dimension, config: StatsConfig
) -> dict[str, Counts]:
    """Counts per group of ``dimension``; records without a group are left out."""
    groups: dict[str, Accumulator] = defaultdict(Accumulator)
    for record in records:
        key = dimension_key(record, dimension)
        if key is not None:
            groups[key].add(record, config)
    return {key: acc.freeze() for key, acc in sorted(groups.items())}


@dataclass(frozen=True, slots=True)
class AgentTime:
    """Seconds an agent (or a group of agents) spent in each state."""

    ready: float = 0.0
    reserved: float = 0.0
    """Phone ringing: available, not yet productive."""
    talk: float = 0.0
    """On a call, hold included."""
    wrap: float = 0.0
    paused: float = 0.0

    def __add__(self, other: AgentTime) -> AgentTime:
        return AgentTime(
            self.ready + other.ready,
            self.reserved + other.reserved,
            self.talk + other.talk,
            self.wrap + other.wrap,
            self.paused + other.paused,
        )

    @property
    def occupancy(self) -> float | None:
        return occupancy(self)


def occupancy(t: AgentTime) -> float | None:
    """(talk + wrap-up) / (ready + talk + wrap-up); ringing time counts as ready."""
    return _ratio(t.talk + t.wrap, t.ready + t.reserved + t.talk + t.wrap)


_STATE_FIELD = {READY: 0, RESERVED: 1, ON_CALL: 2, WRAP_UP: 3, "paused": 4}


def agent_time(
    spans: Iterable[AgentSpan], start: float | None = None, end: float | None = None
) -> dict[str, AgentTime]:
    """Time per agent and state, clipped to [start, end) when given."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    for span in spans:
        index = _STATE_FIELD.get(span.state)
        if index is None:  # logged out: not paid time
            continue
        lo = span.start if start is None else max(span.start, start)
        hi = span.end if end is None else min(span.end, end)
        if hi > lo:
            sums[span.agent_id][index] += hi - lo
    return {agent: AgentTime(*values) for agent, values in sorted(sums.items())}


@dataclass(frozen=True, slots=True)
class Fcr:
    eligible: int = 0
    resolved: int = 0

    @property
    def rate(self) -> float | None:
        return _ratio(self.resolved, self.eligible)


def first_contact_resolution(
    records: Iterable[InteractionRecord],
    config: StatsConfig,
    *,
    until: float | None = None,
    group: Callable[[InteractionRecord], str | None] | None = None,
) -> dict[str | None, Fcr]:
    """FCR: an answered contact is resolved if the same customer makes no
    other contact within ``fcr_days`` after it.

    Contacts are customer-initiated interactions with a customer id: a
    transfer (``origin`` set) continues the contact it came from and is
    neither a contact nor a repeat. Any outcome of a later contact counts as
    a repeat (an abandoned retry is still a customer coming back). A contact
    whose N-day window is not over at ``until`` (the end of the data) is not
    judged yet and left out. Without ``group`` the result has one key, None.
    """
    window = config.fcr_days * DAY
    contacts = [r for r in records if r.customer_id is not None and r.origin is None]
    times: dict[str, list[float]] = defaultdict(list)
    for r in contacts:
        assert r.customer_id is not None
        times[r.customer_id].append(r.offered_at)
    for values in times.values():
        values.sort()
    result: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for r in contacts:
        if r.outcome is not Outcome.ANSWERED:
            continue
        if until is not None and r.offered_at + window > until:
            continue
        assert r.customer_id is not None
        key = group(r) if group is not None else None
        if group is not None and key is None:
            continue
        same = times[r.customer_id]
        # Contacts strictly after this one and at most N days later.
        first_after = bisect.bisect_right(same, r.offered_at)
        last = bisect.bisect_right(same, r.offered_at + window)
        counts = result[key]
        counts[0] += 1
        if last == first_after:
            counts[1] += 1
    return {key: Fcr(eligible, resolved) for key, (eligible, resolved) in result.items()}


def fcr_by(
    records: Iterable[InteractionRecord],
    dimension: Dimension,
    config: StatsConfig,
    *,
    until: float | None = None,
) -> Mapping[str, Fcr]:
    result = first_contact_resolution(
        records, config, until=until, group=lambda r: dimension_key(r, dimension)
    )
    return {key: fcr for key, fcr in sorted(result.items(), key=lambda kv: str(kv[0])) if key}
