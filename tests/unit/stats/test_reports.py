"""Reports (pure): daily sums and ratios, time zones, FCR per day, agents,
dispositions, CSAT, chart series, periods, CSV; hand-computed fixtures."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from callcenter.errors import ConfigError
from callcenter.stats import AgentTime, Counts, Dimension, IntervalRow, StatsConfig
from callcenter.stats.kpis import Fcr
from callcenter.stats.model import DAY, InteractionRecord, Outcome
from callcenter.stats.reports import (
    ALL,
    FIGURE_COLUMNS,
    NO_DISPOSITION,
    ContactFact,
    Csat,
    agent_lines,
    csat_by,
    daily_lines,
    day_chart,
    days_of,
    disposition_counts,
    fcr_by_day,
    interval_lines,
    parse_period,
    to_csv,
)

D0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC (Paris: 01:00, UTC+1 in November)
DAY0 = date(2023, 11, 15)
UTC_TZ = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
Q, AG, KIND = Dimension.QUEUE, Dimension.AGENT, Dimension.AGENT_KIND

# support, interval 00:00: 4 offered, 3 answered (2 within T), 1 abandoned.
I1 = Counts(
    offered=4,
    answered=3,
    answered_in_sl=2,
    abandoned=1,
    abandoned_in_sl=1,
    handled=3,
    wait_answered=30.0,
    wait_abandoned=12.0,
    max_wait=15.0,
    talk=300.0,
    wrap=30.0,
)
# support, interval 00:15: 2 offered, 1 answered within T, 1 short abandon.
I2 = Counts(
    offered=2,
    answered=1,
    answered_in_sl=1,
    short_abandoned=1,
    handled=1,
    wait_answered=5.0,
    max_wait=5.0,
    talk=100.0,
    hold=20.0,
    wrap=10.0,
)
SALES = Counts(offered=1, answered=1, handled=1, wait_answered=40.0, max_wait=40.0, talk=60.0)


def row(
    start: float, dimension: Dimension, key: str, counts: Counts, t: AgentTime | None = None
) -> IntervalRow:
    return IntervalRow(start, dimension, key, counts, t or AgentTime())


ROWS = [
    row(D0, Q, "support", I1),
    row(D0 + 900, Q, "support", I2),
    row(D0 + 3600, Q, "sales", SALES),
    row(D0 + DAY, Q, "support", I2),  # the next day
    row(D0, KIND, "regular", Counts(), AgentTime(ready=500, reserved=100, talk=300, wrap=100)),
    row(D0 + 900, KIND, "extended", Counts(), AgentTime(ready=200, talk=100)),
    row(D0, AG, "a1", I1, AgentTime(ready=500, reserved=100, talk=300, wrap=100, paused=60)),
    row(D0 + 900, AG, "a1", I2, AgentTime(ready=300, talk=110, wrap=10)),
    row(D0 + 900, AG, "a2", I1, AgentTime(ready=200, talk=60)),
]


def test_daily_figures_come_from_summed_counts_never_averaged_ratios() -> None:
    lines = daily_lines(ROWS, Q, tz=UTC_TZ)
    by = {(line.period, line.key): line.figures() for line in lines}
    support = by[("2023-11-15", "support")]
    assert (support["offered"], support["answered"], support["abandoned"]) == (6, 4, 1)
    # SL = 3/4, not the mean of the intervals' 2/3 and 1/1.
    assert support["sl"] == 0.75
    assert support["sl2"] == pytest.approx((3 + 1) / (4 + 1))
    assert support["asa_s"] == 35 / 4
    assert support["aht_s"] == (400 + 20 + 40) / 4
    assert support["abandon_rate"] == 1 / (6 - 1)  # the short abandon is no genuine offer
    assert support["max_wait_s"] == 15.0
    assert support["occupancy"] is None  # queue rows hold no agent time
    total = by[("2023-11-15", ALL)]
    assert (total["offered"], total["answered"], total["answered_in_sl"]) == (7, 5, 3)
    assert total["sl"] == 3 / 5
    # Occupancy of every agent: (talk + wrap) / (ready + reserved + talk + wrap).
    assert total["occupancy"] == (400 + 100) / (600 + 400 + 300)
    assert by[("2023-11-16", "support")]["offered"] == 2
    assert [line.key for line in lines if line.period == "2023-11-15"] == ["sales", "support", ALL]


def test_daily_lines_follow_the_local_day() -> None:
    late = row(D0 - 1800, Q, "support", SALES)  # 23:30 UTC the day before = 00:30 in Paris
    utc = {(x.period, x.key): x.counts.offered for x in daily_lines([late, *ROWS], Q, tz=UTC_TZ)}
    paris = {(x.period, x.key): x.counts.offered for x in daily_lines([late, *ROWS], Q, tz=PARIS)}
    assert utc[("2023-11-14", "support")] == 1
    assert utc[("2023-11-15", "support")] == 6
    assert ("2023-11-14", "support") not in paris
    assert paris[("2023-11-15", "support")] == 7


def test_daily_agent_lines_keep_their_own_agent_time_and_filter_keys() -> None:
    lines = daily_lines(ROWS, AG, tz=UTC_TZ, keys=["a1"])
    assert [x.key for x in lines] == ["a1", ALL]
    a1 = lines[0]
    assert a1.agent_time == AgentTime(ready=800, reserved=100, talk=410, wrap=110, paused=60)
    assert a1.figures()["occupancy"] == (410 + 110) / (800 + 100 + 410 + 110)
    assert lines[1].agent_time == a1.agent_time


def test_interval_lines_label_in_local_time() -> None:
    lines = interval_lines(ROWS, Q, tz=PARIS, keys=["support"])
    assert [(x.period, x.counts.offered) for x in lines] == [
        ("2023-11-15 01:00", 4),
        ("2023-11-15 01:15", 2),
        ("2023-11-16 01:00", 2),
    ]
    assert lines[0].figures()["sl"] == pytest.approx(2 / 3)


def record(
    iid: str,
    customer: str | None,
    offered: float,
    outcome: Outcome = Outcome.ANSWERED,
    *,
    queue: str = "support",
    origin: str | None = None,
) -> InteractionRecord:
    if outcome is Outcome.ANSWERED:
        return InteractionRecord(
            iid, queue, offered, outcome, answered_at=offered + 5, ended_at=offered + 60,
            agent_id="a1", customer_id=customer, origin=origin,
        )  # fmt: skip
    return InteractionRecord(
        iid, queue, offered, outcome, left_at=offered + 30, customer_id=customer, origin=origin
    )


def test_fcr_by_day_judges_contacts_of_the_period_with_repeats_after_it() -> None:
    config = StatsConfig(fcr_days=7)
    records = [
        record("c1-first", "c1", D0 + 100),
        record("c1-again", "c1", D0 + 3 * DAY, Outcome.ABANDONED),  # a repeat, outside the period
        record("c2", "c2", D0 + 200),  # resolved
        record("c3", "c3", D0 + 300, queue="sales"),  # resolved, another queue
        record("c4", "c4", D0 + 400),
        record("c4-exactly-7-days", "c4", D0 + 400 + 7 * DAY),  # inclusive window: a repeat
        record("anon", None, D0 + 500),  # no customer: not a contact
        record("leg", "c2", D0 + 600, origin="c2"),  # transfer leg: neither contact nor repeat
    ]
    fcr = fcr_by_day(records, config, start=D0, end=D0 + DAY, until=D0 + 30 * DAY, tz=UTC_TZ)
    assert fcr[(DAY0, "support")] == Fcr(eligible=3, resolved=1)
    assert fcr[(DAY0, "sales")] == Fcr(eligible=1, resolved=1)
    assert fcr[(DAY0, ALL)] == Fcr(eligible=4, resolved=2)
    assert not any(day != DAY0 for day, _ in fcr)
    # A contact whose 7 days are not over when the data ends is not judged yet.
    early = fcr_by_day(records, config, start=D0, end=D0 + DAY, until=D0 + 7 * DAY + 250, tz=UTC_TZ)
    assert early[(DAY0, ALL)] == Fcr(eligible=2, resolved=1)  # c1 and c2 only
    lines = daily_lines(ROWS, Q, tz=UTC_TZ, fcr=fcr)
    figures = {(x.period, x.key): x.figures() for x in lines}
    assert figures[("2023-11-15", "support")]["fcr"] == pytest.approx(1 / 3)
    assert figures[("2023-11-15", ALL)]["fcr_eligible"] == 4


FACTS = [
    ContactFact("1", "support", D0, "a1", True, "resolved", True, 5),
    ContactFact("2", "support", D0, "a1", True, "resolved", True, 4),
    ContactFact("3", "support", D0, "a1", True, "follow-up", True, 2),
    ContactFact("4", "support", D0, "a2", True, None, True, None),  # heard it, pressed nothing
    ContactFact("5", "support", D0, "a2", True, "sale", True, 9),  # out of scale: no response
    ContactFact("6", "sales", D0, "a2", True, "sale"),  # no survey on sales
    ContactFact("7", "sales", D0, None, False),  # abandoned: no disposition line
]


def test_csat_is_satisfied_over_responses() -> None:
    by_queue = csat_by(FACTS, Q)
    assert by_queue == {"support": Csat(surveyed=5, responses=3, satisfied=2, score_sum=11)}
    support = by_queue["support"]
    assert support.csat == 2 / 3
    assert support.average == 11 / 3
    assert support.response_rate == 3 / 5
    by_agent = csat_by(FACTS, AG)
    assert by_agent["a2"] == Csat(surveyed=2)
    assert by_agent["a2"].csat is None  # no response: no value, not 0 %
    with pytest.raises(ConfigError):
        csat_by(FACTS, Dimension.SKILL)


def test_disposition_counts_per_queue_and_agent() -> None:
    lines = [(x.key, x.code, x.count, x.share) for x in disposition_counts(FACTS, Q)]
    assert lines == [
        ("sales", "sale", 1, 1.0),
        ("support", "resolved", 2, 0.4),
        ("support", NO_DISPOSITION, 1, 0.2),
        ("support", "follow-up", 1, 0.2),
        ("support", "sale", 1, 0.2),
    ]
    agents = {(x.key, x.code): x.count for x in disposition_counts(FACTS, AG)}
    assert agents == {
        ("a1", "resolved"): 2,
        ("a1", "follow-up"): 1,
        ("a2", NO_DISPOSITION): 1,
        ("a2", "sale"): 2,
    }


def test_agent_performance() -> None:
    lines = {x.agent_id: x.figures() for x in agent_lines(ROWS, FACTS)}
    a1 = lines["a1"]
    assert (a1["answered"], a1["handled"]) == (4, 4)
    assert a1["aht_s"] == (400 + 20 + 40) / 4
    assert a1["avg_talk_s"] == 100.0
    assert a1["avg_hold_s"] == 5.0
    assert a1["staffed_s"] == 800 + 100 + 410 + 110 + 60
    assert a1["occupancy"] == (410 + 110) / (800 + 100 + 410 + 110)
    assert a1["disposition_rate"] == 3 / 4  # 3 coded of the 4 calls a1 answered
    assert (a1["surveys"], a1["csat"], a1["avg_score"]) == (3, 2 / 3, 11 / 3)
    a2 = lines["a2"]
    assert (a2["answered"], a2["disposition_rate"]) == (3, 2 / 3)
    assert (a2["surveys"], a2["csat"]) == (2, None)
    assert list(lines) == ["a1", "a2"]


def test_day_chart_has_every_interval_and_sums_queues() -> None:
    points = day_chart(ROWS, D0, D0 + DAY, tz=UTC_TZ)
    assert len(points) == 96
    assert (points[0].label, points[0].offered, points[0].answered, points[0].sl) == (
        "00:00",
        4,
        3,
        2 / 3,
    )
    assert (points[1].offered, points[1].sl) == (2, 1.0)
    assert (points[4].label, points[4].offered) == ("01:00", 1)
    assert (points[5].offered, points[5].sl) == (0, None)
    only_sales = day_chart(ROWS, D0, D0 + DAY, tz=UTC_TZ, queues=["sales"])
    assert sum(p.offered for p in only_sales) == 1


def test_parse_period_dates_are_whole_days_and_instants_are_exclusive() -> None:
    assert parse_period("2023-11-15", "2023-11-15", UTC_TZ) == (D0, D0 + DAY)
    assert parse_period("2023-11-15", "2023-11-16", PARIS) == (D0 - 3600, D0 - 3600 + 2 * DAY)
    assert parse_period("2023-11-15T08:05", "2023-11-15T09:00", UTC_TZ) == (
        D0 + 8 * 3600,
        D0 + 9 * 3600,
    )
    assert parse_period("2023-11-15T08:00+00:00", "2023-11-15T08:00:01+00:00", PARIS) == (
        D0 + 8 * 3600,
        D0 + 8 * 3600 + 900,
    )
    with pytest.raises(ConfigError, match="empty period"):
        parse_period("2023-11-15T09:00", "2023-11-15T08:00", UTC_TZ)
    with pytest.raises(ConfigError, match="not a date"):
        parse_period("yesterday", "2023-11-15", UTC_TZ)


def test_days_of_clips_to_the_period() -> None:
    assert days_of(D0 + 3600, D0 + DAY + 900, UTC_TZ) == [
        (DAY0, D0 + 3600, D0 + DAY),
        (date(2023, 11, 16), D0 + DAY, D0 + DAY + 900),
    ]


def test_csv_has_every_column_and_empty_cells_for_no_value() -> None:
    lines = daily_lines(ROWS, Q, tz=UTC_TZ, keys=["sales"], total=False)
    text = to_csv(FIGURE_COLUMNS, [x.figures() for x in lines])
    header, first = text.splitlines()
    assert header.split(",") == list(FIGURE_COLUMNS)
    cells = dict(zip(FIGURE_COLUMNS, first.split(","), strict=True))
    assert cells["key"] == "sales"
    assert cells["sl"] == "0"  # 0 answered within T of 1 answered
    assert cells["asa_s"] == "40"
    assert cells["abandon_rate"] == "0"
    assert cells["occupancy"] == ""
    assert cells["fcr"] == ""
