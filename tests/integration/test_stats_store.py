"""Tier 2: 15-minute interval statistics recomputed in a real PostgreSQL from
rows written by the real interaction writer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from callcenter.errors import ConfigError, StoreError
from callcenter.stats import AgentTime, Dimension, IntervalRow, StatsConfig
from callcenter.store.db import create_pool, migrate
from callcenter.store.interactions import InteractionWriter
from callcenter.store.rows import AgentStateRow, InteractionRow
from callcenter.store.stats import AgentInfo, fetch_intervals, recompute_intervals
from callcenter.testing.databases import fresh_database, written_database

pytestmark = pytest.mark.postgres

B = 1_699_999_200.0  # a 15-minute boundary
CONFIG = StatsConfig(sl_threshold=20, short_abandon=5)
AGENTS = {"a1": AgentInfo("t1"), "a2": AgentInfo("shop", extended=True), "a3": AgentInfo("t1")}
Q, AG = Dimension.QUEUE, Dimension.AGENT


def interaction(
    iid: str,
    enqueued: float,
    outcome: str,
    *,
    answered: float | None = None,
    ended: float | None = None,
    agent: str | None = None,
    queue: str = "support",
    context: dict[str, Any] | None = None,
    direction: str = "inbound",
) -> InteractionRow:
    return InteractionRow(
        interaction_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, iid)),
        node="node1",
        linkedid=f"node1-{iid}",
        queue=queue,
        caller_number="0612345678",
        language="fr",
        priority=0,
        enqueued_at=enqueued,
        answered_at=answered,
        ended_at=ended,
        agent_id=agent,
        outcome=outcome,
        context=context or {},
        direction=direction,
    )


TRANSFER = {"to_queue": "billing", "to_agent": None, "to_number": None}
ROWS = [
    AgentStateRow("a1", "ready", None, B),
    AgentStateRow("a1", "reserved", None, B + 100),
    AgentStateRow("a1", "on_call", None, B + 105),
    AgentStateRow("a1", "wrap_up", None, B + 200),
    AgentStateRow("a1", "ready", None, B + 230),
    AgentStateRow("a1", "logged_out", None, B + 1000),
    # Answered at T exactly, 15 s on hold, 30 s of wrap-up (from a1's states).
    interaction(
        "i1",
        B + 85,
        "completed",
        answered=B + 105,
        ended=B + 200,
        agent="a1",
        context={"stats": {"skill": "fr", "hold_seconds": 15}},
    ),
    interaction("i2", B + 300, "abandoned", ended=B + 305),  # 5 s: at the short threshold
    interaction("i3", B + 400, "abandoned", ended=B + 402),  # short abandon
    # Offered before the boundary, answered after it, transferred away by a2 (extended).
    interaction(
        "i4",
        B + 890,
        "completed",
        answered=B + 930,
        ended=B + 990,
        agent="a2",
        context={"transfer": TRANSFER},
    ),
    # The transfer leg: a new interaction that inherits the context.
    interaction(
        "i5",
        B + 990,
        "completed",
        answered=B + 1000,
        ended=B + 1100,
        agent="a3",
        queue="billing",
        context={"transfer": TRANSFER, "transferred_by": "a2", "origin": "i4"},
    ),
    interaction("i6", B + 1000, "callback", ended=B + 1030),
    interaction(
        "i7",
        B + 1000,
        "completed",
        answered=B + 1010,
        ended=B + 1090,
        agent="a1",
        direction="outbound",
    ),  # a callback we made: not inbound traffic
    interaction("i8", B + 3700, "abandoned", ended=B + 3760),  # outside the first period
    interaction("i9", B + 1700, "waiting"),  # still waiting: offered only
]


def by_key(rows: list[IntervalRow]) -> dict[tuple[float, Dimension, str], IntervalRow]:
    return {(r.interval_start, r.dimension, r.key): r for r in rows}


async def test_recompute_from_written_rows_gives_the_hand_computed_intervals(
    database_url: str,
) -> None:
    _url, pool = await written_database(database_url, ROWS)
    try:
        count = await recompute_intervals(pool, B, B + 1800, CONFIG, agents=AGENTS)
        stored = await fetch_intervals(pool, B, B + 1800)
    finally:
        await pool.close()
    assert count == len(stored)
    rows = by_key(stored)
    support = rows[(B, Q, "support")].counts
    assert (support.offered, support.answered, support.answered_in_sl) == (4, 2, 1)
    assert (support.abandoned, support.abandoned_in_sl, support.short_abandoned) == (1, 1, 1)
    assert (support.transferred, support.handled) == (1, 2)
    assert (support.wait_answered, support.max_wait) == (60.0, 40.0)
    assert (support.talk, support.hold, support.wrap) == (80.0 + 60.0, 15.0, 30.0)
    assert support.service_level == 0.5
    assert support.service_level2 == pytest.approx(2 / 3)
    assert support.aht == pytest.approx((140 + 15 + 30) / 2)
    later = rows[(B + 900, Q, "support")].counts
    assert (later.offered, later.callbacks, later.answered) == (2, 1, 0)  # i6 and i9
    billing = rows[(B + 900, Q, "billing")].counts
    assert (billing.offered, billing.answered, billing.transferred) == (1, 1, 0)
    assert rows[(B, Dimension.SKILL, "fr")].counts.answered == 1
    assert rows[(B, Dimension.AGENT_KIND, "extended")].counts.transferred == 1
    assert rows[(B, Dimension.TEAM, "shop")].counts.answered == 1
    a1 = rows[(B, AG, "a1")]
    assert a1.counts.handled == 1
    assert a1.agent_time == AgentTime(ready=100 + 670, reserved=5, talk=95, wrap=30)
    assert a1.agent_time.occupancy == pytest.approx(125 / 900)
    assert rows[(B + 900, AG, "a1")].agent_time == AgentTime(ready=100)
    assert rows[(B, Dimension.TEAM, "t1")].agent_time == a1.agent_time
    # The outbound callback and the call of the next hour are not in the period.
    assert sum(r.counts.offered for r in stored if r.dimension is Q) == 7


async def test_recompute_is_idempotent_and_rerunnable_after_late_writes(
    database_url: str,
) -> None:
    url, pool = await written_database(database_url, ROWS)
    try:
        await recompute_intervals(pool, B, B + 1800, CONFIG, agents=AGENTS)
        first = await fetch_intervals(pool, B, B + 1800)
        await recompute_intervals(pool, B, B + 1800, CONFIG, agents=AGENTS)
        assert await fetch_intervals(pool, B, B + 1800) == first
        # An overlapping, larger period: the first half hour is unchanged.
        await recompute_intervals(pool, B - 900, B + 3600 * 2, CONFIG, agents=AGENTS)
        assert await fetch_intervals(pool, B, B + 1800) == first
        late = await fetch_intervals(pool, B + 3600, B + 4500, [Q])
        assert [(r.key, r.counts.abandoned) for r in late] == [("support", 1)]
        # A row written late (a daemon that was down) is counted on the next run.
        writer = InteractionWriter(pool)
        await writer.start()
        try:
            writer.submit(interaction("late", B + 10, "abandoned", ended=B + 70))
            await writer.flush()
        finally:
            await writer.stop()
        await recompute_intervals(pool, B, B + 900, CONFIG, agents=AGENTS)
        support = by_key(await fetch_intervals(pool, B, B + 900))[(B, Q, "support")].counts
        assert (support.offered, support.abandoned) == (5, 2)
        total = await pool.fetchval("SELECT count(*) FROM interval_stats")
        keys = await pool.fetchval(
            "SELECT count(DISTINCT (interval_start, dimension, key)) FROM interval_stats"
        )
        assert total == keys
    finally:
        await pool.close()
    assert url


async def test_bad_period_and_database_errors_are_ours(database_url: str) -> None:
    url = await fresh_database(database_url)
    await migrate(url)
    pool = await create_pool(url)
    with pytest.raises(ConfigError, match="aligned"):
        await recompute_intervals(pool, B + 1, B + 900, CONFIG)
    await pool.execute("DROP TABLE interval_stats")
    try:
        with pytest.raises(StoreError, match="recompute failed"):
            await recompute_intervals(pool, B, B + 900, CONFIG)
    finally:
        await pool.close()
