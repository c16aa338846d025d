"""How the serving process uses Python's cyclic garbage collector.

Measured with ``bench/e2e_load.py`` at 30 calls/s (docs/performance.md):

- a full collection walks every object the collector tracks: the ~125,000
  objects of the imports and the configuration, then the live calls' sessions
  and the interactions kept for transfers and dispositions; it paused the
  event loop for 70 ms of CPU (over 100 ms of wall time on a busy machine)
  several times a minute, delaying every ring behind it;
- it found nothing to free: refcounting frees what a call leaves (the last
  cycle, CPython's selector transport, is broken when a connection closes:
  :mod:`callcenter.adapters.tcp`). Python starts a full collection when the
  objects promoted to the oldest generation reach a quarter of it, which a
  steady flow of calls reaches however little garbage it makes.

So, while serving: the start-up heap is frozen (never walked again), the
young generations are collected as usual, and the full collection runs on a
clock instead (``FULL_COLLECTION_INTERVAL``), logged with what it freed: a
cycle a future change introduces is still freed, within ten minutes, and shows
in the log. Not for a process that starts many daemons (tests): what is
frozen is never collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator

import structlog

from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.heap")

FULL_COLLECTION_INTERVAL = 600.0
"""Seconds between two full collections while serving: cyclic garbage (a
request's error kept with its traceback during a database outage) waits at
most this long; one pause per ten minutes stays far below any p99."""
_NEVER = 1 << 30
"""A third threshold no count of young collections reaches."""


@contextlib.asynccontextmanager
async def serving_heap(interval: float = FULL_COLLECTION_INTERVAL) -> AsyncIterator[None]:
    """The collector as a long-running daemon wants it, restored on exit."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], _NEVER)
    task = asyncio.create_task(_collect_every(interval), name="heap-full-collection")
    try:
        yield
    finally:
        await cancel_and_wait([task])
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def _collect_every(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        began = time.perf_counter()
        freed = gc.collect()
        log.info(
            "heap.full_collection",
            freed=freed,
            ms=round((time.perf_counter() - began) * 1000, 1),
        )
