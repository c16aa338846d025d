"""A day's staffing from an interval forecast (pure: text in, rows out).

The forecast is CSV with a header naming at least ``start``, ``calls`` and
``aht`` (seconds)::

    start,calls,aht
    08:00,120,240
    08:30,180,250

``start`` is a label (``HH:MM`` or anything); with ``HH:MM`` labels the
interval length is taken from the first two rows unless given.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from callcenter.errors import ConfigError
from callcenter.wfm.erlang import erlang_a_required_agents, erlang_c_required_agents

__all__ = [
    "ForecastInterval",
    "StaffingRow",
    "StaffingTargets",
    "format_table",
    "infer_interval_seconds",
    "parse_forecast",
    "staff_day",
]


@dataclass(frozen=True, slots=True)
class ForecastInterval:
    start: str
    calls: float
    aht: float  # seconds


@dataclass(frozen=True, slots=True)
class StaffingTargets:
    target_sl: float | None = 0.8
    target_time: float = 20.0
    target_asa: float | None = None
    max_occupancy: float | None = None
    max_abandon: float | None = None  # Erlang A only
    patience: float | None = None  # mean patience (s): Erlang A when set
    shrinkage: float = 0.0  # share of paid time not on the phones


@dataclass(frozen=True, slots=True)
class StaffingRow:
    start: str
    calls: float
    aht: float
    traffic: float  # Erlangs
    agents: int  # on the phones
    scheduled: int  # agents / (1 - shrinkage), rounded up
    service_level: float
    asa: float
    occupancy: float
    p_abandon: float | None  # Erlang A only


def _minutes(label: str) -> int | None:
    hours, sep, minutes = label.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes[:2].isdigit():
        return None
    return int(hours) * 60 + int(minutes[:2])


def parse_forecast(text: str, source: str = "forecast") -> list[ForecastInterval]:
    """Rows of a forecast CSV; raises ConfigError naming the line on bad input."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise ConfigError(f"{source}: empty forecast")
    fields = {name.strip().lower(): name for name in reader.fieldnames}
    missing = [name for name in ("start", "calls", "aht") if name not in fields]
    if missing:
        raise ConfigError(
            f"{source}: missing column(s) {', '.join(missing)} (need start,calls,aht)"
        )
    rows: list[ForecastInterval] = []
    for line, raw in enumerate(reader, start=2):
        try:
            calls = float(raw[fields["calls"]])
            aht = float(raw[fields["aht"]])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}:{line}: calls and aht must be numbers") from exc
        if calls < 0 or not math.isfinite(calls):
            raise ConfigError(f"{source}:{line}: calls must be >= 0")
        if aht <= 0 or not math.isfinite(aht):
            raise ConfigError(f"{source}:{line}: aht must be > 0 seconds")
        rows.append(ForecastInterval(start=raw[fields["start"]].strip(), calls=calls, aht=aht))
    if not rows:
        raise ConfigError(f"{source}: no intervals")
    return rows


def infer_interval_seconds(rows: Sequence[ForecastInterval], default: float = 1800.0) -> float:
    """Interval length from the first two ``HH:MM`` starts, else ``default``."""
    if len(rows) >= 2:
        first, second = _minutes(rows[0].start), _minutes(rows[1].start)
        if first is not None and second is not None and second > first:
            return float((second - first) * 60)
    return default


def staff_day(
    rows: Sequence[ForecastInterval], interval_seconds: float, targets: StaffingTargets
) -> list[StaffingRow]:
    """Required agents per interval (Erlang C, or Erlang A with a patience)."""
    if interval_seconds <= 0:
        raise ConfigError("interval length must be > 0")
    if not 0.0 <= targets.shrinkage < 1.0:
        raise ConfigError(f"shrinkage must be in [0, 1), got {targets.shrinkage!r}")
    out: list[StaffingRow] = []
    for row in rows:
        rate = row.calls / interval_seconds
        p_abandon: float | None
        if targets.patience is None:
            c = erlang_c_required_agents(
                rate,
                row.aht,
                target_sl=targets.target_sl,
                target_time=targets.target_time,
                target_asa=targets.target_asa,
                max_occupancy=targets.max_occupancy,
            )
            agents, sl, asa, occ, p_abandon = (
                c.agents,
                c.service_level,
                c.asa,
                c.occupancy,
                None,
            )
        else:
            a = erlang_a_required_agents(
                rate,
                row.aht,
                targets.patience,
                target_sl=targets.target_sl,
                target_time=targets.target_time,
                target_asa=targets.target_asa,
                max_abandon=targets.max_abandon,
                max_occupancy=targets.max_occupancy,
            )
            agents, sl, asa, occ, p_abandon = (
                a.agents,
                a.service_level,
                a.asa,
                a.occupancy,
                a.p_abandon,
            )
        if row.calls == 0:
            agents, sl, asa, occ = 0, 1.0, 0.0, 0.0
            p_abandon = None if p_abandon is None else 0.0
        scheduled = math.ceil(agents / (1.0 - targets.shrinkage) - 1e-9)
        out.append(
            StaffingRow(
                start=row.start,
                calls=row.calls,
                aht=row.aht,
                traffic=rate * row.aht,
                agents=agents,
                scheduled=scheduled,
                service_level=sl,
                asa=asa,
                occupancy=occ,
                p_abandon=p_abandon,
            )
        )
    return out


def _num(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def format_table(rows: Sequence[StaffingRow], interval_seconds: float, *, csv_out: bool) -> str:
    """The staffing table as aligned text (with a totals line) or as CSV."""
    erlang_a = any(row.p_abandon is not None for row in rows)
    header = ["start", "calls", "aht_s", "erlangs", "agents", "scheduled", "sl_pct", "asa_s"]
    header += ["occupancy_pct"] + (["abandon_pct"] if erlang_a else [])
    body: list[list[str]] = []
    for row in rows:
        cells = [
            row.start,
            _num(row.calls),
            _num(row.aht),
            f"{row.traffic:.2f}",
            str(row.agents),
            str(row.scheduled),
            f"{100 * row.service_level:.1f}",
            f"{row.asa:.1f}",
            f"{100 * row.occupancy:.1f}",
        ]
        if erlang_a:
            cells.append(f"{100 * (row.p_abandon or 0.0):.2f}")
        body.append(cells)
    if csv_out:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
        return buffer.getvalue()
    total_calls = sum(row.calls for row in rows)
    hours = interval_seconds / 3600.0
    agent_hours = sum(row.agents for row in rows) * hours
    paid_hours = sum(row.scheduled for row in rows) * hours
    if total_calls > 0:
        sl = sum(row.service_level * row.calls for row in rows) / total_calls
        asa = sum(row.asa * row.calls for row in rows) / total_calls
    else:
        sl, asa = 1.0, 0.0
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append(
        f"total calls {_num(total_calls)}, agent-hours {agent_hours:.1f} "
        f"(scheduled {paid_hours:.1f}), call-weighted SL {100 * sl:.1f}%, ASA {asa:.1f}s"
    )
    return "\n".join(lines) + "\n"
