"""Outgoing webhooks: call events as signed JSON POSTs, off the call path.

Events: ``call.started``, ``call.answered``, ``call.ended``,
``call.disposition``. Each POST carries::

    Content-Type: application/json
    X-Callcenter-Event: call.ended
    X-Callcenter-Delivery: <uuid, the same on every retry of one event>
    X-Callcenter-Timestamp: <unix seconds when this attempt was signed>
    X-Callcenter-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

The timestamp is inside the signed material, so a captured request cannot be
replayed later with a fresh timestamp: receivers reject a timestamp more than
5 minutes from their clock (:func:`verify`) and drop delivery ids they have
already seen (retries re-sign with a new timestamp, the body and delivery id
stay the same).

:func:`build_signed` (pure) builds and signs; :class:`WebhookSender` owns one
bounded queue and a few worker tasks per endpoint. ``submit`` never blocks
and never raises: when a queue is full the event is dropped and counted.
Failures (connection, timeout, HTTP 408/429/5xx) are retried with
exponential backoff up to ``max_attempts``; other answers are final. Delivery
is at least once while the daemon runs; events still queued when it stops
are lost (counted in the log). With more than one worker per endpoint, events
may arrive out of order: ``sequence`` in the body orders them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import structlog

from callcenter.crm.settings import WebhookEndpoint, WebhookEvent, WebhookSettings
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.crm.webhooks")

SIGNATURE_HEADER = "X-Callcenter-Signature"
TIMESTAMP_HEADER = "X-Callcenter-Timestamp"
EVENT_HEADER = "X-Callcenter-Event"
DELIVERY_HEADER = "X-Callcenter-Delivery"
TOLERANCE = 300.0
_RETRY_STATUS = {408, 425, 429}


@dataclass(frozen=True, slots=True)
class SignedRequest:
    body: bytes
    headers: dict[str, str]


def encode_body(
    event: str, data: Mapping[str, Any], *, delivery_id: str, created_at: float, sequence: int
) -> bytes:
    """The JSON body: compact UTF-8, keys sorted (any byte-exact body works:
    receivers verify the raw bytes they got, never a re-serialisation)."""
    document = {
        "id": delivery_id,
        "event": event,
        "created_at": round(created_at, 3),
        "sequence": sequence,
        "data": data,
    }
    return json.dumps(
        document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    ).encode()


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign_headers(
    secret: bytes, body: bytes, *, event: str, delivery_id: str, timestamp: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def build_signed(
    event: str,
    data: Mapping[str, Any],
    secret: bytes,
    *,
    delivery_id: str,
    created_at: float,
    timestamp: int,
    sequence: int = 0,
) -> SignedRequest:
    """Build and sign one webhook request (pure: ids and times are given)."""
    body = encode_body(
        event, data, delivery_id=delivery_id, created_at=created_at, sequence=sequence
    )
    headers = sign_headers(secret, body, event=event, delivery_id=delivery_id, timestamp=timestamp)
    return SignedRequest(body, headers)


def verify(
    secret: bytes,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance: float = TOLERANCE,
) -> bool:
    """What a receiver does: the signature matches the raw body and the
    timestamp, and the timestamp is within *tolerance* seconds of *now*."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    if abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(given.encode(), signature(secret, int(stamp), body).encode())


class CallFacts(Protocol):
    """What :func:`call_data` reads from a call (``callpath.service.CallRecord``)."""

    interaction_id: str
    caller_number: str
    dnis: str
    queue: str
    language: str
    agent_id: str | None
    disposition: str | None
    notes: str
    context: dict[str, object]


def call_data(call: CallFacts, **extra: Any) -> dict[str, Any]:
    """The ``data`` of a call event: who called, where it went, who took it."""
    customer = call.context.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else None
    ivr = call.context.get("ivr")
    if customer_id is None and isinstance(ivr, dict):
        customer_id = ivr.get("customer_id")
    return {
        "interaction_id": call.interaction_id,
        "caller_number": call.caller_number,
        "dnis": call.dnis,
        "queue": call.queue,
        "language": call.language,
        "agent_id": call.agent_id,
        "customer_id": customer_id,
        "disposition": call.disposition,
        "notes": call.notes or None,
        **extra,
    }


@dataclass
class WebhookStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0


@dataclass
class _Delivery:
    event: str
    delivery_id: str
    body: bytes


@dataclass
class _Endpoint:
    config: WebhookEndpoint
    secret: bytes
    queue: asyncio.Queue[_Delivery]
    events: frozenset[str]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


Sleep = Callable[[float], Awaitable[None]]


class WebhookSender:
    def __init__(
        self,
        settings: WebhookSettings,
        *,
        session: aiohttp.ClientSession | None = None,
        wall: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._session = session
        self._own_session = session is None
        self._wall = wall
        self._sleep = sleep
        self._sequence = 0
        self.stats = WebhookStats()
        self._endpoints = [
            _Endpoint(
                config=e,
                secret=e.resolved_secret(),
                queue=asyncio.Queue(settings.queue_size),
                events=frozenset(e.events),
            )
            for e in settings.endpoints
        ]

    @property
    def backlog(self) -> int:
        return sum(e.queue.qsize() for e in self._endpoints)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        for number, endpoint in enumerate(self._endpoints):
            endpoint.tasks = [
                asyncio.create_task(self._work(endpoint), name=f"webhook-{number}-{worker}")
                for worker in range(self.settings.workers)
            ]

    async def stop(self, drain: float = 0.0) -> None:
        """Stop the workers (after up to *drain* seconds to empty the queues)."""
        if drain > 0:
            try:
                async with asyncio.timeout(drain):
                    await self.flush()
            except TimeoutError:
                pass
        await cancel_and_wait([t for e in self._endpoints for t in e.tasks])
        for endpoint in self._endpoints:
            endpoint.tasks = []
        if self.backlog:
            log.warning("webhooks.lost_on_stop", events=self.backlog)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def flush(self) -> None:
        """Wait until every queued event is delivered or given up (tests)."""
        for endpoint in self._endpoints:
            await endpoint.queue.join()

    def submit(self, event: WebhookEvent, data: Mapping[str, Any]) -> int:
        """Queue *event* for every endpoint that wants it; never blocks.
        Returns how many endpoints will get it."""
        wanted = [e for e in self._endpoints if event in e.events]
        if not wanted:
            return 0
        self._sequence += 1
        created = self._wall()
        queued = 0
        for endpoint in wanted:
            # One delivery id per endpoint and event: receivers dedupe on it.
            delivery_id = str(uuid.uuid4())
            try:
                body = encode_body(
                    event,
                    data,
                    delivery_id=delivery_id,
                    created_at=created,
                    sequence=self._sequence,
                )
            except (TypeError, ValueError) as exc:  # a circular structure, say
                log.error("webhooks.unencodable", webhook=event, error=str(exc))
                return 0
            try:
                endpoint.queue.put_nowait(_Delivery(event, delivery_id, body))
            except asyncio.QueueFull:
                self.stats.dropped += 1
                log.warning("webhooks.dropped", webhook=event, url=endpoint.config.url)
                continue
            self.stats.queued += 1
            queued += 1
        return queued

    async def _work(self, endpoint: _Endpoint) -> None:
        while True:
            delivery = await endpoint.queue.get()
            try:
                await self._deliver(endpoint, delivery)
            except Exception:
                self.stats.failed += 1
                log.exception("webhooks.failed", webhook=delivery.event, url=endpoint.config.url)
            finally:
                endpoint.queue.task_done()

    async def _deliver(self, endpoint: _Endpoint, delivery: _Delivery) -> None:
        settings = self.settings
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        for attempt in range(1, settings.max_attempts + 1):
            headers = sign_headers(
                endpoint.secret,
                delivery.body,
                event=delivery.event,
                delivery_id=delivery.delivery_id,
                timestamp=int(self._wall()),
            )
            problem: str
            try:
                async with self._session.post(
                    endpoint.config.url,
                    data=delivery.body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                if 200 <= status < 300:
                    self.stats.delivered += 1
                    return
                problem = f"HTTP {status}"
                if status < 500 and status not in _RETRY_STATUS:
                    break  # the receiver refused it: retrying will not help
            except TimeoutError:
                problem = f"no answer within {settings.timeout:g} s"
            except aiohttp.ClientError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == settings.max_attempts:
                break
            delay = min(settings.backoff_max, settings.backoff_min * 2 ** (attempt - 1))
            self.stats.retries += 1
            log.info(
                "webhooks.retry",
                webhook=delivery.event,
                url=endpoint.config.url,
                attempt=attempt,
                problem=problem,
            )
            await self._sleep(delay * random.uniform(0.5, 1.0))
        self.stats.failed += 1
        log.warning(
            "webhooks.gave_up",
            webhook=delivery.event,
            url=endpoint.config.url,
            delivery=delivery.delivery_id,
            problem=problem,
        )
