"""A picture of a simulated day: waiting calls and service level per interval.

matplotlib's object API with the Agg canvas (no pyplot global state, no
display needed); the PNG is returned as bytes so that writing it stays with
the caller.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator, PercentFormatter

from callcenter.wfm.report import Report, clock_label

__all__ = ["render_png"]


def render_png(report: Report, *, target_sl: float | None = None, title: str = "") -> bytes:
    """Two panels sharing the time axis: waiting calls (mean per sample step and
    peak per interval), then service level per interval (all queues as bars,
    each queue as a line when there are several)."""
    hours = report.end_time / 3600.0
    fig = Figure(figsize=(11, 7))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    step_h = report.sample_step / 3600.0
    series = report.waiting_series
    last = max(1, min(series.size, math.ceil(report.end_time / report.sample_step)))
    x = np.arange(last) * step_h
    top.fill_between(x, series[:last], step="post", alpha=0.35, color="tab:blue")
    top.step(x, series[:last], where="post", color="tab:blue", label="waiting calls (mean)")
    interval_h = report.interval / 3600.0
    starts = np.array([iv.start for iv in report.intervals]) / 3600.0
    peaks = [iv.waiting_max for iv in report.intervals]
    top.hlines(
        peaks,
        starts,
        starts + interval_h,
        colors="tab:red",
        linewidth=1.5,
        label="peak per interval",
    )
    top.set_ylabel("calls waiting")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(loc="upper right")

    sl = np.array([iv.service_level for iv in report.intervals], dtype=np.float64)
    bottom.bar(
        starts,
        np.nan_to_num(sl * 100.0),
        width=interval_h * 0.9,
        align="edge",
        color="tab:green",
        alpha=0.45,
        label="all queues",
    )
    if len(report.interval_sl_by_queue) > 1:
        middles = starts + interval_h / 2.0
        for name, values in report.interval_sl_by_queue.items():
            bottom.plot(middles, np.array(values) * 100.0, marker="o", markersize=3, label=name)
    if target_sl is not None:
        bottom.axhline(
            target_sl * 100.0, color="black", linestyle="--", linewidth=1, label="target"
        )
    bottom.set_ylim(0, 105)
    bottom.yaxis.set_major_formatter(PercentFormatter())
    bottom.set_ylabel("service level (by arrival interval)")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="lower left", fontsize="small", ncols=4)

    bottom.set_xlim(0, max(hours, interval_h))
    bottom.xaxis.set_major_locator(MultipleLocator(1.0 if hours <= 16 else 2.0))
    bottom.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _pos: clock_label(report.start_label, value * 3600.0))
    )
    bottom.set_xlabel("time of day")
    total = report.total
    fig.suptitle(
        title
        or (
            f"{total.offered} calls, {report.agents} agents: SL {100 * total.service_level:.1f} %, "
            f"ASA {total.asa:.1f} s, abandoned {100 * total.abandon_rate:.1f} %, "
            f"occupancy {100 * report.occupancy:.1f} %"
        )
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
