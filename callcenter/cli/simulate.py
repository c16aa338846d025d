"""``callcenter simulate``: a simulated day through the ACD core.

From a scenario file (TOML or YAML, see callcenter/wfm/scenario.py and
docs/wfm.md)::

    callcenter simulate day.toml --plot day.png

or, for one queue and one agent group, from flags::

    callcenter simulate --agents 50 --calls-per-hour 900 --aht 180 --patience 120 --hours 8

Prints service level, ASA, abandon rate, AHT and occupancy, per queue, per
skill and per interval.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from callcenter.errors import ConfigError
from callcenter.wfm.acd_port import AcdDispatcher
from callcenter.wfm.dispatch import Dispatcher, FifoDispatcher
from callcenter.wfm.distributions import Constant, Distribution, parse_distribution
from callcenter.wfm.report import build_report, format_report
from callcenter.wfm.scenario import AgentGroup, QueueSpec, Scenario, scenario_from_text
from callcenter.wfm.simulator import simulate

DISPATCHERS: dict[str, Callable[[], Dispatcher]] = {"acd": AcdDispatcher, "fifo": FifoDispatcher}
"""``acd``: the real ACD core (the default); ``fifo``: the reference
(longest-idle agent, oldest call first, skills as plain sets), the way
Asterisk's app_queue with one queue per skill behaves."""


def _distribution(text: str) -> Distribution:
    try:
        number = float(text)
    except ValueError:
        return parse_distribution(text, "distribution")
    return parse_distribution(number, "distribution")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a day of calls through the ACD",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", nargs="?", type=Path, help="scenario file (.toml, .yaml)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the scenario)")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw waiting calls and SL")
    parser.add_argument("--target-sl", type=float, help="SL target line on the plot (0.8)")
    parser.add_argument(
        "--dispatcher",
        choices=("acd", "fifo"),
        help="routing: the ACD core (default) or the FIFO reference (app_queue-like)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--no-intervals", action="store_true", help="leave out the interval table")
    flags = parser.add_argument_group("single-queue scenario from flags (no scenario file)")
    flags.add_argument("--agents", type=int, help="agents logged in for the whole day")
    flags.add_argument("--calls-per-hour", type=float, help="constant arrival rate")
    flags.add_argument("--hours", type=float, default=8.0, help="length of the day (8)")
    flags.add_argument("--aht", type=float, help="mean handle time, seconds (exponential)")
    flags.add_argument(
        "--handle", type=_distribution, help="handle time distribution, e.g. lognormal:180:90"
    )
    flags.add_argument(
        "--patience", type=_distribution, help="mean patience (exp) or a distribution"
    )
    flags.add_argument("--wrapup", type=_distribution, default=Constant(0.0), help="wrap-up time")
    flags.add_argument(
        "--answer-delay", type=_distribution, default=Constant(0.0), help="ring time"
    )
    flags.add_argument("--target-time", type=float, default=20.0, help="SL threshold, seconds (20)")
    flags.add_argument("--warmup", type=float, default=0.0, help="seconds left out of the figures")
    parser.set_defaults(func=run)


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    if args.scenario is not None:
        if args.agents is not None or args.calls_per_hour is not None:
            raise ConfigError("give either a scenario file or --agents/--calls-per-hour")
        suffix = args.scenario.suffix.lower().lstrip(".")
        fmt = "toml" if suffix == "toml" else "yaml" if suffix in ("yaml", "yml") else None
        if fmt is None:
            raise ConfigError(f"{args.scenario}: scenario files end in .toml, .yaml or .yml")
        try:
            text = args.scenario.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read scenario {args.scenario}: {exc}") from exc
        scenario = scenario_from_text(text, fmt, str(args.scenario))
    else:
        if args.agents is None or args.calls_per_hour is None:
            raise ConfigError("give a scenario file, or --agents and --calls-per-hour")
        if (args.aht is None) == (args.handle is None):
            raise ConfigError("give exactly one of --aht (exponential) and --handle")
        handle = args.handle if args.handle is not None else _distribution(f"exp:{args.aht}")
        patience = args.patience
        if isinstance(patience, Constant):  # a bare number is a mean patience
            patience = _distribution(f"exp:{patience.value}")
        if args.hours <= 0:
            raise ConfigError("--hours must be > 0")
        intervals = max(1, round(args.hours * 2))
        scenario = Scenario(
            queues=(
                QueueSpec(
                    name="calls",
                    skill="calls",
                    calls=(args.calls_per_hour / 2.0,) * intervals,
                    handle=handle,
                    patience=patience,
                    wrapup=args.wrapup,
                    target_time=args.target_time,
                ),
            ),
            agents=(
                AgentGroup(
                    name="agents",
                    count=args.agents,
                    skills={"calls": 1},
                    shifts=(),
                    answer_delay=args.answer_delay,
                ),
            ),
            interval=args.hours * 3600.0 / intervals,
            seed=args.seed or 0,
            warmup=args.warmup,
        )
    if args.seed is not None:
        scenario = dataclasses.replace(scenario, seed=args.seed)
    return scenario


def run(args: argparse.Namespace) -> int:
    scenario = scenario_from_args(args)
    name = args.dispatcher or "acd"
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=100, file=sys.stderr, unit="%", desc="simulating", leave=False)

    def progress(fraction: float) -> None:
        if bar is not None:
            bar.update(round(fraction * 100) - bar.n)

    try:
        result = simulate(scenario, DISPATCHERS[name](), on_progress=progress)
    finally:
        if bar is not None:
            bar.close()
    report = build_report(result)
    sys.stdout.write(f"dispatcher {name}, seed {scenario.seed}\n")
    sys.stdout.write(format_report(report, intervals=not args.no_intervals))
    if args.plot is not None:
        from callcenter.wfm.plot import render_png

        png = render_png(report, target_sl=args.target_sl)
        try:
            args.plot.write_bytes(png)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.plot}: {exc}") from exc
        sys.stdout.write(f"plot written to {args.plot}\n")
    return 0
