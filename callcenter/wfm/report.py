"""Figures from a simulation: service level, ASA, abandons, occupancy, AHT.

Definitions (the same as :func:`callcenter.wfm.erlang.erlang_a`):

* offered: calls that arrived at or after the warm-up;
* service level: calls answered within the queue's target time, over offered
  calls that finished (answered or abandoned; abandons count against);
* SL excluding short abandons: the same with calls that abandoned within the
  target time removed from the denominator;
* ASA: mean wait of answered calls (arrival to answer, ringing included);
* abandon rate: abandoned / finished;
* AHT: talk + wrap-up, mean over answered calls that ended;
* occupancy: busy (ringing, talking, wrap-up) / logged-in time.

Calls still waiting or talking when the run stopped are counted as
``unfinished`` and left out of the rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callcenter.wfm.scenario import parse_clock
from callcenter.wfm.simulator import SimulationResult

__all__ = ["Figures", "IntervalFigures", "Report", "build_report", "clock_label", "format_report"]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Figures:
    offered: int
    answered: int
    abandoned: int
    unfinished: int
    service_level: float
    service_level_excl_short_abandons: float
    asa: float
    abandon_rate: float
    aht: float
    talk_time: float
    wrapup_time: float
    max_wait: float


@dataclass(frozen=True, slots=True)
class IntervalFigures:
    start: float  # seconds from the scenario start
    label: str  # HH:MM
    offered: int
    service_level: float  # NaN when no call finished
    asa: float  # NaN when no call was answered
    abandon_rate: float
    waiting_mean: float  # time-average of waiting calls, all queues
    waiting_max: int


@dataclass(frozen=True, slots=True)
class Report:
    total: Figures
    by_queue: dict[str, Figures]
    by_skill: dict[str, Figures]
    occupancy: float
    occupancy_by_group: dict[str, float]
    occupancy_by_skill: dict[str, float]
    intervals: list[IntervalFigures]
    interval_sl_by_queue: dict[str, list[float]]  # SL per forecast interval, per queue
    waiting_series: npt.NDArray[np.float64]  # mean waiting calls per sample step, all queues
    sample_step: float
    interval: float
    start_label: str  # clock time of t = 0
    end_time: float
    agents: int
    offers: int
    unanswered_offers: int


def _figures(result: SimulationResult, mask: BoolArray, target: npt.NDArray[np.float64]) -> Figures:
    arrival = result.arrival[mask]
    answered_at = result.answered[mask]
    abandoned_at = result.abandoned[mask]
    ended_at = result.ended[mask]
    limit = target[mask]
    answered = ~np.isnan(answered_at)
    abandoned = ~np.isnan(abandoned_at)
    finished = int(answered.sum() + abandoned.sum())
    wait = answered_at[answered] - arrival[answered]
    quick = int(np.sum(wait <= limit[answered] + 1e-9))
    short_abandons = int(np.sum(abandoned_at[abandoned] - arrival[abandoned] <= limit[abandoned]))
    done = answered & ~np.isnan(ended_at)
    talk = ended_at[done] - answered_at[done]
    wrap = result.wrapup[mask][done]
    all_waits = np.concatenate([wait, abandoned_at[abandoned] - arrival[abandoned]])
    nan = math.nan
    return Figures(
        offered=int(mask.sum()),
        answered=int(answered.sum()),
        abandoned=int(abandoned.sum()),
        unfinished=int(mask.sum()) - finished,
        service_level=quick / finished if finished else nan,
        service_level_excl_short_abandons=quick / (finished - short_abandons)
        if finished > short_abandons
        else nan,
        asa=float(wait.mean()) if wait.size else nan,
        abandon_rate=int(abandoned.sum()) / finished if finished else nan,
        aht=float((talk + wrap).mean()) if talk.size else nan,
        talk_time=float(talk.mean()) if talk.size else nan,
        wrapup_time=float(wrap.mean()) if wrap.size else nan,
        max_wait=float(all_waits.max()) if all_waits.size else nan,
    )


def clock_label(start_label: str, seconds: float) -> str:
    origin = parse_clock(start_label, 0.0, "start")
    minutes = round((origin + seconds) / 60.0)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def build_report(result: SimulationResult) -> Report:
    scenario = result.scenario
    counted = result.arrival >= scenario.warmup
    targets = np.array([q.target_time for q in scenario.queues], dtype=np.float64)
    target = targets[result.queue] if result.queue.size else np.zeros(0)
    by_queue = {
        spec.name: _figures(result, counted & (result.queue == i), target)
        for i, spec in enumerate(scenario.queues)
    }
    by_skill: dict[str, Figures] = {}
    for skill in scenario.skills:
        ids = [i for i, q in enumerate(scenario.queues) if q.skill == skill]
        by_skill[skill] = _figures(result, counted & np.isin(result.queue, ids), target)

    logged, busy = result.logged_seconds, result.busy_seconds

    def ratio(select: BoolArray) -> float:
        total = float(logged[select].sum())
        return float(busy[select].sum()) / total if total > 0 else math.nan

    groups = result.agent_group
    occupancy_by_group = {g.name: ratio(groups == i) for i, g in enumerate(scenario.agents)}
    occupancy_by_skill = {}
    for skill in scenario.skills:
        holders = [i for i, g in enumerate(scenario.agents) if skill in g.skills]
        occupancy_by_skill[skill] = ratio(np.isin(groups, holders))

    # per forecast interval, by arrival time
    interval = scenario.interval
    n_intervals = max(1, math.ceil(scenario.day_length / interval))
    index = np.minimum((result.arrival // interval).astype(np.int64), n_intervals - 1)
    area = result.waiting_area.sum(axis=0)
    peak_series = result.waiting_max.max(axis=0)
    step = result.sample_step
    waiting_series = area / step
    intervals: list[IntervalFigures] = []
    for k in range(n_intervals):
        begin, end = k * interval, (k + 1) * interval
        figures = _figures(result, counted & (index == k), target)
        lo, hi = int(begin // step), max(int(begin // step) + 1, math.ceil(end / step))
        span_area = float(area[lo:hi].sum())
        covered = min(end, hi * step) - lo * step
        intervals.append(
            IntervalFigures(
                start=begin,
                label=clock_label(scenario.start, begin),
                offered=figures.offered,
                service_level=figures.service_level,
                asa=figures.asa,
                abandon_rate=figures.abandon_rate,
                waiting_mean=span_area / covered if covered > 0 else 0.0,
                waiting_max=int(peak_series[lo:hi].max()) if hi > lo else 0,
            )
        )
    interval_sl_by_queue = {
        spec.name: [
            _figures(result, counted & (index == k) & (result.queue == i), target).service_level
            for k in range(n_intervals)
        ]
        for i, spec in enumerate(scenario.queues)
    }
    return Report(
        total=_figures(result, counted, target),
        by_queue=by_queue,
        by_skill=by_skill,
        occupancy=ratio(np.ones(groups.size, dtype=np.bool_)),
        occupancy_by_group=occupancy_by_group,
        occupancy_by_skill=occupancy_by_skill,
        intervals=intervals,
        interval_sl_by_queue=interval_sl_by_queue,
        waiting_series=waiting_series,
        sample_step=step,
        interval=interval,
        start_label=scenario.start,
        end_time=result.end_time,
        agents=int(groups.size),
        offers=result.offers,
        unanswered_offers=result.unanswered_offers,
    )


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def _sec(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}s"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _figure_rows(named: dict[str, Figures], occupancy: dict[str, float] | None) -> list[list[str]]:
    rows = []
    for name, f in named.items():
        row = [
            name,
            str(f.offered),
            str(f.answered),
            str(f.abandoned),
            _pct(f.service_level),
            _sec(f.asa),
            _pct(f.abandon_rate),
            _sec(f.aht),
        ]
        if occupancy is not None:
            row.append(_pct(occupancy.get(name, math.nan)))
        rows.append(row)
    return rows


def format_report(report: Report, *, intervals: bool = True) -> str:
    """The report as plain text tables."""
    t = report.total
    out = [
        f"agents {report.agents}, offered {t.offered}, answered {t.answered}, "
        f"abandoned {t.abandoned}, unfinished {t.unfinished}",
        f"service level {_pct(t.service_level)} "
        f"(excluding short abandons {_pct(t.service_level_excl_short_abandons)}), "
        f"ASA {_sec(t.asa)}, abandon rate {_pct(t.abandon_rate)}, "
        f"AHT {_sec(t.aht)} (talk {_sec(t.talk_time)} + wrap-up {_sec(t.wrapup_time)}), "
        f"occupancy {_pct(report.occupancy)}, longest wait {_sec(t.max_wait)}",
        f"offers {report.offers} (unanswered {report.unanswered_offers}), "
        f"simulated until {report.end_time / 3600:.2f} h",
        "",
    ]
    header = ["queue", "offered", "answered", "abandoned", "SL", "ASA", "abandon", "AHT"]
    out += _table(header, _figure_rows(report.by_queue, None))
    out.append("")
    header = ["skill", *header[1:], "occupancy"]
    out += _table(header, _figure_rows(report.by_skill, report.occupancy_by_skill))
    out.append("")
    out += _table(
        ["agent group", "occupancy"],
        [[name, _pct(value)] for name, value in report.occupancy_by_group.items()],
    )
    if intervals:
        out.append("")
        rows = [
            [
                iv.label,
                str(iv.offered),
                _pct(iv.service_level),
                _sec(iv.asa),
                _pct(iv.abandon_rate),
                f"{iv.waiting_mean:.1f}",
                str(iv.waiting_max),
            ]
            for iv in report.intervals
        ]
        out += _table(["interval", "offered", "SL", "ASA", "abandon", "waiting", "max"], rows)
    return "\n".join(out) + "\n"
