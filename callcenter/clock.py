"""Injected time.

Pure cores never read the clock: they receive timestamps with their events.
Adapters take a :class:`Clock` so that tests and simulations can drive time.
"""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.errors import ConfigError


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (only differences are meaningful)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch, for records shown to people."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class ShiftedClock(SystemClock):
    """Real time, but the wall clock shows another moment: a live test of an
    IVR at 3 a.m. on Christmas Day, with timers that still run."""

    def __init__(self, wall_at_start: float) -> None:
        self._shift = wall_at_start - time.time()

    def wall(self) -> float:
        return time.time() + self._shift


class ManualClock:
    """A clock that moves only when told to: for tests and simulations."""

    def __init__(self, start: float = 0.0, wall_offset: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_offset

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds


def time_zone(name: str, what: str = "time zone") -> ZoneInfo:
    """The IANA zone ``name``; a ConfigError naming ``what`` if there is none.

    ZoneInfo raises three different errors for names it cannot use (unknown,
    malformed, or a path the file system refuses, e.g. a directory or a name
    too long): all are the same mistake to whoever typed the name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"{what}: unknown time zone {name[:60]!r}") from None


def month_bounds(wall: float, tz: tzinfo) -> tuple[datetime, datetime]:
    """The calendar month holding the epoch ``wall`` in ``tz``: its first
    instant and the next month's (aware datetimes; the end is excluded)."""
    local = datetime.fromtimestamp(wall, tz)
    start = datetime(local.year, local.month, 1, tzinfo=tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return start, datetime(year, month, 1, tzinfo=tz)
