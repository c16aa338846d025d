"""Tier 1: an extended agent's monthly cap holds across a daemon restart.

The count read back at start (callcenter.store.agent_months) reaches the ACD
through the call path's login; an agent at the cap is not offered a call;
the month's bounds follow the local calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from callcenter.acd import Engine, InteractionRequest
from callcenter.adapters.telephony import Telephony
from callcenter.callpath.service import CallPath
from callcenter.callpath.site import load_site
from callcenter.clock import ManualClock, month_bounds
from callcenter.store.rows import AgentStateRow

SITE = """
queues:
  experts:
    skills: {expert: 1}
    extended_skills: [expert]
routes:
  default: {queue: experts}
agents:
  x01: {name: Adviser, endpoint: agent1, skills: {expert: 5}, extended: true, monthly_cap: 3}
"""


def callpath(tmp_path: Path) -> tuple[CallPath, Engine]:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    site = load_site(path)
    acd = Engine(site.queue_rules())
    # No call is offered in these tests, so telephony is never used.
    return CallPath(acd, cast(Telephony, None), site, ManualClock(), node="n1"), acd


def test_an_extended_agent_at_the_cap_after_a_restart_is_not_offered(tmp_path: Path) -> None:
    path, acd = callpath(tmp_path)
    path.month_handled = {"x01": 3}  # what the daemon read back at start
    path.restore_agents([AgentStateRow("x01", "ready", None, 0.0)])
    assert acd.agents["x01"].month_count == 3
    # A call for the expert skill goes to extended agents at once: not this one.
    assert acd.interaction_arrived(1.0, InteractionRequest("c1", "experts", {"expert": 1})) == []

    fresh, fresh_acd = callpath(tmp_path)  # control: without the count, offered
    fresh.agent_login("x01")
    [offer] = fresh_acd.interaction_arrived(1.0, InteractionRequest("c1", "experts", {"expert": 1}))
    assert offer.agent_id == "x01"


def test_the_count_read_at_start_seeds_the_first_login_only(tmp_path: Path) -> None:
    path, acd = callpath(tmp_path)
    path.month_handled = {"x01": 2}
    path.agent_login("x01")
    assert acd.agents["x01"].month_count == 2
    path.agent_logout("x01")
    acd.new_month(10.0)  # a reset in the ACD is not undone by the stale seed
    path.agent_login("x01")
    assert acd.agents["x01"].month_count == 0


def test_month_bounds_follow_the_local_calendar() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 31 Dec 2025 23:30 UTC is already January in Paris.
    start, end = month_bounds(datetime(2025, 12, 31, 23, 30, tzinfo=UTC).timestamp(), paris)
    assert (start, end) == (datetime(2026, 1, 1, tzinfo=paris), datetime(2026, 2, 1, tzinfo=paris))
    assert start.timestamp() == datetime(2025, 12, 31, 23, 0, tzinfo=UTC).timestamp()
    # December rolls over to next year's January; UTC by default.
    start, end = month_bounds(datetime(2025, 12, 15, tzinfo=UTC).timestamp(), UTC)
    assert (start, end) == (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    # Across a DST change (March in Paris): offsets of each bound's own date.
    start, end = month_bounds(datetime(2026, 3, 15, tzinfo=UTC).timestamp(), paris)
    assert end.timestamp() - start.timestamp() == 31 * 86400 - 3600


def test_the_counts_start_again_when_the_month_turns_in_the_local_zone(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE)
    site = load_site(site_file)
    acd = Engine(site.queue_rules())
    paris = ZoneInfo("Europe/Paris")
    # 31 January, 23:59 in Paris (22:59 UTC): a minute before the month turns there.
    before = datetime(2026, 1, 31, 23, 59, tzinfo=paris).timestamp()
    clock = ManualClock(start=0.0, wall_offset=before)
    path = CallPath(acd, cast(Telephony, None), site, clock, node="n1")
    path.follow_months(paris)
    path.month_handled = {"x01": 3}
    path.agent_login("x01")
    assert path._next_month() == 60.0  # due at 00:00 on 1 February, Paris time
    clock.advance(30.0)
    path.timers_due()
    assert acd.agents["x01"].month_count == 3  # still January
    clock.advance(31.0)
    path.timers_due()
    assert acd.agents["x01"].month_count == 0
    [offer] = acd.interaction_arrived(
        clock.now(), InteractionRequest("c1", "experts", {"expert": 1})
    )
    assert offer.agent_id == "x01"
