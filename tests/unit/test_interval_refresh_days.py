"""Tier 1: which days the daemon's interval refresher recomputes."""

from __future__ import annotations

from datetime import UTC, date
from zoneinfo import ZoneInfo

import pytest

from callcenter.config import IntervalRefreshConfig
from callcenter.errors import ConfigError
from callcenter.stats import StatsConfig
from callcenter.store.interval_refresher import IntervalRefresher, refresh_periods

D = 1_700_006_400.0  # 2023-11-15 00:00 UTC
DAY = 86_400.0


def test_the_current_and_previous_utc_days_oldest_first() -> None:
    assert refresh_periods(D + 10 * 3600, 2, UTC) == [
        (date(2023, 11, 14), D - DAY, D),
        (date(2023, 11, 15), D, D + DAY),
    ]
    assert refresh_periods(D, 1, UTC) == [(date(2023, 11, 15), D, D + DAY)]  # midnight: today
    assert refresh_periods(D - 0.001, 1, UTC) == [(date(2023, 11, 14), D - DAY, D)]


def test_local_days_at_a_quarter_hour_offset_and_across_a_dst_change() -> None:
    kathmandu = ZoneInfo("Asia/Kathmandu")  # UTC+5:45
    ((_, lo, hi),) = refresh_periods(D + 10 * 3600, 1, kathmandu)
    assert (lo, hi) == (D - 5.75 * 3600, D - 5.75 * 3600 + DAY)  # 15:45 there
    assert lo % 900 == 0
    # Hourly rows: the day is widened to whole hours.
    ((_, lo, hi),) = refresh_periods(D + 10 * 3600, 1, kathmandu, 3600)
    assert (lo, hi) == (D - 6 * 3600, D - 5 * 3600 + DAY)
    # 2024-10-27, Paris: 25 hours.
    paris = ZoneInfo("Europe/Paris")
    autumn = 1_729_980_000.0  # 2024-10-27 00:00 +02:00
    ((day, lo, hi),) = refresh_periods(autumn + 12 * 3600, 1, paris)
    assert (day, lo, hi - lo) == (date(2024, 10, 27), autumn, 25 * 3600)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="interval"):
        IntervalRefresher(None, StatsConfig(), interval=0)
    with pytest.raises(ConfigError, match="days"):
        IntervalRefresher(None, StatsConfig(), days=0)
    with pytest.raises(ValueError, match="time zone"):
        IntervalRefreshConfig(tz="Europe/Nowhere")
    assert IntervalRefreshConfig().zone() == ZoneInfo("UTC")
    assert (IntervalRefreshConfig().interval, IntervalRefreshConfig().days) == (300.0, 2)
