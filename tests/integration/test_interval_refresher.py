"""Tier 2: the daemon's periodic interval recompute against a real PostgreSQL.

The refresher runs with a short period (0.2 s) on a manual wall clock: it
fills the current and previous days' rows, picks up a late write at its next
run, survives a database error (logged, retried) and stops cleanly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from structlog.testing import capture_logs

from callcenter.clock import ManualClock
from callcenter.stats import Dimension, StatsConfig
from callcenter.store.db import create_pool, migrate
from callcenter.store.interval_refresher import IntervalRefresher
from callcenter.store.rows import AgentStateRow, InteractionRow
from callcenter.store.stats import AgentInfo, fetch_intervals
from callcenter.testing.databases import fresh_database, write_rows

pytestmark = pytest.mark.postgres

D = 1_700_006_400.0  # midnight UTC, 2023-11-15: "today" for the clock below
NOW = D + 10 * 3600
DAY = 86_400.0
CONFIG = StatsConfig(sl_threshold=20, short_abandon=5)
AGENTS = {"a1": AgentInfo("t1")}
Q = Dimension.QUEUE
PERIOD = 0.2


def interaction(
    iid: str,
    enqueued: float,
    outcome: str,
    *,
    answered: float | None = None,
    ended: float | None = None,
    agent: str | None = None,
) -> InteractionRow:
    return InteractionRow(
        interaction_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, iid)),
        node="node1",
        linkedid=f"node1-{iid}",
        queue="support",
        caller_number="0612345678",
        language="fr",
        priority=0,
        enqueued_at=enqueued,
        answered_at=answered,
        ended_at=ended,
        agent_id=agent,
        outcome=outcome,
        context={},
    )


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true after {timeout} s")


async def offered(pool: asyncpg.Pool, start: float, end: float) -> int:
    return sum(r.counts.offered for r in await fetch_intervals(pool, start, end, [Q]))


async def test_the_refresher_keeps_the_current_and_previous_days_fresh(
    database_url: str,
) -> None:
    url = await fresh_database(database_url)
    await migrate(url)
    pool = await create_pool(url)
    refresher = IntervalRefresher(
        pool,
        CONFIG,
        agents=AGENTS,
        interval=PERIOD,
        days=2,
        clock=ManualClock(wall_offset=NOW),
    )
    try:
        await write_rows(
            pool,
            [
                AgentStateRow("a1", "ready", None, D + 9 * 3600),
                AgentStateRow("a1", "on_call", None, D + 9 * 3600 + 10),
                AgentStateRow("a1", "ready", None, D + 9 * 3600 + 100),
                interaction(
                    "today",
                    D + 9 * 3600,
                    "completed",
                    answered=D + 9 * 3600 + 10,
                    ended=D + 9 * 3600 + 100,
                    agent="a1",
                ),
                interaction("yesterday", D - 5 * 3600, "abandoned", ended=D - 5 * 3600 + 30),
                interaction("old", D - 3 * DAY, "abandoned", ended=D - 3 * DAY + 30),
            ],
        )
        await refresher.start()
        assert refresher.running
        await until(lambda: refresher.runs >= 1 and refresher.last_rows is not None)

        rows = await fetch_intervals(pool, D - DAY, D + DAY)
        today = {(r.interval_start, r.dimension, r.key): r for r in rows}
        call = today[(D + 9 * 3600, Q, "support")].counts
        assert (call.offered, call.answered, call.answered_in_sl, call.handled) == (1, 1, 1, 1)
        assert today[(D + 9 * 3600, Dimension.AGENT, "a1")].agent_time.talk == 90.0
        assert today[(D - 5 * 3600, Q, "support")].counts.abandoned == 1
        assert refresher.last_rows == len(rows)
        # Three days ago is outside the refreshed days: left to the command.
        assert await offered(pool, D - 3 * DAY, D - 2 * DAY) == 0

        # A late write (the daemon's writer lagging behind) is counted by the next run.
        runs = refresher.runs
        await write_rows(
            pool, [interaction("late", D + 9 * 3600 + 60, "abandoned", ended=D + 32_460)]
        )
        await until(lambda: refresher.runs >= runs + 2)
        assert await offered(pool, D + 9 * 3600, D + 9 * 3600 + 900) == 2

        # The table goes missing: each run logs the error and the task lives on.
        with capture_logs() as logs:
            await pool.execute("ALTER TABLE interval_stats RENAME TO interval_stats_away")
            failures = refresher.failures
            await until(lambda: refresher.failures >= failures + 2)
            assert refresher.running
            assert refresher.last_error is not None
            assert "interval_stats" in refresher.last_error
            failed = [e for e in logs if e["event"] == "interval_refresh.failed"]
            assert failed
            assert {e["day"] for e in failed} <= {"2023-11-14", "2023-11-15"}
            assert "interval_stats" in failed[0]["error"]
            assert failed[0]["log_level"] == "error"
            assert not failed[0]["exc_info"]  # an expected store error: no traceback
            await pool.execute("ALTER TABLE interval_stats_away RENAME TO interval_stats")
        # ... and recovers once the database does.
        runs = refresher.runs
        await until(lambda: refresher.runs >= runs + 2 and refresher.last_error is None)
        assert await offered(pool, D - DAY, D + DAY) == 3

        await refresher.stop()
        assert not refresher.running
        runs = refresher.runs
        await asyncio.sleep(3 * PERIOD)
        assert refresher.runs == runs  # stopped: no run after stop()
        await refresher.stop()  # twice is harmless
    finally:
        await refresher.stop()
        await pool.close()


async def test_a_bug_in_a_refresh_is_logged_with_its_traceback_and_retried(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await fresh_database(database_url)
    await migrate(url)
    pool = await create_pool(url)
    calls: list[tuple[float, float]] = []

    async def broken(
        _pool: asyncpg.Pool, start: float, end: float, *_args: object, **_kwargs: object
    ) -> int:
        calls.append((start, end))
        raise KeyError("a bug")

    monkeypatch.setattr("callcenter.store.interval_refresher.recompute_intervals", broken)
    refresher = IntervalRefresher(
        pool, CONFIG, interval=PERIOD, days=3, clock=ManualClock(wall_offset=NOW)
    )
    try:
        with capture_logs() as logs:
            await refresher.start()
            await until(lambda: refresher.runs >= 2)
            assert refresher.running
        # Every day is tried, oldest first, even after the first one failed.
        assert calls[:3] == [(D - 2 * DAY, D - DAY), (D - DAY, D), (D, D + DAY)]
        failed = [e for e in logs if e["event"] == "interval_refresh.failed"]
        assert failed[0]["exc_info"] is True
        assert failed[0]["error_type"] == "KeyError"
        assert refresher.last_rows is None
    finally:
        await refresher.stop()
        await pool.close()
