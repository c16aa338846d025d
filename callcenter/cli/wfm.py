"""``callcenter wfm``: workforce management calculators.

``callcenter wfm staffing forecast.csv --target-sl 0.8 --target-time 20``
prints the agents needed per interval (Erlang C, or Erlang A with
``--patience``). The forecast CSV has columns ``start,calls,aht``; a single
interval can be given with ``--calls``/``--aht`` instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callcenter.errors import ConfigError
from callcenter.wfm.staffing import (
    ForecastInterval,
    StaffingTargets,
    format_table,
    infer_interval_seconds,
    parse_forecast,
    staff_day,
)


def _fraction(text: str) -> float:
    """0.8 or 80 or 80% -> 0.8."""
    value = float(text.rstrip("%"))
    return value / 100.0 if value > 1.0 or text.endswith("%") else value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("wfm", help="workforce management (Erlang C / Erlang A)")
    commands = parser.add_subparsers(dest="wfm_command", required=True)
    staffing = commands.add_parser(
        "staffing",
        help="required agents per interval of a forecast",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    staffing.add_argument(
        "forecast", nargs="?", type=Path, help="CSV: start,calls,aht ('-' = stdin)"
    )
    staffing.add_argument("--calls", type=float, help="calls in a single interval (no CSV)")
    staffing.add_argument("--aht", type=float, help="average handle time, seconds (no CSV)")
    staffing.add_argument(
        "--interval",
        type=float,
        metavar="MINUTES",
        help="interval length (default: from the first two HH:MM starts, else 30)",
    )
    staffing.add_argument(
        "--target-sl", type=_fraction, default=0.8, help="service level target (0.8, 80 or 80%%)"
    )
    staffing.add_argument(
        "--target-time", type=float, default=20.0, help="service level threshold, seconds"
    )
    staffing.add_argument("--target-asa", type=float, help="maximum ASA, seconds")
    staffing.add_argument("--no-sl", action="store_true", help="ignore the service level target")
    staffing.add_argument("--max-occupancy", type=_fraction, help="maximum occupancy")
    staffing.add_argument(
        "--patience", type=float, help="mean caller patience, seconds: use Erlang A"
    )
    staffing.add_argument(
        "--max-abandon", type=_fraction, help="maximum abandon rate (needs --patience)"
    )
    staffing.add_argument(
        "--shrinkage", type=_fraction, default=0.0, help="share of paid time off the phones"
    )
    staffing.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    staffing.set_defaults(func=run_staffing)


def run_staffing(args: argparse.Namespace) -> int:
    rows: list[ForecastInterval]
    if args.forecast is not None:
        if args.calls is not None or args.aht is not None:
            raise ConfigError("give either a forecast file or --calls/--aht, not both")
        if str(args.forecast) == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            try:
                text = args.forecast.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read forecast {args.forecast}: {exc}") from exc
            source = str(args.forecast)
        rows = parse_forecast(text, source)
    else:
        if args.calls is None or args.aht is None:
            raise ConfigError("give a forecast CSV, or both --calls and --aht")
        rows = [ForecastInterval(start="-", calls=args.calls, aht=args.aht)]
    if args.max_abandon is not None and args.patience is None:
        raise ConfigError("--max-abandon needs --patience (Erlang A)")
    target_sl = None if args.no_sl else args.target_sl
    if target_sl is None and args.target_asa is None and args.max_abandon is None:
        raise ConfigError("no target left: give --target-asa or --max-abandon with --no-sl")
    interval = args.interval * 60.0 if args.interval is not None else infer_interval_seconds(rows)
    targets = StaffingTargets(
        target_sl=target_sl,
        target_time=args.target_time,
        target_asa=args.target_asa,
        max_occupancy=args.max_occupancy,
        max_abandon=args.max_abandon,
        patience=args.patience,
        shrinkage=args.shrinkage,
    )
    table = staff_day(rows, interval, targets)
    sys.stdout.write(format_table(table, interval, csv_out=args.csv))
    return 0
