"""Tier 1: French public holidays and opening hours across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from callcenter.errors import ScriptError
from callcenter.ivr.calendar import (
    Calendar,
    easter_sunday,
    french_holidays,
    parse_days,
    parse_intervals,
)

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("year", "easter"),
    [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)),
     (2027, date(2027, 3, 28)), (2038, date(2038, 4, 25)), (2000, date(2000, 4, 23))],
)  # fmt: skip
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


@pytest.mark.parametrize(
    ("year", "easter_monday", "ascension", "whit_monday"),
    [
        (2024, date(2024, 4, 1), date(2024, 5, 9), date(2024, 5, 20)),
        (2025, date(2025, 4, 21), date(2025, 5, 29), date(2025, 6, 9)),
        (2026, date(2026, 4, 6), date(2026, 5, 14), date(2026, 5, 25)),
        (2027, date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17)),
    ],
)
def test_movable_french_holidays(
    year: int, easter_monday: date, ascension: date, whit_monday: date
) -> None:
    days = french_holidays(year)
    assert days[easter_monday] == "Lundi de Pâques"
    assert days[ascension] == "Ascension"
    assert days[whit_monday] == "Lundi de Pentecôte"


def test_fixed_french_holidays_and_count() -> None:
    days = french_holidays(2026)
    assert len(days) == 11
    for month, day in [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]:
        assert date(2026, month, day) in days
    assert date(2026, 12, 26) not in days


def test_alsace_moselle_adds_good_friday_and_st_stephen() -> None:
    days = french_holidays(2026, alsace_moselle=True)
    assert days[date(2026, 4, 3)] == "Vendredi saint"
    assert date(2026, 12, 26) in days
    assert len(days) == 13


def office(**kwargs: object) -> Calendar:
    week = [parse_intervals("08:00-12:30, 13:30-19:00")] * 5 + [parse_intervals("09:00-12:00")]
    week.append(())
    return Calendar("bureau", "Europe/Paris", tuple(week), **kwargs)  # type: ignore[arg-type]


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (paris(2026, 3, 2, 8, 0), True),  # Monday, opening minute
        (paris(2026, 3, 2, 7, 59), False),
        (paris(2026, 3, 2, 12, 45), False),  # lunch break
        (paris(2026, 3, 2, 18, 59), True),
        (paris(2026, 3, 2, 19, 0), False),  # end is exclusive
        (paris(2026, 3, 7, 10, 0), True),  # Saturday morning
        (paris(2026, 3, 8, 10, 0), False),  # Sunday
        (paris(2026, 4, 6, 10, 0), False),  # Easter Monday
        (paris(2026, 5, 14, 10, 0), False),  # Ascension
        (paris(2026, 5, 25, 10, 0), False),  # Whit Monday
        (paris(2026, 5, 26, 10, 0), True),
        (paris(2026, 12, 25, 10, 0), False),
    ],
)
def test_opening_hours(when: datetime, is_open: bool) -> None:
    assert office().is_open(when) is is_open


def test_across_spring_dst_change() -> None:
    # 07:30 UTC is 08:30 in Paris in winter (CET) but 09:30 in summer (CEST).
    cal = Calendar("c", "Europe/Paris", tuple([parse_intervals("09:00-18:00")] * 7), ())
    assert not cal.is_open(datetime(2026, 3, 28, 7, 30, tzinfo=UTC))  # Saturday, CET
    assert cal.is_open(datetime(2026, 3, 29, 7, 30, tzinfo=UTC))  # Sunday, CEST since 01:00 UTC
    # Autumn: the same 16:30 UTC is 18:30 (closed) before the change, 17:30 after.
    assert cal.is_open(datetime(2026, 10, 24, 15, 30, tzinfo=UTC))  # 17:30 CEST
    assert not cal.is_open(datetime(2026, 10, 24, 16, 30, tzinfo=UTC))  # 18:30 CEST
    assert cal.is_open(datetime(2026, 10, 25, 16, 30, tzinfo=UTC))  # 17:30 CET


def test_holiday_is_decided_on_the_local_date() -> None:
    # 23:30 UTC on 24 December is already Christmas in Paris.
    cal = office()
    assert cal.holiday(datetime(2026, 12, 24, 23, 30, tzinfo=UTC)) == "Noël"
    assert cal.holiday(datetime(2026, 12, 24, 22, 30, tzinfo=UTC)) is None


def test_closed_dates_and_no_holidays() -> None:
    cal = office(closed_dates=frozenset({date(2026, 3, 3)}))
    assert not cal.is_open(paris(2026, 3, 3, 10, 0))
    without = office(holiday_sets=())
    assert without.is_open(paris(2026, 4, 6, 10, 0))


def test_naive_time_is_refused() -> None:
    with pytest.raises(ScriptError, match="timezone-aware"):
        office().is_open(datetime(2026, 3, 2, 10, 0))


@pytest.mark.parametrize(
    ("text", "days"),
    [("mon-fri", (0, 1, 2, 3, 4)), ("sam", (5,)), ("lun,mer", (0, 2)), ("samedi-dimanche", (5, 6))],
)
def test_parse_days(text: str, days: tuple[int, ...]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["fri-mon", "weekend", "mon-xyz"])
def test_bad_days(text: str) -> None:
    with pytest.raises(ScriptError):
        parse_days(text)


@pytest.mark.parametrize(
    "text", ["8h-19h", "19:00-08:00", "25:00-26:00", "08:00-08:00", "09:61-10:00"]
)
def test_bad_intervals(text: str) -> None:
    with pytest.raises(ScriptError):
        parse_intervals(text)


def test_closed_and_end_of_day() -> None:
    assert parse_intervals("fermé") == ()
    assert str(parse_intervals("22:00-24:00")[0]) == "22:00-24:00"
