"""The CTI bridge: call-path events in, desktop events out, CRM on the side.

The call path reports synchronously (:meth:`CtiBridge.observe`); the
projector decides what each desktop is told and the WebSocket server journals
and pushes it. When a call enters a queue the bridge starts looking its
number up in the CRM, so that the contact card is usually there by the time
an agent rings; if it arrives later, the ringing agent gets a
``call.contact`` event with the completed screen-pop. A slow or failing CRM
never delays a ring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog

from callcenter.adapters.cti_ws import CtiServer
from callcenter.clock import Clock
from callcenter.cti.journal import SUPERVISORS, agent_stream
from callcenter.cti.projector import Projector, Publication
from callcenter.cti.views import LiveViews
from callcenter.errors import CallCenterError
from callcenter.stats.events import Offered, StatsEvent
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.cti")

ContactLookup = Callable[[str], Awaitable[dict[str, Any] | None]]
"""Caller number -> ``{"contact": {...}, "history": [...]}`` or None."""

MAX_REMEMBERED = 5_000
# A queue's figures go to the wallboards at most this often: recounting a
# queue's calls for every event was on the path of every ring at 30 calls/s.
QUEUE_UPDATE_DELAY = 0.25


class CtiBridge:
    def __init__(
        self,
        views: LiveViews,
        server: CtiServer,
        clock: Clock,
        lookup: ContactLookup | None = None,
        *,
        kpis: Callable[[], dict[str, Any]] | None = None,
        kpi_interval: float = 5.0,
        lookup_timeout: float = 2.0,
    ) -> None:
        self.views = views
        self.server = server
        self._clock = clock
        self._lookup = lookup
        self.lookup_timeout = lookup_timeout
        self.projector = Projector(views)
        self._lookups: set[asyncio.Task[None]] = set()
        self._kpis = kpis
        self.kpi_interval = kpi_interval
        self._kpi_task: asyncio.Task[None] | None = None
        self._last_kpis: dict[str, Any] | None = None
        self._dirty_queues: set[str] = set()
        self._queue_flush: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        if self._kpis is not None:
            self._kpi_task = asyncio.create_task(self._kpi_loop(), name="cti-kpis")

    async def _kpi_loop(self) -> None:
        """Queue KPIs to the wallboards, every few seconds when they change
        (they move with time as well as with events: sliding windows)."""
        assert self._kpis is not None
        while True:
            figures = self._kpis()
            if figures != self._last_kpis:
                self._last_kpis = figures
                self.publish(
                    Publication(SUPERVISORS, self._clock.wall(), "queue.kpis", {"queues": figures})
                )
            await asyncio.sleep(self.kpi_interval)

    def observe(self, event: StatsEvent) -> None:
        if isinstance(event, Offered) and self._lookup is not None:
            self._start_lookup(event.interaction_id)
        offset = self._clock.wall() - self._clock.now()
        for publication in self.projector.apply(event):
            self.publish(replace(publication, at=round(publication.at + offset, 3)))
        queue = self.projector.touched_queue(event)
        if queue is not None:
            self._dirty_queues.add(queue)
            if self._queue_flush is None:
                loop = asyncio.get_running_loop()
                self._queue_flush = loop.call_later(QUEUE_UPDATE_DELAY, self._flush_queues)

    def _flush_queues(self) -> None:
        self._queue_flush = None
        dirty, self._dirty_queues = self._dirty_queues, set()
        for queue in sorted(dirty):
            self.publish(self.projector.queue_update(queue, round(self._clock.wall(), 3)))

    def publish(self, publication: Publication) -> None:
        self.server.publish(publication)

    async def stop(self) -> None:
        if self._queue_flush is not None:
            self._queue_flush.cancel()
            self._queue_flush = None
        await cancel_and_wait([*self._lookups, *([self._kpi_task] if self._kpi_task else [])])
        self._kpi_task = None
        await self.server.close_all()

    def _start_lookup(self, interaction_id: str) -> None:
        record = self.views.callpath.recent(interaction_id)
        number = record.callback_number or record.caller_number if record else None
        if not number or interaction_id in self.views.contacts:
            return
        task = asyncio.create_task(self._look_up(interaction_id, number), name="cti-crm")
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def _look_up(self, interaction_id: str, number: str) -> None:
        assert self._lookup is not None
        try:
            async with asyncio.timeout(self.lookup_timeout):
                found = await self._lookup(number)
        except (TimeoutError, CallCenterError) as exc:
            log.warning("cti.crm_lookup_failed", interaction=interaction_id, error=repr(exc))
            return
        if found is None:
            return
        contacts = self.views.contacts
        contacts[interaction_id] = found
        while len(contacts) > MAX_REMEMBERED:
            del contacts[next(iter(contacts))]
        record = self.views.callpath.recent(interaction_id)
        agent = record.agent_id if record is not None else None
        if agent is not None and self.views.interaction_of(agent) == interaction_id:
            pop = self.views.screen_pop(interaction_id)
            if pop is not None:
                self.publish(
                    Publication(agent_stream(agent), self._clock.wall(), "call.contact", pop)
                )
