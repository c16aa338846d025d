"""Tier 2: extended agents' interactions this month, read back from a real
PostgreSQL (callcenter.store.agent_months) as the daemon does at start.

The rows go in through the interaction writer, as the call path stores them.
Only this month's answered interactions of the agents asked count; the month
is the local calendar's; PostgreSQL down or mute: the start is not blocked.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from callcenter.errors import StoreError
from callcenter.store.agent_months import month_handled, month_handled_at_start
from callcenter.store.db import create_pool, migrate
from callcenter.store.rows import InteractionRow
from callcenter.testing.databases import fresh_database, written_database
from callcenter.testing.tcp_proxy import proxy_in_front_of

pytestmark = pytest.mark.postgres

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC).timestamp()
"""March 2026 in Paris: 28 Feb 23:00 UTC to 31 Mar 22:00 UTC."""


def at(*when: int) -> float:
    return datetime(*when, tzinfo=UTC).timestamp()  # type: ignore[misc]


def interaction(agent: str | None, answered: float | None, node: str = "node1") -> InteractionRow:
    enqueued = (answered or at(2026, 3, 10)) - 20.0
    return InteractionRow(
        interaction_id=str(uuid.uuid4()),
        node=node,
        linkedid=f"{node}-{uuid.uuid4().hex[:12]}",
        queue="experts",
        caller_number="0612345678",
        language="fr",
        priority=0,
        enqueued_at=enqueued,
        answered_at=answered,
        ended_at=enqueued + 120.0,
        agent_id=agent,
        outcome="completed" if answered is not None else "abandoned",
    )


async def test_this_months_answered_interactions_of_each_agent_are_counted(
    database_url: str,
) -> None:
    rows = [
        interaction("x01", at(2026, 2, 28, 23, 30)),  # 1 Mar 00:30 in Paris: counted
        interaction("x01", at(2026, 3, 10, 9)),  # counted
        interaction("x01", at(2026, 2, 20, 9)),  # last month
        interaction("x01", at(2026, 3, 31, 22, 30)),  # 1 Apr 00:30 in Paris: next month
        interaction("x01", None),  # rang, caller left: never an interaction of theirs
        interaction("x02", at(2026, 3, 12, 9), node="node2"),  # another node: still theirs
        interaction("a01", at(2026, 3, 12, 9)),  # not asked for (not extended)
    ]
    _url, pool = await written_database(database_url, rows)
    try:
        counts = await month_handled(pool, ["x01", "x02", "x03"], NOW, PARIS)
        assert counts == {"x01": 2, "x02": 1}
        # In UTC the month's edges move: 28 Feb 23:30 is February, 31 Mar 22:30 March.
        assert await month_handled(pool, ["x01"], NOW, UTC) == {"x01": 2}
        assert await month_handled(pool, ["x01"], at(2026, 2, 15), PARIS) == {"x01": 1}
        assert await month_handled(pool, [], NOW, PARIS) == {}
    finally:
        await pool.close()


async def test_postgresql_down_or_mute_at_start_gives_no_counts_without_blocking(
    database_url: str,
) -> None:
    url = await fresh_database(database_url)
    await migrate(url)
    proxy, through = await proxy_in_front_of(url)
    pool = await create_pool(through)
    try:
        proxy.cut()  # PostgreSQL gone: its connections reset, new ones refused
        proxy.refuse()
        with pytest.raises(StoreError, match="month counts"):
            await month_handled(pool, ["x01"], NOW, PARIS, timeout=1.0)

        proxy.heal()
        await month_handled(pool, ["x01"], NOW, PARIS, timeout=5.0)  # reachable again
        proxy.blackhole()  # connected, but nothing comes back
        started = time.monotonic()
        with capture_logs() as logs:
            counts = await month_handled_at_start(pool, ["x01"], NOW, PARIS, timeout=0.5)
        assert counts == {}
        assert time.monotonic() - started < 5.0  # bounded by the timeout, not TCP's
        [warning] = [e for e in logs if e["event"] == "acd.month_counts_unavailable"]
        assert warning["log_level"] == "warning"
    finally:
        proxy.heal()
        await pool.close()
        await proxy.stop()
