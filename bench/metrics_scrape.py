"""/metrics render latency and 15-minute interval aggregation, in-process.

* **scrape**: the real :class:`RealtimeStats` fed with a busy centre —
  1,000 agents (3 skills each, spread over every state) and 50 queues, with
  an hour of traffic in the sliding windows (``--calls`` calls offered over
  the last hour: answered, abandoned, callbacks, some still waiting) — then
  :meth:`MetricsExporter.render` (what ``GET /metrics`` answers), timed
  ``--scrapes`` times; the median is reported (p95 printed too).
* **aggregate**: :func:`callcenter.stats.aggregate_intervals` over
  ``--records`` synthetic interactions spread over 7 days (70 % answered,
  transfers, holds, wrap-ups, 15 % abandoned, some short, 5 % callbacks, 50
  queues, 1,000 agents in 20 teams, 5 % extended); the records are built
  before the clock starts. The RESULT is that figure, scaled to 1,000,000
  if ``--records`` is another number.
* **agent time** (printed, not in the goal): the same function over the
  agents' state spans alone (1,000 agents, 8 h a day for 7 days).

    .venv/bin/python bench/metrics_scrape.py [--agents 1000 --queues 50 --records 1000000]

Goals (issue 7): scrape <= 50 ms, aggregate <= 10 s.
Last line: RESULT scrape_ms=<median> aggregate_1m_s=<seconds>
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from callcenter.adapters.metrics import DaemonHealth, MetricsExporter
from callcenter.clock import ManualClock
from callcenter.stats import (
    AgentSpan,
    InteractionRecord,
    Outcome,
    RealtimeStats,
    StatsConfig,
    aggregate_intervals,
)
from callcenter.stats.events import (
    Abandoned,
    AgentStateChanged,
    Answered,
    CallbackRequested,
    Ended,
    Offered,
    WrapUpEnded,
)

STATES = ("ready", "on_call", "wrap_up", "paused", "reserved")
DAY = 86_400.0


def busy_centre(agents: int, queues: int, calls: int, seed: int) -> RealtimeStats:
    rng = random.Random(seed)
    clock = ManualClock(start=0.0)
    names = [f"q{i:02d}" for i in range(queues)]
    config = StatsConfig(queue_sl_thresholds={q: rng.choice((20.0, 30.0, 60.0)) for q in names})
    stats = RealtimeStats(config, clock)
    skills = [f"s{i:02d}" for i in range(queues)]
    for name, skill in zip(names, skills, strict=True):
        stats.declare_queue(name, [skill])
    for a in range(agents):
        mine = tuple(rng.sample(skills, 3))
        stats.apply(AgentStateChanged(0.0, f"a{a:04d}", rng.choice(STATES), mine, f"t{a % 20}"))
    # An hour of calls, in time order, so every sliding window holds traffic.
    hour = 3600.0
    events: list[tuple[float, int, object]] = []
    for n in range(calls):
        q = rng.randrange(queues)
        iid = f"c{n}"
        at = hour * n / calls
        events.append((at, 0, Offered(at, iid, names[q], skills[q], customer_id=f"cu{n % 5000}")))
        roll = rng.random()
        wait = rng.expovariate(1 / 25.0)
        if roll < 0.75:
            agent = f"a{rng.randrange(agents):04d}"
            talk = rng.uniform(60, 400)
            events.append((at + wait, 1, Answered(at + wait, iid, agent)))
            events.append((at + wait + talk, 2, Ended(at + wait + talk, iid, 5.0)))
            events.append((at + wait + talk + 10, 3, WrapUpEnded(at + wait + talk + 10, iid)))
        elif roll < 0.92:
            events.append((at + wait, 1, Abandoned(at + wait, iid)))
        elif roll < 0.96:
            events.append((at + wait, 1, CallbackRequested(at + wait, iid)))
        # else: still waiting at the end
    events.sort(key=lambda e: (e[0], e[1]))
    for at, _order, event in events:
        if at > hour:
            break
        clock.advance(max(0.0, at - clock.now()))
        stats.apply(event)  # type: ignore[arg-type]
    clock.advance(max(0.0, hour - clock.now()))
    return stats


def time_scrapes(stats: RealtimeStats, scrapes: int) -> tuple[float, float, int]:
    health = DaemonHealth(True, 0.01, 12, 0)
    exporter = MetricsExporter(stats, lambda: health)
    body = exporter.render()  # warm-up
    times: list[float] = []
    for _ in range(scrapes):
        t0 = time.perf_counter()
        exporter.render()
        times.append(time.perf_counter() - t0)
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    return statistics.median(times) * 1000, p95 * 1000, len(body)


def synthetic_day(
    records: int, agents: int, queues: int, seed: int
) -> tuple[list[InteractionRecord], list[AgentSpan], float, float]:
    rng = random.Random(seed)
    start = 1_700_006_400.0  # a midnight (UTC)
    days = 7
    names = [f"q{i:02d}" for i in range(queues)]
    out: list[InteractionRecord] = []
    for n in range(records):
        offered = start + rng.random() * days * DAY
        queue = names[n % queues]
        roll = rng.random()
        wait = rng.expovariate(1 / 25.0)
        if roll < 0.75:
            agent = rng.randrange(agents)
            talk = rng.uniform(30, 600)
            hold = rng.uniform(0, 30) if roll < 0.2 else 0.0
            ended = offered + wait + talk
            out.append(
                InteractionRecord(
                    f"i{n}",
                    queue,
                    offered,
                    Outcome.ANSWERED,
                    answered_at=offered + wait,
                    ended_at=ended,
                    wrap_ended_at=ended + rng.uniform(0, 60),
                    hold_seconds=hold,
                    skill=f"s{n % queues:02d}",
                    agent_id=f"a{agent:04d}",
                    team=f"t{agent % 20}",
                    extended=agent % 20 == 0,
                    customer_id=f"cu{rng.randrange(200_000)}",
                    transferred=roll < 0.03,
                )
            )
        elif roll < 0.9:
            out.append(
                InteractionRecord(
                    f"i{n}", queue, offered, Outcome.ABANDONED, left_at=offered + wait * 2
                )
            )
        elif roll < 0.95:
            out.append(
                InteractionRecord(f"i{n}", queue, offered, Outcome.CALLBACK, left_at=offered + wait)
            )
        else:
            out.append(InteractionRecord(f"i{n}", queue, offered, Outcome.OPEN))
    spans: list[AgentSpan] = []
    for a in range(agents):
        for day in range(days):
            t = start + day * DAY + 8 * 3600
            end = t + 8 * 3600
            while t < end:
                length = rng.uniform(60, 900)
                spans.append(
                    AgentSpan(
                        f"a{a:04d}", rng.choice(STATES), t, min(t + length, end), f"t{a % 20}"
                    )
                )
                t += length
    return out, spans, start, start + days * DAY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20_000, help="calls in the last hour")
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-spans", action="store_true", help="skip the agent-time figure")
    args = parser.parse_args()

    stats = busy_centre(args.agents, args.queues, args.calls, args.seed)
    median_ms, p95_ms, size = time_scrapes(stats, args.scrapes)
    print(
        f"scrape: {args.agents} agents x {args.queues} queues, {args.calls} calls in the last "
        f"hour: median {median_ms:.1f} ms, p95 {p95_ms:.1f} ms, {size / 1024:.0f} KiB "
        f"(goal <= 50 ms)"
    )

    records, spans, start, end = synthetic_day(args.records, args.agents, args.queues, args.seed)
    gc.collect()  # the garbage of building the records is not the aggregation's
    t0 = time.perf_counter()
    rows = aggregate_intervals(records, (), StatsConfig(), start, end)
    seconds = time.perf_counter() - t0
    print(
        f"aggregate: {len(records):,} interactions over 7 days -> {len(rows):,} interval rows "
        f"in {seconds:.2f} s (goal <= 10 s for 1,000,000)"
    )
    if not args.no_spans:
        gc.collect()
        t0 = time.perf_counter()
        span_rows = aggregate_intervals((), spans, StatsConfig(), start, end)
        span_seconds = time.perf_counter() - t0
        print(
            f"agent time: {len(spans):,} agent state spans ({args.agents} agents, 7 days of "
            f"8 h) -> {len(span_rows):,} rows in {span_seconds:.2f} s "
            f"({1e6 * span_seconds / max(len(spans), 1):.1f} us per span; not in the goal)"
        )
    print(
        f"RESULT scrape_ms={median_ms:.1f} aggregate_1m_s={seconds * 1_000_000 / len(records):.2f}"
    )


if __name__ == "__main__":
    main()
