"""The running daemon keeps the 15-minute interval table fresh.

:class:`IntervalRefresher` owns one task that, every ``interval`` seconds,
recomputes the current local day and the ``days - 1`` days before it with
:func:`callcenter.store.stats.recompute_intervals` — what ``callcenter
report recompute`` does by hand, so reports and the day's figures are at
most one refresh old. Recompute is idempotent and serialised by a table lock
in the store, so the command and the refresher may run at the same time.

A failed refresh (database down, a query error, a bug) is logged and tried
again at the next one; it never ends the task, let alone the daemon. A day
is one recompute (one transaction): a failure on one day does not stop the
others.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from datetime import UTC, date, timedelta, tzinfo

import asyncpg
import structlog

from callcenter.clock import Clock, SystemClock
from callcenter.errors import ConfigError, StoreError
from callcenter.stats.model import StatsConfig
from callcenter.stats.reports import day_of, day_start
from callcenter.store.stats import AgentInfo, recompute_intervals
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.store.interval_refresher")


def refresh_periods(
    now: float, days: int, tz: tzinfo, interval: int = 900
) -> list[tuple[date, float, float]]:
    """The local days to recompute at epoch ``now``, oldest first: (day, start, end),
    each widened to whole intervals (a day of a zone at a half-hour offset and
    hourly intervals still recomputes whole rows)."""
    if days < 1:
        raise ConfigError(f"interval_refresh.days must be >= 1, not {days!r}")
    today = day_of(now, tz)
    periods: list[tuple[date, float, float]] = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        lo = day_start(day, tz)
        hi = day_start(day + timedelta(days=1), tz)
        periods.append(
            (
                day,
                float(math.floor(lo / interval) * interval),
                float(math.ceil(hi / interval) * interval),
            )
        )
    return periods


class IntervalRefresher:
    """Recompute the interval table of the last ``days`` local days every
    ``interval`` seconds, from :meth:`start` until :meth:`stop`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: StatsConfig,
        *,
        agents: Mapping[str, AgentInfo] | None = None,
        interval: float = 300.0,
        days: int = 2,
        tz: tzinfo = UTC,
        clock: Clock | None = None,
    ) -> None:
        if not interval > 0:
            raise ConfigError(f"interval_refresh.interval must be > 0 seconds, not {interval!r}")
        if days < 1:
            raise ConfigError(f"interval_refresh.days must be >= 1, not {days!r}")
        self._pool = pool
        self._config = config
        self._agents = dict(agents or {})
        self.interval = interval
        self.days = days
        self._tz = tz
        self._clock: Clock = clock or SystemClock()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.runs = 0
        """Refreshes finished, failed ones included."""
        self.failures = 0
        """Days whose recompute failed, since the start."""
        self.last_rows: int | None = None
        """Rows the last refresh left in its days (None before one succeeded)."""
        self.last_error: str | None = None
        """The last refresh's error, None when it succeeded."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="interval-refresher")
            log.info(
                "interval_refresh.started", interval=self.interval, days=self.days, tz=str(self._tz)
            )

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def refresh(self) -> int:
        """Recompute the days once, now; return the rows they hold. A day that
        fails is logged and skipped (``last_error`` says why); the others are
        still recomputed."""
        async with self._lock:
            started = time.monotonic()
            rows = 0
            errors: list[str] = []
            for day, lo, hi in refresh_periods(
                self._clock.wall(), self.days, self._tz, self._config.interval
            ):
                try:
                    rows += await recompute_intervals(
                        self._pool, lo, hi, self._config, agents=self._agents
                    )
                except Exception as exc:  # never the task's end: the next refresh retries
                    self.failures += 1
                    errors.append(f"{day.isoformat()}: {exc}")
                    log.error(
                        "interval_refresh.failed",
                        day=day.isoformat(),
                        error=str(exc) or repr(exc),
                        error_type=type(exc).__name__,
                        retry_in=self.interval,
                        # A traceback for what the store did not expect (a bug).
                        exc_info=not isinstance(exc, (StoreError, ConfigError)),
                    )
            self.runs += 1
            self.last_error = "; ".join(errors) or None
            if not errors:
                self.last_rows = rows
                log.debug(
                    "interval_refresh.done",
                    days=self.days,
                    rows=rows,
                    seconds=round(time.monotonic() - started, 3),
                )
            return rows

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # refresh() catches per day; this is a bug's last stop
                log.exception("interval_refresh.crashed", retry_in=self.interval)
            await asyncio.sleep(self.interval)
