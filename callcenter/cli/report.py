"""``callcenter report``: history from PostgreSQL (docs/kpis.md, "Reports").

::

    callcenter report recompute --from 2024-05-01 --to 2024-05-07
    callcenter report daily     --from 2024-05-01 --to 2024-05-07 [--queue support] [--csv day.csv]
    callcenter report intervals --from 2024-05-01 --to 2024-05-01 [--by agent]
    callcenter report agents    --from 2024-05-01 --to 2024-05-31
    callcenter report dispositions|csat --from ... --to ... [--by agent]
    callcenter report chart --day 2024-05-01 -o day.png
    callcenter report queue-log --from 2024-05-01 --to 2024-05-01 -o queue_log

Dates are whole local days, both ends included; date-times are instants
(end exclusive). ``--tz`` names the time zone of days and labels (UTC by
default). Interval figures come from the ``interval_stats`` table: run
``recompute`` for a period after calls were written (it is idempotent).
The database is ``database.url`` (``DATABASE_URL``); thresholds (per-queue SL)
and the agent directory (team, extended) come from the site file.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg

from callcenter.callpath.site import load_site
from callcenter.clock import time_zone
from callcenter.config import load_settings
from callcenter.errors import ConfigError
from callcenter.stats.kpis import Counts, Dimension, service_level
from callcenter.stats.model import StatsConfig
from callcenter.stats.queue_log import queue_log_lines, render
from callcenter.stats.reports import (
    AGENT_COLUMNS,
    FIGURE_COLUMNS,
    ChartPoint,
    csat_by,
    day_chart,
    days_of,
    disposition_counts,
    parse_period,
    to_csv,
)
from callcenter.store.db import create_pool
from callcenter.store.reports import (
    agent_report,
    daily_report,
    fetch_contacts,
    fetch_queue_calls,
    fetch_rows,
    interval_report,
)
from callcenter.store.stats import AgentInfo, recompute_intervals

T = TypeVar("T")

TABLE_COLUMNS = (
    ("period", "period", "{}"),
    ("key", "key", "{}"),
    ("offered", "offered", "{}"),
    ("answered", "answered", "{}"),
    ("abandoned", "aband.", "{}"),
    ("sl", "SL %", "pct"),
    ("asa_s", "ASA s", "{:.1f}"),
    ("aht_s", "AHT s", "{:.0f}"),
    ("abandon_rate", "aband. %", "pct"),
    ("occupancy", "occ. %", "pct"),
    ("fcr", "FCR %", "pct"),
)
AGENT_TABLE = (
    ("agent", "agent", "{}"),
    ("answered", "answered", "{}"),
    ("aht_s", "AHT s", "{:.0f}"),
    ("avg_talk_s", "talk s", "{:.0f}"),
    ("avg_wrap_s", "wrap s", "{:.0f}"),
    ("occupancy", "occ. %", "pct"),
    ("staffed_s", "staffed h", "hours"),
    ("paused_s", "paused h", "hours"),
    ("disposition_rate", "coded %", "pct"),
    ("csat", "CSAT %", "pct"),
)
DIMENSIONS = {d.value: d for d in Dimension}


@dataclass(frozen=True, slots=True)
class Context:
    url: str
    config: StatsConfig
    agents: Mapping[str, AgentInfo]
    tz: ZoneInfo


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="history: daily and interval KPIs, agents, dispositions, CSAT, charts, queue_log",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="report_command", required=True)

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", type=Path, help="callcenter.toml")
        sub.add_argument("--tz", default="UTC", help="time zone of days and labels (IANA name)")
        sub.set_defaults(func=func)
        return sub

    def period(sub: Any) -> None:
        sub.add_argument("--from", dest="start", required=True, metavar="DATE")
        sub.add_argument("--to", dest="end", required=True, metavar="DATE")

    def filters(sub: Any, by: Sequence[str]) -> None:
        sub.add_argument("--queue", action="append", help="only this queue (repeatable)")
        sub.add_argument("--by", choices=by, default=by[0], help="one line per ...")
        sub.add_argument("--csv", type=Path, metavar="FILE", help="also write CSV ('-': stdout)")

    dims = [d.value for d in Dimension]
    sub = command("daily", "figures per day", run_daily)
    period(sub)
    filters(sub, dims)
    sub = command("intervals", "figures per 15-minute interval", run_intervals)
    period(sub)
    filters(sub, dims)
    sub = command("agents", "agent performance over the period", run_agents)
    period(sub)
    sub.add_argument("--agent", action="append", help="only this agent (repeatable)")
    sub.add_argument("--queue", action="append", help="dispositions/CSAT of this queue only")
    sub.add_argument("--csv", type=Path, metavar="FILE")
    sub = command("dispositions", "disposition codes per queue or agent", run_dispositions)
    period(sub)
    filters(sub, ["queue", "agent"])
    sub = command("csat", "post-call survey results per queue or agent", run_csat)
    period(sub)
    filters(sub, ["queue", "agent"])
    sub = command("chart", "PNG of one day: calls and SL per interval", run_chart)
    sub.add_argument("--day", required=True, metavar="DATE")
    sub.add_argument("--queue", action="append", help="only this queue (repeatable)")
    sub.add_argument("-o", "--output", type=Path, required=True, metavar="PNG")
    sub = command("recompute", "recompute the 15-minute table for a period", run_recompute)
    period(sub)
    sub = command("queue-log", "Asterisk-format queue_log of a period", run_queue_log)
    period(sub)
    sub.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    sub.add_argument(
        "--transfer-event",
        choices=("BLINDTRANSFER", "TRANSFER"),
        default="BLINDTRANSFER",
        help="TRANSFER for tools that predate Asterisk 12",
    )


# -- set-up -------------------------------------------------------------------


def _context(args: argparse.Namespace) -> Context:
    settings = load_settings(args.config)
    if settings.database.url is None:
        raise ConfigError("database.url: not set (set DATABASE_URL)")
    site = load_site(settings.site.file)
    config = StatsConfig(
        queue_sl_thresholds={name: q.sl_threshold for name, q in site.queues.items()}
    )
    agents = {a: AgentInfo(s.team, s.extended) for a, s in site.agents.items()}
    tz = time_zone(args.tz, "--tz")
    return Context(settings.database.url.get_secret_value(), config, agents, tz)


def _with_pool(ctx: Context, work: Callable[[asyncpg.Pool], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        pool = await create_pool(ctx.url, min_size=1, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def _period(args: argparse.Namespace, ctx: Context) -> tuple[float, float]:
    return parse_period(args.start, args.end, ctx.tz, ctx.config.interval)


# -- output -------------------------------------------------------------------


def _format(value: object, how: str) -> str:
    if value is None:
        return "-"
    if how == "pct":
        assert isinstance(value, int | float)
        return f"{100 * value:.1f}"
    if how == "hours":
        assert isinstance(value, int | float)
        return f"{value / 3600:.2f}"
    return how.format(value)


def table(columns: Sequence[tuple[str, str, str]], rows: Sequence[Mapping[str, object]]) -> str:
    """A fixed-width text table ("-" for no value)."""
    cells = [[title for _, title, _ in columns]]
    cells += [[_format(row.get(name), how) for name, _, how in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    out = []
    for line in cells:
        out.append(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(out) + "\n"


def _emit(
    args: argparse.Namespace,
    view: Sequence[tuple[str, str, str]],
    columns: Sequence[str],
    rows: Sequence[Mapping[str, object]],
) -> int:
    csv_path: Path | None = getattr(args, "csv", None)
    if csv_path is not None and str(csv_path) == "-":
        sys.stdout.write(to_csv(columns, rows))
        return 0
    sys.stdout.write(table(view, rows) if rows else "no data for this period\n")
    if csv_path is not None:
        try:
            csv_path.write_text(to_csv(columns, rows), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--csv: cannot write {csv_path}: {exc}") from exc
        print(f"wrote {len(rows)} rows to {csv_path}", file=sys.stderr)
    return 0


# -- commands -----------------------------------------------------------------


def run_daily(args: argparse.Namespace) -> int:
    ctx = _context(args)
    start, end = _period(args, ctx)
    dimension = DIMENSIONS[args.by]
    lines = _with_pool(
        ctx,
        lambda pool: daily_report(
            pool,
            start,
            end,
            ctx.config,
            dimension=dimension,
            tz=ctx.tz,
            keys=args.queue if dimension is Dimension.QUEUE else None,
            agents=ctx.agents,
        ),
    )
    return _emit(args, TABLE_COLUMNS, FIGURE_COLUMNS, [x.figures() for x in lines])


def run_intervals(args: argparse.Namespace) -> int:
    ctx = _context(args)
    start, end = _period(args, ctx)
    dimension = DIMENSIONS[args.by]
    lines = _with_pool(
        ctx,
        lambda pool: interval_report(
            pool,
            start,
            end,
            dimension=dimension,
            tz=ctx.tz,
            keys=args.queue if dimension is Dimension.QUEUE else None,
        ),
    )
    return _emit(args, TABLE_COLUMNS, FIGURE_COLUMNS, [x.figures() for x in lines])


def run_agents(args: argparse.Namespace) -> int:
    ctx = _context(args)
    start, end = _period(args, ctx)
    lines = _with_pool(
        ctx,
        lambda pool: agent_report(pool, start, end, ctx.config, keys=args.agent, queues=args.queue),
    )
    return _emit(args, AGENT_TABLE, AGENT_COLUMNS, [x.figures() for x in lines])


def run_dispositions(args: argparse.Namespace) -> int:
    ctx = _context(args)
    start, end = _period(args, ctx)
    contacts = _with_pool(
        ctx, lambda pool: fetch_contacts(pool, start, end, ctx.config, ctx.agents)
    )
    facts = [f for f in contacts.facts if not args.queue or f.queue in args.queue]
    rows = [
        {"key": x.key, "code": x.code, "count": x.count, "share": x.share}
        for x in disposition_counts(facts, DIMENSIONS[args.by])
    ]
    view = (
        ("key", args.by, "{}"),
        ("code", "code", "{}"),
        ("count", "calls", "{}"),
        ("share", "share %", "pct"),
    )
    return _emit(args, view, ("key", "code", "count", "share"), rows)


def run_csat(args: argparse.Namespace) -> int:
    ctx = _context(args)
    start, end = _period(args, ctx)
    contacts = _with_pool(
        ctx, lambda pool: fetch_contacts(pool, start, end, ctx.config, ctx.agents)
    )
    facts = [f for f in contacts.facts if not args.queue or f.queue in args.queue]
    rows = [
        {
            "key": key,
            "surveyed": c.surveyed,
            "responses": c.responses,
            "response_rate": c.response_rate,
            "csat": c.csat,
            "avg_score": c.average,
        }
        for key, c in csat_by(facts, DIMENSIONS[args.by]).items()
    ]
    view = (
        ("key", args.by, "{}"),
        ("surveyed", "surveyed", "{}"),
        ("responses", "responses", "{}"),
        ("response_rate", "resp. %", "pct"),
        ("csat", "CSAT %", "pct"),
        ("avg_score", "avg /5", "{:.2f}"),
    )
    columns = ("key", "surveyed", "responses", "response_rate", "csat", "avg_score")
    return _emit(args, view, columns, rows)


def run_recompute(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    ctx = _context(args)
    start, end = _period(args, ctx)
    days = days_of(start, end, ctx.tz)

    async def work(pool: asyncpg.Pool) -> int:
        rows = 0
        with tqdm(days, desc="recompute", unit="day", file=sys.stderr) as bar:
            for day, lo, hi in bar:
                bar.set_postfix_str(day.isoformat())
                rows += await recompute_intervals(pool, lo, hi, ctx.config, agents=ctx.agents)
        return rows

    rows = _with_pool(ctx, work)
    print(f"recomputed {len(days)} days: {rows} interval rows")
    return 0


def run_queue_log(args: argparse.Namespace) -> int:
    from callcenter.stats.queue_log import QueueLogOptions

    ctx = _context(args)
    start, end = _period(args, ctx)
    calls = _with_pool(ctx, lambda pool: fetch_queue_calls(pool, start, end))
    lines = queue_log_lines(calls, QueueLogOptions(transfer_event=args.transfer_event))
    try:
        args.output.write_text(render(lines), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"-o: cannot write {args.output}: {exc}") from exc
    print(f"wrote {len(lines)} queue_log lines ({len(calls)} calls) to {args.output}")
    return 0


def run_chart(args: argparse.Namespace) -> int:
    ctx = _context(args)
    start, end = parse_period(args.day, args.day, ctx.tz, ctx.config.interval)
    rows = _with_pool(ctx, lambda pool: fetch_rows(pool, start, end, [Dimension.QUEUE]))
    points = day_chart(rows, start, end, tz=ctx.tz, interval=ctx.config.interval, queues=args.queue)
    title = f"{args.day} - " + (", ".join(args.queue) if args.queue else "all queues")
    draw_day_chart(points, title, args.output)
    print(f"wrote {args.output}")
    return 0


def draw_day_chart(points: Sequence[ChartPoint], title: str, output: Path) -> None:
    """Bars: answered and abandoned calls per interval (stacked, the rest of the
    offered calls on top); line: SL per interval (right axis, %)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(points)))
    answered = [p.answered for p in points]
    abandoned = [p.abandoned for p in points]
    other = [p.offered - p.answered - p.abandoned for p in points]
    figure, volume = plt.subplots(figsize=(14, 6), dpi=100)
    try:
        volume.bar(x, answered, color="#4c78a8", label="answered")
        volume.bar(x, abandoned, bottom=answered, color="#e45756", label="abandoned")
        base = [a + b for a, b in zip(answered, abandoned, strict=True)]
        volume.bar(x, other, bottom=base, color="#bab0ac", label="callback / short / open")
        volume.set_ylabel("calls offered per 15 min")
        volume.set_xlabel("interval start")
        ticks = [i for i, p in enumerate(points) if p.label.endswith(":00")]
        volume.set_xticks(ticks, [points[i].label for i in ticks], rotation=45)
        volume.set_ylim(0, max([p.offered for p in points] + [1]) * 1.15)
        sl = volume.twinx()
        sl.plot(
            x,
            [math.nan if p.sl is None else 100 * p.sl for p in points],
            color="#54a24b",
            marker="o",
            markersize=3,
            linewidth=2,
            label="service level",
        )
        sl.set_ylim(0, 105)
        sl.set_ylabel("service level %")
        total = sum(p.offered for p in points)
        handled = sum(p.answered for p in points)
        in_sl = sum(p.answered_in_sl for p in points)
        ratio = service_level(Counts(answered=handled, answered_in_sl=in_sl))
        day_sl = "-" if ratio is None else f"{100 * ratio:.1f} %"
        volume.set_title(f"{title}: {total} calls offered, {handled} answered, SL {day_sl}")
        bars, labels = volume.get_legend_handles_labels()
        line, line_label = sl.get_legend_handles_labels()
        volume.legend(bars + line, labels + line_label, loc="upper left")
        volume.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        try:
            figure.savefig(output, format="png")
        except OSError as exc:
            raise ConfigError(f"-o: cannot write {output}: {exc}") from exc
    finally:
        plt.close(figure)
