"""15-minute interval aggregation: attribution, spanning calls, idempotence."""

from __future__ import annotations

import random

import pytest

from callcenter.errors import ConfigError
from callcenter.stats import (
    AgentSpan,
    AgentTime,
    Dimension,
    InteractionRecord,
    IntervalRow,
    Outcome,
    StatsConfig,
    aggregate_intervals,
    dimension_key,
    interval_of,
    summarize,
)

B = 1_699_999_200.0  # a 15-minute boundary
CONFIG = StatsConfig(sl_threshold=20, short_abandon=5)
Q, S, AG = Dimension.QUEUE, Dimension.SKILL, Dimension.AGENT


def test_interval_of() -> None:
    assert interval_of(B) == B
    assert interval_of(B + 899.999) == B
    assert interval_of(B + 900) == B + 900


def spanning_call() -> InteractionRecord:
    # Offered 10 s before the boundary, answered 10 s after it (wait 20: within T).
    return InteractionRecord(
        "span",
        "support",
        B + 890,
        Outcome.ANSWERED,
        answered_at=B + 910,
        ended_at=B + 1000,
        wrap_ended_at=B + 1010,
        skill="fr",
        agent_id="alice",
        team="t1",
    )


def alice_spans() -> list[AgentSpan]:
    return [
        AgentSpan("alice", "ready", B + 800, B + 905, team="t1"),
        AgentSpan("alice", "reserved", B + 905, B + 910, team="t1"),
        AgentSpan("alice", "on_call", B + 910, B + 1000, team="t1"),
        AgentSpan("alice", "wrap_up", B + 1000, B + 1010, team="t1"),
        AgentSpan("alice", "ready", B + 1010, B + 2000, team="t1"),  # crosses two boundaries
    ]


def rows_by_key(rows: list[IntervalRow]) -> dict[tuple[float, Dimension, str], IntervalRow]:
    return {(r.interval_start, r.dimension, r.key): r for r in rows}


def test_a_call_spanning_intervals_counts_where_it_was_offered() -> None:
    rows = rows_by_key(aggregate_intervals([spanning_call()], alice_spans(), CONFIG, B, B + 2700))
    first = rows[(B, Q, "support")].counts
    assert (first.offered, first.answered, first.answered_in_sl, first.handled) == (1, 1, 1, 1)
    assert (first.wait_answered, first.talk, first.wrap) == (20.0, 90.0, 10.0)
    assert (B + 900, Q, "support") not in rows  # no call was offered then
    assert rows[(B, S, "fr")].counts.answered == 1
    assert rows[(B, AG, "alice")].counts.handled == 1
    # Agent time is split where it was spent.
    assert rows[(B, AG, "alice")].agent_time == AgentTime(ready=100)
    second = rows[(B + 900, AG, "alice")].agent_time
    assert second == AgentTime(ready=5 + 790, reserved=5, talk=90, wrap=10)
    assert rows[(B + 1800, AG, "alice")].agent_time == AgentTime(ready=200)
    assert rows[(B + 900, AG, "alice")].counts.offered == 0
    assert rows[(B + 900, Dimension.TEAM, "t1")].agent_time == second
    assert rows[(B + 900, Dimension.AGENT_KIND, "regular")].agent_time == second
    # Queue rows never carry agent time.
    assert rows[(B, Q, "support")].agent_time == AgentTime()


def test_a_transfer_counts_in_both_queues() -> None:
    first = InteractionRecord(
        "t1",
        "support",
        B + 10,
        Outcome.ANSWERED,
        answered_at=B + 15,
        ended_at=B + 75,
        wrap_ended_at=B + 75,
        agent_id="alice",
        transferred=True,
    )
    second = InteractionRecord(
        "t2",
        "billing",
        B + 75,
        Outcome.ANSWERED,
        answered_at=B + 105,
        ended_at=B + 200,
        wrap_ended_at=B + 230,
        agent_id="bob",
        origin="t1",
    )
    rows = rows_by_key(aggregate_intervals([first, second], [], CONFIG, B, B + 900))
    support, billing = rows[(B, Q, "support")].counts, rows[(B, Q, "billing")].counts
    assert (support.offered, support.answered, support.transferred, support.handled) == (1, 1, 1, 1)
    assert support.aht == 60.0
    assert (billing.offered, billing.answered, billing.answered_in_sl) == (1, 1, 0)  # waited 30
    assert billing.aht == 125.0
    assert rows[(B, AG, "alice")].counts.transferred == 1


def sample(n: int, seed: int = 7) -> list[InteractionRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        offered = B + rng.uniform(-900, 4500)
        wait = rng.choice([0, 4.9, 5, 19.9, 20, 20.1, 45, 300])
        if rng.random() < 0.7:
            talk = rng.uniform(10, 600)
            records.append(
                InteractionRecord(
                    f"i{i}",
                    rng.choice(["support", "sales"]),
                    offered,
                    Outcome.ANSWERED,
                    answered_at=offered + wait,
                    ended_at=offered + wait + talk,
                    wrap_ended_at=offered + wait + talk + rng.uniform(0, 60),
                    skill=rng.choice(["", "fr", "en"]),
                    agent_id=rng.choice(["a1", "a2", "a3"]),
                    extended=rng.random() < 0.1,
                )
            )
        else:
            records.append(
                InteractionRecord(
                    f"i{i}", "support", offered, Outcome.ABANDONED, left_at=offered + wait
                )
            )
    return records


def test_recompute_is_idempotent_and_order_free() -> None:
    records = sample(500)
    spans = [AgentSpan("a1", "ready", B - 100, B + 5000)]
    once = aggregate_intervals(records, spans, CONFIG, B, B + 3600)
    shuffled = records[::-1]
    assert aggregate_intervals(shuffled, spans, CONFIG, B, B + 3600) == once
    # Splitting the period in two gives the same rows.
    halves = aggregate_intervals(records, spans, CONFIG, B, B + 1800) + aggregate_intervals(
        records, spans, CONFIG, B + 1800, B + 3600
    )
    assert halves == once
    # Interval rows add up to the whole period (calls offered in it).
    in_period = [r for r in records if B <= r.offered_at < B + 3600]
    total = summarize(in_period, CONFIG)
    queue_rows = [r.counts for r in once if r.dimension is Q]
    summed = queue_rows[0]
    for c in queue_rows[1:]:
        summed = summed + c
    assert summed.offered == total.offered == len(in_period)
    assert summed.answered_in_sl == total.answered_in_sl
    assert summed.talk == pytest.approx(total.talk)


def test_the_period_must_be_aligned() -> None:
    with pytest.raises(ConfigError, match="aligned"):
        aggregate_intervals([], [], CONFIG, B + 1, B + 900)
    with pytest.raises(ConfigError, match="before"):
        aggregate_intervals([], [], CONFIG, B + 900, B)


def test_every_interval_row_equals_the_summary_of_its_calls() -> None:
    records = sample(400, seed=11)
    rows = aggregate_intervals(records, [], CONFIG, B - 900, B + 4500)
    assert rows
    for row in rows:
        mine = [
            r
            for r in records
            if interval_of(r.offered_at) == row.interval_start
            and dimension_key(r, row.dimension) == row.key
        ]
        expected = summarize(mine, CONFIG)
        assert row.counts.offered == expected.offered
        for name in ("answered", "answered_in_sl", "abandoned", "abandoned_in_sl"):
            assert getattr(row.counts, name) == getattr(expected, name)
        for name in ("short_abandoned", "callbacks", "transferred", "handled", "max_wait"):
            assert getattr(row.counts, name) == getattr(expected, name)
        for name in ("wait_answered", "wait_abandoned", "talk", "hold", "wrap"):
            assert getattr(row.counts, name) == pytest.approx(getattr(expected, name))
