"""Reports: interval and daily figures, agent performance, dispositions, CSAT.

Pure: the inputs are the stored 15-minute rows (:class:`IntervalRow`, from
:func:`callcenter.store.stats.fetch_intervals`) and, for what the rows do not
hold, per-interaction facts (:class:`ContactFact`: disposition code, survey
score, the statistics record for FCR). No I/O, no clock: "now" and the time
zone are arguments.

Every ratio is the one of :mod:`callcenter.stats.kpis` applied to **summed**
counts (a day's SL is Σ answered within T / Σ answered over its intervals,
never an average of interval SLs); nothing here redefines a KPI. Two figures
are defined here because they have no other home:

* **CSAT** (post-call IVR survey, score 1 to 5): satisfied / responses, where
  satisfied means a score ≥ :data:`SATISFIED` (the usual "top-two-box" CSAT);
  also the average score and the response rate (responses / surveys run).
* **Disposition counts**: answered interactions per disposition code the agent
  set (``(none)`` when the agent set none).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from callcenter.errors import ConfigError
from callcenter.stats.intervals import IntervalRow
from callcenter.stats.kpis import (
    AgentTime,
    Counts,
    Dimension,
    Fcr,
    abandon_rate,
    aht,
    asa,
    dimension_key,
    first_contact_resolution,
    occupancy,
    service_level,
    service_level2,
)
from callcenter.stats.model import InteractionRecord, Outcome, StatsConfig

ALL = "ALL"
"""Key of a total line (every queue, every agent of the report)."""
NO_DISPOSITION = "(none)"
SATISFIED = 4
"""Survey scores at or above this (on 1..5) count as satisfied."""
SURVEY_SCALE = (1, 5)


# -- periods ----------------------------------------------------------------


def day_of(epoch: float, tz: tzinfo) -> date:
    """The local calendar day holding ``epoch``."""
    return datetime.fromtimestamp(epoch, tz).date()


def day_start(day: date, tz: tzinfo) -> float:
    """Epoch of local midnight opening ``day`` (DST-aware)."""
    return datetime.combine(day, time(0), tz).timestamp()


def _parse_instant(text: str, tz: tzinfo, *, end: bool) -> float:
    try:
        if len(text) == 10:  # a date: its whole day
            day = date.fromisoformat(text)
            return day_start(day + timedelta(days=1) if end else day, tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"not a date or date-time: {text!r} (use 2024-05-01 or 2024-05-01T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def parse_period(start: str, end: str, tz: tzinfo, interval: int = 900) -> tuple[float, float]:
    """``--from``/``--to`` as epoch seconds [start, end), widened to whole intervals.

    A date means its whole local day: ``--from 2024-05-01 --to 2024-05-07``
    covers seven days, both ends included. A date-time is an instant and the
    end is exclusive (``--to 2024-05-01T12:00`` stops at noon).
    """
    lo = _parse_instant(start, tz, end=False)
    hi = _parse_instant(end, tz, end=True)
    if hi <= lo:
        raise ConfigError(f"empty period: --to {end} is not after --from {start}")
    return math.floor(lo / interval) * interval, math.ceil(hi / interval) * interval


def days_of(start: float, end: float, tz: tzinfo) -> list[tuple[date, float, float]]:
    """The local days overlapping [start, end): (day, its start, its end), clipped."""
    result: list[tuple[date, float, float]] = []
    day = day_of(start, tz)
    while True:
        lo = max(day_start(day, tz), start)
        hi = min(day_start(day + timedelta(days=1), tz), end)
        if lo >= end:
            break
        if hi > lo:
            result.append((day, lo, hi))
        day += timedelta(days=1)
    return result


# -- figures ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportLine:
    """The figures of one group (queue, agent...) over one period (an
    interval or a day)."""

    period: str
    """"2024-05-01 08:15" (interval, local time) or "2024-05-01" (day)."""
    period_start: float
    dimension: Dimension
    key: str
    counts: Counts
    agent_time: AgentTime = field(default_factory=AgentTime)
    fcr: Fcr | None = None

    def figures(self) -> dict[str, str | float | int | None]:
        """Flat name -> value, for CSV and JSON; ratios are None without a denominator."""
        c, t = self.counts, self.agent_time
        return {
            "period": self.period,
            "dimension": self.dimension.value,
            "key": self.key,
            "offered": c.offered,
            "answered": c.answered,
            "answered_in_sl": c.answered_in_sl,
            "abandoned": c.abandoned,
            "short_abandoned": c.short_abandoned,
            "callbacks": c.callbacks,
            "transferred": c.transferred,
            "handled": c.handled,
            "sl": service_level(c),
            "sl2": service_level2(c),
            "asa_s": asa(c),
            "aht_s": aht(c),
            "abandon_rate": abandon_rate(c),
            "max_wait_s": c.max_wait,
            "occupancy": occupancy(t),
            "fcr": self.fcr.rate if self.fcr is not None else None,
            "fcr_eligible": self.fcr.eligible if self.fcr is not None else None,
            "talk_s": c.talk,
            "hold_s": c.hold,
            "wrap_s": c.wrap,
        }


FIGURE_COLUMNS: tuple[str, ...] = tuple(
    ReportLine("", 0.0, Dimension.QUEUE, "", Counts()).figures().keys()
)


def _label(epoch: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M")


def _wanted(keys: Iterable[str] | None) -> Callable[[str], bool]:
    if keys is None:
        return lambda _key: True
    chosen = frozenset(keys)
    return lambda key: key in chosen


def interval_lines(
    rows: Iterable[IntervalRow],
    dimension: Dimension = Dimension.QUEUE,
    *,
    tz: tzinfo = UTC,
    keys: Iterable[str] | None = None,
) -> list[ReportLine]:
    """One line per stored interval row of ``dimension`` (and ``keys``)."""
    wanted = _wanted(keys)
    return [
        ReportLine(
            _label(r.interval_start, tz),
            r.interval_start,
            r.dimension,
            r.key,
            r.counts,
            r.agent_time,
        )
        for r in sorted(rows, key=lambda r: (r.interval_start, r.key))
        if r.dimension is dimension and wanted(r.key)
    ]


def daily_lines(
    rows: Iterable[IntervalRow],
    dimension: Dimension = Dimension.QUEUE,
    *,
    tz: tzinfo = UTC,
    keys: Iterable[str] | None = None,
    fcr: Mapping[tuple[date, str], Fcr] | None = None,
    total: bool = True,
) -> list[ReportLine]:
    """Per local day and key: summed counts and agent time, ratios from the sums.

    With ``total``, each day also gets an :data:`ALL` line: the sum of the
    day's lines; for queue and skill lines (which hold no agent time) its
    occupancy is the one of every agent (the day's ``agent_kind`` rows).
    ``fcr`` maps (day, key) to the FCR of the contacts of that day (see
    :func:`fcr_by_day`; key :data:`ALL` for the total).
    """
    wanted = _wanted(keys)
    counts: dict[tuple[date, str], Counts] = defaultdict(Counts)
    times: dict[tuple[date, str], AgentTime] = defaultdict(AgentTime)
    everyone: dict[date, AgentTime] = defaultdict(AgentTime)
    starts: dict[date, float] = {}
    for r in rows:
        day = day_of(r.interval_start, tz)
        if r.dimension is Dimension.AGENT_KIND:
            everyone[day] += r.agent_time
        if r.dimension is not dimension or not wanted(r.key):
            continue
        starts.setdefault(day, day_start(day, tz))
        counts[(day, r.key)] += r.counts
        times[(day, r.key)] += r.agent_time
    fcr = fcr or {}
    lines: list[ReportLine] = []
    for day in sorted(starts):
        keys_of_day = sorted(k for d, k in counts if d == day)
        day_lines = [
            ReportLine(
                day.isoformat(),
                starts[day],
                dimension,
                key,
                counts[(day, key)],
                times[(day, key)],
                fcr.get((day, key)),
            )
            for key in keys_of_day
        ]
        lines += day_lines
        if total and day_lines:
            summed = sum((line.counts for line in day_lines), Counts())
            agent_time = (
                everyone[day]
                if dimension in (Dimension.QUEUE, Dimension.SKILL)
                else sum((line.agent_time for line in day_lines), AgentTime())
            )
            lines.append(
                ReportLine(
                    day.isoformat(),
                    starts[day],
                    dimension,
                    ALL,
                    summed,
                    agent_time,
                    fcr.get((day, ALL)),
                )
            )
    return lines


def fcr_by_day(
    records: Iterable[InteractionRecord],
    config: StatsConfig,
    *,
    start: float,
    end: float,
    until: float,
    tz: tzinfo = UTC,
    dimension: Dimension = Dimension.QUEUE,
) -> dict[tuple[date, str], Fcr]:
    """FCR of the contacts offered in [start, end), per (local day, key) and
    per (day, :data:`ALL`).

    ``records`` must also hold the contacts up to ``fcr_days`` after ``end``
    (the repeats); ``until`` is how far the data goes (a contact whose window
    is not over then is not judged yet, see :func:`first_contact_resolution`).
    """
    chosen = list(records)
    sep = "\x1f"

    def grouped(by_key: bool) -> Callable[[InteractionRecord], str | None]:
        def group(r: InteractionRecord) -> str | None:
            if not start <= r.offered_at < end:
                return None  # a repeat only: judged in its own period
            key = dimension_key(r, dimension) if by_key else ALL
            if key is None:
                return None
            return f"{day_of(r.offered_at, tz).isoformat()}{sep}{key}"

        return group

    result: dict[tuple[date, str], Fcr] = {}
    for by_key in (True, False):
        found = first_contact_resolution(chosen, config, until=until, group=grouped(by_key))
        for group_key, value in found.items():
            assert group_key is not None
            day_text, key = group_key.split(sep, 1)
            result[(date.fromisoformat(day_text), key)] = value
    return result


# -- agents, dispositions, CSAT -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Csat:
    """Post-call survey results of a group of interactions."""

    surveyed: int = 0
    """Surveys run (the caller heard the question)."""
    responses: int = 0
    """Surveys with a score."""
    satisfied: int = 0
    score_sum: int = 0

    def __add__(self, other: Csat) -> Csat:
        return Csat(
            self.surveyed + other.surveyed,
            self.responses + other.responses,
            self.satisfied + other.satisfied,
            self.score_sum + other.score_sum,
        )

    @property
    def csat(self) -> float | None:
        return csat(self)

    @property
    def average(self) -> float | None:
        return None if self.responses == 0 else self.score_sum / self.responses

    @property
    def response_rate(self) -> float | None:
        return None if self.surveyed == 0 else self.responses / self.surveyed


def csat(c: Csat) -> float | None:
    """CSAT: satisfied responses (score ≥ :data:`SATISFIED`) / responses."""
    return None if c.responses == 0 else c.satisfied / c.responses


@dataclass(frozen=True, slots=True)
class ContactFact:
    """What reports need of one interaction beyond the interval rows."""

    interaction_id: str
    queue: str
    offered_at: float
    agent_id: str | None = None
    answered: bool = False
    disposition: str | None = None
    surveyed: bool = False
    survey_score: int | None = None

    @classmethod
    def of(
        cls,
        record: InteractionRecord,
        *,
        disposition: str | None = None,
        surveyed: bool = False,
        survey_score: int | None = None,
    ) -> ContactFact:
        return cls(
            record.interaction_id,
            record.queue,
            record.offered_at,
            record.agent_id,
            record.outcome is Outcome.ANSWERED,
            disposition or None,
            surveyed,
            survey_score,
        )


def _fact_key(fact: ContactFact, dimension: Dimension) -> str | None:
    if dimension is Dimension.QUEUE:
        return fact.queue
    if dimension is Dimension.AGENT:
        return fact.agent_id
    raise ConfigError(f"dispositions and CSAT are reported per queue or agent, not {dimension}")


def csat_by(
    facts: Iterable[ContactFact], dimension: Dimension = Dimension.QUEUE
) -> dict[str, Csat]:
    """Survey results per queue or agent (surveys with an out-of-scale score are
    counted as run, not as responses)."""
    low, high = SURVEY_SCALE
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for fact in facts:
        key = _fact_key(fact, dimension)
        if key is None or not fact.surveyed:
            continue
        values = sums[key]
        values[0] += 1
        score = fact.survey_score
        if score is not None and low <= score <= high:
            values[1] += 1
            values[2] += 1 if score >= SATISFIED else 0
            values[3] += score
    return {key: Csat(*values) for key, values in sorted(sums.items())}


@dataclass(frozen=True, slots=True)
class DispositionLine:
    key: str
    code: str
    count: int
    share: float
    """count / answered interactions of the key."""


def disposition_counts(
    facts: Iterable[ContactFact], dimension: Dimension = Dimension.QUEUE
) -> list[DispositionLine]:
    """Answered interactions per (queue or agent, disposition code)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for fact in facts:
        if not fact.answered:
            continue
        key = _fact_key(fact, dimension)
        if key is None:
            continue
        counts[key][fact.disposition or NO_DISPOSITION] += 1
    lines: list[DispositionLine] = []
    for key in sorted(counts):
        total = sum(counts[key].values())
        for code, n in sorted(counts[key].items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(DispositionLine(key, code, n, n / total))
    return lines


@dataclass(frozen=True, slots=True)
class AgentLine:
    """One agent over the report's period."""

    agent_id: str
    counts: Counts
    agent_time: AgentTime
    csat: Csat = field(default_factory=Csat)
    dispositions: int = 0
    """Answered interactions the agent gave a disposition code."""

    def figures(self) -> dict[str, str | float | int | None]:
        c, t = self.counts, self.agent_time
        staffed = t.ready + t.reserved + t.talk + t.wrap + t.paused
        return {
            "agent": self.agent_id,
            "answered": c.answered,
            "handled": c.handled,
            "transferred": c.transferred,
            "aht_s": aht(c),
            "avg_talk_s": None if c.handled == 0 else c.talk / c.handled,
            "avg_hold_s": None if c.handled == 0 else c.hold / c.handled,
            "avg_wrap_s": None if c.handled == 0 else c.wrap / c.handled,
            "asa_s": asa(c),
            "occupancy": occupancy(t),
            "staffed_s": staffed,
            "ready_s": t.ready + t.reserved,
            "talk_s": t.talk,
            "wrap_s": t.wrap,
            "paused_s": t.paused,
            "disposition_rate": None if c.answered == 0 else self.dispositions / c.answered,
            "surveys": self.csat.surveyed,
            "csat": csat(self.csat),
            "avg_score": self.csat.average,
        }


AGENT_COLUMNS: tuple[str, ...] = tuple(AgentLine("", Counts(), AgentTime()).figures().keys())


def agent_lines(
    rows: Iterable[IntervalRow],
    facts: Sequence[ContactFact] = (),
    *,
    keys: Iterable[str] | None = None,
) -> list[AgentLine]:
    """Agent performance over the whole period of ``rows`` (the agent rows:
    calls the agent answered, the agent's own state time) with the agent's
    dispositions and survey results from ``facts``."""
    wanted = _wanted(keys)
    counts: dict[str, Counts] = defaultdict(Counts)
    times: dict[str, AgentTime] = defaultdict(AgentTime)
    for r in rows:
        if r.dimension is Dimension.AGENT and wanted(r.key):
            counts[r.key] += r.counts
            times[r.key] += r.agent_time
    surveys = csat_by(facts, Dimension.AGENT)
    coded: dict[str, int] = defaultdict(int)
    for fact in facts:
        if fact.answered and fact.agent_id is not None and fact.disposition:
            coded[fact.agent_id] += 1
    return [
        AgentLine(agent, counts[agent], times[agent], surveys.get(agent, Csat()), coded[agent])
        for agent in sorted(counts.keys() | times.keys())
    ]


# -- chart data -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChartPoint:
    start: float
    label: str
    """Local "HH:MM" of the interval start."""
    offered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    sl: float | None


def day_chart(
    rows: Iterable[IntervalRow],
    start: float,
    end: float,
    *,
    tz: tzinfo = UTC,
    interval: int = 900,
    queues: Iterable[str] | None = None,
) -> list[ChartPoint]:
    """Volume and SL per interval of [start, end) (every interval, empty ones
    at zero), summed over the queues (or the chosen ones)."""
    wanted = _wanted(queues)
    sums: dict[float, Counts] = defaultdict(Counts)
    for r in rows:
        if r.dimension is Dimension.QUEUE and wanted(r.key) and start <= r.interval_start < end:
            sums[r.interval_start] += r.counts
    points: list[ChartPoint] = []
    slot = math.floor(start / interval) * interval
    while slot < end:
        c = sums.get(slot, Counts())
        label = datetime.fromtimestamp(slot, tz).strftime("%H:%M")
        points.append(
            ChartPoint(
                slot, label, c.offered, c.answered, c.answered_in_sl, c.abandoned, service_level(c)
            )
        )
        slot += interval
    return points


# -- export -------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if math.isfinite(value) else ""
    return str(value)


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """CSV text (header + one row per mapping); ratios as fractions (0.8 = 80 %),
    times in seconds, 4 decimals; no value is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()
