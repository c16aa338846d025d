"""Tier 2: signed webhooks delivered to a real in-process aiohttp receiver."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from callcenter.crm.settings import WebhookEndpoint, WebhookSettings
from callcenter.crm.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    verify,
)
from callcenter.errors import ConfigError

SECRET = "s3cret-shared-with-the-receiver"


@dataclass
class Receiver:
    """Verifies every request like a customer's endpoint would."""

    statuses: list[int] = field(default_factory=list)  # answers to give, then 200
    got: list[dict[str, object]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bad_signatures: int = 0
    hold: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET.encode(), body, request.headers, now=time.time()):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.hold is not None:
            await asyncio.wait_for(self.hold.wait(), 10)
        self.headers.append(dict(request.headers))
        self.got.append(json.loads(body))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield hook, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        if hook.hold is not None:
            hook.hold.set()
        await runner.cleanup()


def sender(url: str, **changes: object) -> tuple[WebhookSender, list[float]]:
    delays: list[float] = []

    async def no_wait(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    endpoint = {"url": url, "secret": SECRET}
    endpoint.update(changes.pop("endpoint", {}))  # type: ignore[call-overload]
    values: dict[str, object] = {
        "endpoints": [endpoint],
        "workers": 1,
        "timeout": 0.5,
        "backoff_min": 1.0,
        "backoff_max": 4.0,
        "max_attempts": 5,
    }
    values.update(changes)
    sleep: Callable[[float], Awaitable[None]] = no_wait
    return WebhookSender(WebhookSettings.model_validate(values), sleep=sleep), delays


async def test_events_arrive_signed_in_order(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    webhooks, _ = sender(url)
    await webhooks.start()
    try:
        assert webhooks.submit("call.started", {"interaction_id": "i-1", "queue": "support"}) == 1
        webhooks.submit("call.answered", {"interaction_id": "i-1", "agent_id": "a03"})
        webhooks.submit("call.ended", {"interaction_id": "i-1", "note": "Élodie ☎"})
        await webhooks.flush()
    finally:
        await webhooks.stop()
    assert hook.bad_signatures == 0
    assert [g["event"] for g in hook.got] == ["call.started", "call.answered", "call.ended"]
    assert [g["sequence"] for g in hook.got] == [1, 2, 3]
    assert hook.got[2]["data"] == {"interaction_id": "i-1", "note": "Élodie ☎"}
    assert hook.headers[1][EVENT_HEADER] == "call.answered"
    assert hook.headers[0]["Content-Type"] == "application/json"
    assert webhooks.stats.delivered == 3


async def test_failures_are_retried_with_backoff_under_the_same_delivery_id(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    hook.statuses = [503, 500, 429]
    webhooks, delays = sender(url)
    await webhooks.start()
    try:
        webhooks.submit("call.ended", {"interaction_id": "i-2"})
        await webhooks.flush()
    finally:
        await webhooks.stop()
    assert len(hook.got) == 4
    assert len({h[DELIVERY_HEADER] for h in hook.headers}) == 1
    assert all(h[TIMESTAMP_HEADER].isdigit() for h in hook.headers)
    # Backoff 1, 2, 4 s, each with jitter between half and all of it.
    assert [round(d) for d in delays] != []
    for delay, nominal in zip(delays, (1.0, 2.0, 4.0), strict=True):
        assert nominal / 2 <= delay <= nominal
    assert (webhooks.stats.delivered, webhooks.stats.retries, webhooks.stats.failed) == (1, 3, 0)


async def test_a_refusal_is_final_and_attempts_are_bounded(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.statuses = [400, 500, 500, 500]
    webhooks, delays = sender(url, max_attempts=3)
    await webhooks.start()
    try:
        webhooks.submit("call.ended", {"interaction_id": "refused"})  # 400: not retried
        await webhooks.flush()
        webhooks.submit("call.ended", {"interaction_id": "down"})  # 500 x3: gives up
        await webhooks.flush()
    finally:
        await webhooks.stop()
    assert len(hook.got) == 4
    assert len(delays) == 2
    assert (webhooks.stats.delivered, webhooks.stats.failed) == (0, 2)


async def test_a_wrong_secret_is_refused_by_the_receiver(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    webhooks, _ = sender(url, max_attempts=1, endpoint={"secret": "not-the-receivers-secret"})
    await webhooks.start()
    try:
        webhooks.submit("call.started", {"interaction_id": "i-3"})
        await webhooks.flush()
    finally:
        await webhooks.stop()
    assert hook.bad_signatures == 1
    assert hook.got == []
    assert webhooks.stats.failed == 1


async def test_submit_never_blocks_a_full_queue_drops_and_stop_cancels_in_flight(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    hook.hold = asyncio.Event()  # the receiver hangs on every request
    webhooks, _ = sender(url, queue_size=2, timeout=5.0)
    await webhooks.start()
    try:
        started = time.monotonic()
        webhooks.submit("call.started", {"n": 0})
        await asyncio.sleep(0.1)  # the worker takes it and waits on the receiver
        queued = [webhooks.submit("call.started", {"n": n}) for n in range(1, 6)]
        assert time.monotonic() - started < 0.5
        assert queued == [1, 1, 0, 0, 0]
        assert webhooks.stats.dropped == 3
        assert webhooks.backlog == 2
    finally:
        await webhooks.stop()  # cancels the worker in the middle of its POST
    assert webhooks.backlog == 2  # lost on stop, and logged


async def test_endpoints_get_only_the_events_they_asked_for(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    webhooks, _ = sender(url, endpoint={"events": ["call.disposition"]})
    await webhooks.start()
    try:
        assert webhooks.submit("call.started", {"interaction_id": "i-4"}) == 0
        assert webhooks.submit("call.disposition", {"interaction_id": "i-4", "code": "ok"}) == 1
        await webhooks.flush()
    finally:
        await webhooks.stop()
    assert [g["event"] for g in hook.got] == ["call.disposition"]


def test_secrets_must_be_long_enough() -> None:
    endpoint = WebhookEndpoint.model_validate({"url": "https://hooks.example/", "secret": "short"})
    with pytest.raises(ConfigError, match="at least 16"):
        endpoint.resolved_secret()
