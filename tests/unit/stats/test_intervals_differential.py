"""The vectorised interval aggregation against a plain reference (hypothesis).

``reference`` is the algorithm ``aggregate_intervals`` had before it was
vectorised, written as directly as possible: one running list of facts per
(interval, dimension, key), each record added in input order, each agent
span cut at the boundaries, rows sorted at the end. The fast version must
give exactly the same rows — equal floats, not approximately equal: numpy's
``bincount`` adds in input order as the running list does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.stats import (
    AgentSpan,
    AgentTime,
    Counts,
    Dimension,
    InteractionRecord,
    IntervalRow,
    Outcome,
    StatsConfig,
    aggregate_intervals,
    dimension_key,
)
from callcenter.stats.intervals import DEFAULT_DIMENSIONS
from callcenter.stats.kpis import MAX_WAIT, counts_of, facts

B = 1_699_999_200.0  # a 15-minute boundary
STATE_INDEX = {"ready": 0, "reserved": 1, "on_call": 2, "wrap_up": 3, "paused": 4}


def reference(
    records: Sequence[InteractionRecord],
    spans: Sequence[AgentSpan],
    config: StatsConfig,
    start: float,
    end: float,
    dimensions: Sequence[Dimension] = DEFAULT_DIMENSIONS,
) -> list[IntervalRow]:
    size = config.interval
    counts: dict[tuple[float, Dimension, str], list[float]] = {}
    for record in records:
        if not start <= record.offered_at < end:
            continue
        interval = float(math.floor(record.offered_at / size) * size)
        values = facts(record, config)
        for dimension in dimensions:
            key = dimension_key(record, dimension)
            if key is None:
                continue
            sums = counts.setdefault((interval, dimension, key), [0.0] * len(values))
            for i, value in enumerate(values):
                sums[i] = max(sums[i], value) if i == MAX_WAIT else sums[i] + value
    times: dict[tuple[float, Dimension, str], list[float]] = {}
    agent_dimensions = [
        d for d in dimensions if d in (Dimension.AGENT, Dimension.TEAM, Dimension.AGENT_KIND)
    ]
    for span in spans:
        index = STATE_INDEX.get(span.state)
        lo, hi = max(span.start, start), min(span.end, end)
        if index is None or hi <= lo:
            continue
        keys = {
            Dimension.AGENT: span.agent_id,
            Dimension.TEAM: span.team or None,
            Dimension.AGENT_KIND: "extended" if span.extended else "regular",
        }
        slot = math.floor(lo / size) * size
        while slot < hi:
            part = min(hi, slot + size) - max(lo, slot)
            if part > 0:
                for dimension in agent_dimensions:
                    key = keys[dimension]
                    if key is not None:
                        cell = times.setdefault((float(slot), dimension, key), [0.0] * 5)
                        cell[index] += part
            slot += size
    return [
        IntervalRow(
            *row_key,
            counts_of(counts[row_key]) if row_key in counts else Counts(),
            AgentTime(*times[row_key]) if row_key in times else AgentTime(),
        )
        for row_key in sorted(counts.keys() | times.keys())
    ]


# Few queues, agents and intervals, so groups hold many calls (sums in order
# matter) and boundaries are often hit exactly.
MOMENTS = st.one_of(
    st.integers(-3, 12).map(lambda k: B + 900 * k),  # on a boundary
    st.floats(B - 2 * 900, B + 11 * 900, allow_nan=False),
)
WAITS = st.one_of(st.sampled_from([0.0, 4.9, 5.0, 19.9, 20.0, 20.1, 30.0]), st.floats(0, 2000))
AGENTS = st.sampled_from(["a1", "a2", "a3", "b1"])
TEAMS = st.sampled_from(["", "t1", "t2"])


@st.composite
def records(draw: st.DrawFn) -> list[InteractionRecord]:
    out: list[InteractionRecord] = []
    for i in range(draw(st.integers(0, 60))):
        offered = draw(MOMENTS)
        queue = draw(st.sampled_from(["support", "sales", "vip"]))
        skill = draw(st.sampled_from(["", "fr", "en"]))
        outcome = draw(st.sampled_from(list(Outcome)))
        wait = draw(WAITS)
        if outcome is Outcome.ANSWERED:
            talk = draw(st.floats(0, 3000))
            answered = offered + wait
            ended = draw(st.sampled_from([None, answered + talk]))
            wrap = draw(st.floats(0, 200))
            hold = 0.0 if ended is None else draw(st.floats(0, 1)) * (ended - answered)
            out.append(
                InteractionRecord(
                    f"i{i}",
                    queue,
                    offered,
                    outcome,
                    answered_at=answered,
                    ended_at=ended,
                    wrap_ended_at=None if ended is None else ended + wrap,
                    hold_seconds=hold,
                    skill=skill,
                    agent_id=draw(AGENTS),
                    team=draw(TEAMS),
                    extended=draw(st.booleans()),
                    transferred=draw(st.booleans()),
                )
            )
        elif outcome is Outcome.OPEN:
            out.append(InteractionRecord(f"i{i}", queue, offered, outcome, skill=skill))
        else:
            out.append(
                InteractionRecord(
                    f"i{i}", queue, offered, outcome, left_at=offered + wait, skill=skill
                )
            )
    return out


@st.composite
def spans(draw: st.DrawFn) -> list[AgentSpan]:
    out: list[AgentSpan] = []
    for _ in range(draw(st.integers(0, 30))):
        begin = draw(MOMENTS)
        length = draw(st.one_of(st.just(0.0), st.integers(1, 4).map(float), st.floats(0, 5000)))
        agent = draw(AGENTS)
        out.append(
            AgentSpan(
                agent,
                draw(st.sampled_from(["ready", "reserved", "on_call", "wrap_up", "paused"])),
                begin,
                begin + length,
                team=draw(TEAMS),
                extended=agent.startswith("b"),
            )
        )
        if draw(st.booleans()):
            out.append(AgentSpan(agent, "logged_out", begin, begin + 900))
    return out


PERIODS = st.tuples(st.integers(-2, 10), st.integers(0, 8)).map(
    lambda p: (B + 900 * p[0], B + 900 * (p[0] + p[1]))
)
DIMENSION_SETS = st.one_of(
    st.just(DEFAULT_DIMENSIONS),
    st.lists(st.sampled_from(list(Dimension)), min_size=1, max_size=5, unique=True).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(records(), spans(), PERIODS, DIMENSION_SETS, st.sampled_from([300, 900, 3600]))
def test_the_fast_aggregation_equals_the_reference_exactly(
    calls: list[InteractionRecord],
    states: list[AgentSpan],
    period: tuple[float, float],
    dimensions: tuple[Dimension, ...],
    interval: int,
) -> None:
    config = StatsConfig(
        sl_threshold=20, short_abandon=5, queue_sl_thresholds={"vip": 10.0}, interval=interval
    )
    start, end = period
    if start % interval or end % interval:
        start, end = B, B + 4 * 3600  # aligned on every size drawn
    fast = aggregate_intervals(calls, states, config, start, end, dimensions)
    slow = reference(calls, states, config, start, end, dimensions)
    assert fast == slow
    # Equal, and the same types (ints for counts, floats for times).
    assert [repr(row) for row in fast] == [repr(row) for row in slow]


def test_many_calls_in_one_group_sum_in_input_order() -> None:
    # Sums whose value depends on the order of the additions.
    config = StatsConfig()
    calls = [
        InteractionRecord(
            f"i{i}",
            "q",
            B + i * 0.001,
            Outcome.ANSWERED,
            answered_at=B + i * 0.001 + 0.1 * (i % 7) + 1e-9 * i,
            ended_at=B + 100 + 1e-7 * i,
            agent_id="a1",
        )
        for i in range(5000)
    ]
    fast = aggregate_intervals(calls, [], config, B, B + 900)
    assert [repr(row) for row in fast] == [
        repr(row) for row in reference(calls, [], config, B, B + 900)
    ]
    assert [repr(row) for row in aggregate_intervals(calls[::-1], [], config, B, B + 900)] == [
        repr(row) for row in reference(calls[::-1], [], config, B, B + 900)
    ]
