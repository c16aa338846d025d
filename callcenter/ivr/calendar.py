"""Opening hours and public holidays.

Times are compared in the calendar's own time zone (zoneinfo), so a script
written as "08:00-19:00 Europe/Paris" stays right across DST changes whatever
zone the server runs in. French public holidays are built in; the movable ones
derive from Easter (Gregorian computus).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from callcenter.clock import time_zone
from callcenter.errors import ConfigError, ScriptError

DAY_NAMES: dict[str, int] = {
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
    "lun": 0, "mar": 1, "mer": 2, "jeu": 3, "ven": 4, "sam": 5, "dim": 6,
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4,
    "saturday": 5, "sunday": 6,
    "lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4,
    "samedi": 5, "dimanche": 6,
}  # fmt: skip


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def french_holidays(year: int, alsace_moselle: bool = False) -> dict[date, str]:
    """Public holidays (jours fériés) of metropolitan France for *year*.

    Alsace-Moselle adds Good Friday and St Stephen's day (local law).
    """
    easter = easter_sunday(year)
    days = {
        date(year, 1, 1): "Jour de l'an",
        easter + timedelta(days=1): "Lundi de Pâques",
        date(year, 5, 1): "Fête du Travail",
        date(year, 5, 8): "Victoire 1945",
        easter + timedelta(days=39): "Ascension",
        easter + timedelta(days=50): "Lundi de Pentecôte",
        date(year, 7, 14): "Fête nationale",
        date(year, 8, 15): "Assomption",
        date(year, 11, 1): "Toussaint",
        date(year, 11, 11): "Armistice 1918",
        date(year, 12, 25): "Noël",
    }
    if alsace_moselle:
        days[easter - timedelta(days=2)] = "Vendredi saint"
        days[date(year, 12, 26)] = "Saint-Étienne"
    return dict(sorted(days.items()))


HOLIDAY_SETS = ("fr", "fr-alsace-moselle")


def holidays_for(sets: tuple[str, ...], year: int) -> dict[date, str]:
    days: dict[date, str] = {}
    for name in sets:
        days.update(french_holidays(year, alsace_moselle=name == "fr-alsace-moselle"))
    return days


@dataclass(frozen=True)
class Interval:
    """Minutes since local midnight, end exclusive (24:00 allowed as an end)."""

    start: int
    end: int

    def __str__(self) -> str:
        start, end = divmod(self.start, 60), divmod(self.end, 60)
        return f"{start[0]:02d}:{start[1]:02d}-{end[0]:02d}:{end[1]:02d}"


_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_intervals(text: str) -> tuple[Interval, ...]:
    """``"08:00-12:30, 13:30-19:00"`` or ``"closed"``."""
    if text.strip().lower() in ("closed", "fermé", "ferme"):
        return ()
    intervals: list[Interval] = []
    for part in text.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise ScriptError(f"bad time range {part.strip()!r}: expected HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
            raise ScriptError(f"bad time in {part.strip()!r}")
        if end <= start:
            raise ScriptError(
                f"time range {part.strip()!r} ends before it starts: split a night "
                "shift into two ranges (e.g. 22:00-24:00 and 00:00-06:00)"
            )
        intervals.append(Interval(start, end))
    return tuple(intervals)


def parse_days(text: str) -> tuple[int, ...]:
    """``"mon-fri"``, ``"sat"``, ``"lun-ven"``, ``"mon,wed"`` -> weekday numbers."""
    days: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ScriptError(
                f"bad day {part!r}: expected mon..sun or lun..dim, or a range like mon-fri"
            )
        lo = DAY_NAMES[first]
        hi = DAY_NAMES[last] if last else lo
        if hi < lo:
            raise ScriptError(f"day range {part!r} goes backwards")
        days.extend(range(lo, hi + 1))
    return tuple(days)


def zone(name: str) -> ZoneInfo:
    try:
        return time_zone(name)
    except ConfigError as exc:
        raise ScriptError(str(exc)) from None


@dataclass(frozen=True)
class Calendar:
    """Weekly opening hours in a time zone, minus holidays and closed dates."""

    name: str
    timezone: str
    week: tuple[tuple[Interval, ...], ...]  # index 0 = Monday
    holiday_sets: tuple[str, ...] = ("fr",)
    closed_dates: frozenset[date] = field(default_factory=frozenset)

    def local(self, now: datetime) -> datetime:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ScriptError("opening hours need a timezone-aware time")
        return now.astimezone(zone(self.timezone))

    def holiday(self, now: datetime) -> str | None:
        """Name of the holiday or closed date at *now*, if any."""
        today = self.local(now).date()
        if today in self.closed_dates:
            return "fermeture exceptionnelle"
        return holidays_for(self.holiday_sets, today.year).get(today)

    def is_open(self, now: datetime) -> bool:
        local = self.local(now)
        if self.holiday(now) is not None:
            return False
        minute = local.hour * 60 + local.minute
        return any(i.start <= minute < i.end for i in self.week[local.weekday()])
