"""KPI definitions against hand-computed fixtures (docs/kpis.md)."""

from __future__ import annotations

import pytest

from callcenter.errors import ConfigError, StateError
from callcenter.stats import (
    AgentSpan,
    AgentTime,
    Counts,
    Dimension,
    InteractionRecord,
    Outcome,
    StatsConfig,
    agent_time,
    fcr_by,
    first_contact_resolution,
    summarize,
    summarize_by,
)
from callcenter.stats.model import DAY

B = 1_699_999_200.0  # a 15-minute boundary
CONFIG = StatsConfig(sl_threshold=20, short_abandon=5, queue_sl_thresholds={"sales": 60})
A, X, CB = Outcome.ANSWERED, Outcome.ABANDONED, Outcome.CALLBACK


def answered(
    iid: str,
    wait: float,
    talk: float,
    *,
    hold: float = 0.0,
    wrap: float = 0.0,
    queue: str = "support",
    agent: str = "alice",
    at: float = B,
    **more: object,
) -> InteractionRecord:
    return InteractionRecord(
        iid,
        queue,
        at,
        A,
        answered_at=at + wait,
        ended_at=at + wait + talk + hold,
        wrap_ended_at=at + wait + talk + hold + wrap,
        hold_seconds=hold,
        agent_id=agent,
        **more,  # type: ignore[arg-type]
    )


def left(iid: str, wait: float, outcome: Outcome = X, queue: str = "support") -> InteractionRecord:
    return InteractionRecord(iid, queue, B, outcome, left_at=B + wait)


FIXTURE = [
    answered("a1", 10, 100, hold=20, wrap=30, team="t1", skill="fr"),
    answered("a2", 20, 60, agent="bob", team="t1", skill="fr"),  # exactly at T: within
    answered("a3", 45, 200, wrap=40, agent="eve", team="branch", extended=True, transferred=True),
    left("b1", 20),  # abandoned exactly at T: within (SL2 numerator)
    left("b2", 4.9),  # short abandon
    left("b3", 5),  # exactly at the short threshold: a real abandon
    left("b4", 60),
    left("b5", 100),
    left("c1", 30, CB),
    InteractionRecord("o1", "support", B + 1, Outcome.OPEN),
]


def test_counts_of_the_fixture_are_the_hand_computed_ones() -> None:
    c = summarize(FIXTURE, CONFIG)
    assert c == Counts(
        offered=10,
        answered=3,
        answered_in_sl=2,
        abandoned=4,
        abandoned_in_sl=2,
        short_abandoned=1,
        callbacks=1,
        transferred=1,
        handled=3,
        wait_answered=75.0,
        wait_abandoned=185.0,
        max_wait=100.0,
        talk=360.0,
        hold=20.0,
        wrap=70.0,
    )
    assert c.service_level == pytest.approx(2 / 3)
    assert c.service_level2 == pytest.approx(4 / 7)
    assert c.asa == pytest.approx(25.0)
    assert c.aht == pytest.approx((360 + 20 + 70) / 3)
    assert c.abandon_rate == pytest.approx(4 / 9)


def test_without_a_short_abandon_threshold_every_abandon_counts() -> None:
    c = summarize(FIXTURE, StatsConfig(sl_threshold=20, short_abandon=0))
    assert (c.abandoned, c.short_abandoned, c.abandoned_in_sl) == (5, 0, 3)
    # Then SL2 is exactly app_queue's: (2 + 3) / (3 + 5).
    assert c.service_level2 == pytest.approx(5 / 8)
    assert c.abandon_rate == pytest.approx(5 / 10)


def test_an_answer_just_after_the_threshold_is_outside() -> None:
    c = summarize([answered("x", 20.001, 10), answered("y", 19.999, 10)], CONFIG)
    assert (c.answered, c.answered_in_sl) == (2, 1)


def test_queue_thresholds_apply_per_record() -> None:
    records = [answered("s1", 45, 10, queue="sales"), answered("s2", 45, 10, queue="support")]
    by_queue = summarize_by(records, Dimension.QUEUE, CONFIG)
    assert by_queue["sales"].service_level == 1.0
    assert by_queue["support"].service_level == 0.0
    # A skill mixing both queues sums each call judged by its own queue's T.
    assert summarize(records, CONFIG).answered_in_sl == 1


def test_no_calls_means_no_ratio_not_one_hundred_percent() -> None:
    c = summarize([], CONFIG)
    assert (c.service_level, c.service_level2, c.asa, c.aht, c.abandon_rate) == (None,) * 5
    # Only short abandons: no abandon rate either.
    assert summarize([left("z", 1)], CONFIG).abandon_rate is None


def test_answered_but_still_talking_is_not_handled_yet() -> None:
    talking = InteractionRecord("t", "support", B, A, answered_at=B + 5, agent_id="alice")
    c = summarize([talking], CONFIG)
    assert (c.answered, c.handled, c.aht, c.asa) == (1, 0, None, 5.0)


def test_groups_per_agent_team_kind_and_skill() -> None:
    agents = summarize_by(FIXTURE, Dimension.AGENT, CONFIG)
    assert sorted(agents) == ["alice", "bob", "eve"]
    assert agents["alice"].aht == pytest.approx(150.0)  # 100 talk + 20 hold + 30 wrap
    teams = summarize_by(FIXTURE, Dimension.TEAM, CONFIG)
    assert {k: v.answered for k, v in teams.items()} == {"branch": 1, "t1": 2}
    kinds = summarize_by(FIXTURE, Dimension.AGENT_KIND, CONFIG)
    assert {k: v.answered for k, v in kinds.items()} == {"extended": 1, "regular": 2}
    assert kinds["extended"].transferred == 1
    skills = summarize_by(FIXTURE, Dimension.SKILL, CONFIG)
    assert list(skills) == ["fr"]
    assert skills["fr"].asa == pytest.approx(15.0)
    # Unanswered calls have no agent: the agent rows add up to the answered calls.
    assert sum(c.answered for c in agents.values()) == 3
    assert sum(c.offered for c in agents.values()) == 3


def test_counts_add_up() -> None:
    first, second = summarize(FIXTURE[:4], CONFIG), summarize(FIXTURE[4:], CONFIG)
    assert first + second == summarize(FIXTURE, CONFIG)


def test_occupancy_from_agent_spans_counts_ringing_as_available() -> None:
    spans = [
        AgentSpan("alice", "ready", 0, 100),
        AgentSpan("alice", "reserved", 100, 110),
        AgentSpan("alice", "on_call", 110, 230),
        AgentSpan("alice", "wrap_up", 230, 260),
        AgentSpan("alice", "paused", 260, 300),
        AgentSpan("alice", "logged_out", 300, 400),
        AgentSpan("bob", "paused", 0, 50),
    ]
    times = agent_time(spans)
    assert times["alice"] == AgentTime(ready=100, reserved=10, talk=120, wrap=30, paused=40)
    assert times["alice"].occupancy == pytest.approx(150 / 260)
    assert times["bob"].occupancy is None  # only paused: not available, no ratio
    clipped = agent_time(spans, 105, 240)
    assert clipped["alice"] == AgentTime(reserved=5, talk=120, wrap=10)


def test_first_contact_resolution() -> None:
    def contact(iid: str, customer: str, day: float, **more: object) -> InteractionRecord:
        return answered(iid, 5, 60, at=B + day * DAY, customer_id=customer, **more)  # type: ignore[arg-type]

    records = [
        contact("c1-1", "c1", 0),  # c1 calls again 3 days later: not resolved
        contact("c1-2", "c1", 3),  # then never again: resolved
        contact("c2-1", "c2", 0),  # next contact after 8 days: resolved
        contact("c2-2", "c2", 8),
        contact("c3-1", "c3", 0),  # exactly 7 days later: still a repeat
        contact("c3-2", "c3", 7),
        contact("c4-1", "c4", 0, transferred=True),  # transferred: the transfer is no repeat
        contact("c4-2", "c4", 0.001, origin="c4-1", queue="billing"),
        InteractionRecord("c5-1", "support", B, X, left_at=B + 30, customer_id="c5"),
        contact("c5-2", "c5", 0.01),  # an abandon before does not make this a repeat
        contact("c6-1", "c6", 1),
        InteractionRecord(
            "c6-2", "support", B + 2 * DAY, X, left_at=B + 2 * DAY + 9, customer_id="c6"
        ),  # an abandoned retry is a repeat contact
        answered("anon", 5, 60),  # no customer id: not judged
    ]
    until = B + 30 * DAY
    result = first_contact_resolution(records, CONFIG, until=until)[None]
    # Eligible: c1-1 c1-2 c2-1 c2-2 c3-1 c3-2 c4-1 c5-2 c6-1 = 9
    # Resolved: c1-2 c2-1 c2-2 c3-2 c4-1 c5-2 = 6
    assert (result.eligible, result.resolved) == (9, 6)
    assert result.rate == pytest.approx(6 / 9)
    # Contacts whose 7-day window is not over are not judged yet.
    early = first_contact_resolution(records, CONFIG, until=B + 7.5 * DAY)[None]
    # Judged: c1-1 c2-1 c3-1 c4-1 c5-2 (offered by day 0.5); resolved: c2-1 c4-1 c5-2.
    assert (early.eligible, early.resolved) == (5, 3)
    by_queue = fcr_by(records, Dimension.QUEUE, CONFIG, until=until)
    assert set(by_queue) == {"support"}  # the transfer leg (billing) is not a contact


def test_bad_configuration_and_records_are_refused() -> None:
    with pytest.raises(ConfigError, match="short_abandon"):
        StatsConfig(short_abandon=-1)
    with pytest.raises(ConfigError, match="interval"):
        StatsConfig(interval=7)
    with pytest.raises(ConfigError, match="queue_sl_thresholds"):
        StatsConfig(queue_sl_thresholds={"q": float("nan")})
    with pytest.raises(StateError, match="answered before"):
        InteractionRecord("x", "q", B, A, answered_at=B - 1, agent_id="a")
    with pytest.raises(StateError, match="left_at"):
        InteractionRecord("x", "q", B, X)
    with pytest.raises(StateError, match="hold longer"):
        InteractionRecord(
            "x", "q", B, A, answered_at=B, ended_at=B + 5, agent_id="a", hold_seconds=6
        )
