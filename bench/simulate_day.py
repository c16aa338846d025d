"""One business day of a 200-agent centre through the simulator and the ACD core.

Four queues (sales, support, billing, tech) with a double-peaked day profile
(08:00-18:00, half-hour intervals, ~20 000 calls), lognormal and exponential
handle times, exponential patience, wrap-up, ring time and a few unanswered
offers; six agent groups (single-skill teams, blended and universal agents)
on staggered shifts with a lunch break. Times the simulation (not the report).

Last line: RESULT sim_day_seconds=<s>
"""

from __future__ import annotations

import argparse
import time

from callcenter.wfm.acd_port import AcdDispatcher
from callcenter.wfm.dispatch import Dispatcher, FifoDispatcher
from callcenter.wfm.distributions import Constant, Exponential, LogNormal, Uniform
from callcenter.wfm.report import build_report, format_report
from callcenter.wfm.scenario import AgentGroup, QueueSpec, Scenario
from callcenter.wfm.simulator import simulate

# share of the day's calls per half hour, 08:00-18:00 (sums to 1)
_SHAPE = [2, 3, 5, 6, 7, 7, 6, 6, 5, 4, 5, 6, 7, 7, 6, 5, 4, 4, 3, 2]
_SHAPE_TOTAL = sum(_SHAPE)


def _profile(calls: float) -> tuple[float, ...]:
    return tuple(calls * share / _SHAPE_TOTAL for share in _SHAPE)


def build_scenario(seed: int, scale: float = 1.0) -> Scenario:
    ring = Uniform(2.0, 6.0)
    queues = (
        QueueSpec(
            "sales",
            "sales",
            _profile(7000 * scale),
            LogNormal(210.0, 100.0),
            Exponential(180.0),
            Constant(15.0),
        ),
        QueueSpec(
            "support",
            "support",
            _profile(7000 * scale),
            Exponential(250.0),
            Exponential(240.0),
            Uniform(10.0, 30.0),
        ),
        QueueSpec(
            "billing",
            "billing",
            _profile(3500 * scale),
            LogNormal(170.0, 70.0),
            Exponential(150.0),
            Constant(10.0),
        ),
        QueueSpec(
            "tech",
            "tech",
            _profile(2500 * scale),
            LogNormal(360.0, 200.0),
            Exponential(300.0),
            Constant(30.0),
            target_time=60.0,
        ),
    )

    def group(
        name: str, count: int, skills: dict[str, int], shifts: list[tuple[str, str]]
    ) -> AgentGroup:
        def seconds(clock: str) -> float:
            hours, minutes = clock.split(":")
            return (int(hours) - 8) * 3600.0 + int(minutes) * 60.0

        return AgentGroup(
            name=name,
            count=count,
            skills=skills,
            shifts=tuple((seconds(a), seconds(b)) for a, b in shifts),
            answer_delay=ring,
            no_answer=0.01,
            ring_timeout=15.0,
        )

    early = [("08:00", "12:00"), ("12:30", "16:30")]
    late = [("10:00", "14:00"), ("14:30", "18:00")]
    agents = (
        group("sales early", 30, {"sales": 5}, early),
        group("sales late", 30, {"sales": 5}, late),
        group("support early", 30, {"support": 5}, early),
        group("support late", 35, {"support": 5}, late),
        group("billing", 25, {"billing": 5, "sales": 1}, [("08:30", "12:30"), ("13:00", "17:30")]),
        group("tech", 25, {"tech": 5, "support": 2}, [("09:00", "13:00"), ("13:30", "18:00")]),
        group(
            "universal",
            25,
            {"sales": 3, "support": 3, "billing": 3, "tech": 3},
            [("08:00", "13:00"), ("13:30", "18:00")],
        ),
    )
    return Scenario(queues=queues, agents=agents, interval=1800.0, seed=seed, start="08:00")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the calls")
    parser.add_argument("--dispatcher", choices=("acd", "fifo"), default="acd")
    args = parser.parse_args()
    scenario = build_scenario(args.seed, args.scale)
    dispatcher: Dispatcher = AcdDispatcher() if args.dispatcher == "acd" else FifoDispatcher()
    name = args.dispatcher
    started = time.perf_counter()
    result = simulate(scenario, dispatcher)
    elapsed = time.perf_counter() - started
    report = build_report(result)
    print(f"dispatcher {name}, {sum(g.count for g in scenario.agents)} agents, seed {args.seed}")
    print(format_report(report, intervals=False), end="")
    per_call = elapsed * 1e6 / max(1, result.arrival.size)
    print(
        f"{result.arrival.size} calls, {result.events} ACD events, "
        f"{result.events / elapsed:,.0f} events/s, {per_call:.0f} us/call"
    )
    print(f"RESULT sim_day_seconds={elapsed:.3f}")


if __name__ == "__main__":
    main()
