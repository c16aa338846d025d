"""Tier 2: the HTTP CRM adapter against a real in-process aiohttp server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from callcenter.clock import ManualClock
from callcenter.crm.csv_import import parse_csv
from callcenter.crm.http import HttpCrm
from callcenter.crm.memory import MemoryCrm
from callcenter.crm.model import Contact
from callcenter.crm.pins import PinHasher
from callcenter.crm.settings import HttpCrmSettings, PinHashSettings
from callcenter.errors import ProtocolError, StoreError

SEED = Path(__file__).parents[2] / "ivr_scripts" / "fixtures" / "contacts.csv"
TOKEN = "t0ken-for-the-crm"

MARTIN = {
    "uid": "EXT-1",
    "display_name": "Claire Martin (CRM)",
    "phones": ["+33612345678"],
    "flags": {"vip": True},
    "tier": "platinum",
}


@dataclass
class FakeCrm:
    """The external CRM: answers by phone number; remembers what it was asked."""

    seen: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def contacts(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.raw_path)
        self.auth.append(request.headers.get("Authorization"))
        phone = request.query.get("phone", "")
        if phone == "0612345678":
            return web.json_response({"results": [MARTIN]})
        if phone == "0611111111":  # hangs: the adapter's timeout must fire
            await asyncio.wait_for(self.release.wait(), 10)
            return web.json_response({"results": []})
        if phone == "0698765432":
            return web.Response(status=503, text="maintenance")
        if phone == "0639984567":
            return web.Response(text="<html>login</html>", content_type="text/html")
        if phone == "0639987701":
            return web.json_response({"results": [{"display_name": "no id"}]})
        return web.json_response({"results": []})

    async def account(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.raw_path)
        if request.match_info["account"] == "12345678":
            return web.json_response({"results": [MARTIN]})
        raise web.HTTPNotFound()


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeCrm, str]]:
    fake = FakeCrm()
    app = web.Application()
    app.router.add_get("/api/contacts", fake.contacts)
    app.router.add_get("/api/accounts/{account}", fake.account)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        fake.release.set()
        await runner.cleanup()


def settings(base: str, **changes: object) -> HttpCrmSettings:
    values: dict[str, object] = {
        "by_number_url": base + "/api/contacts?phone={number}",
        "by_account_url": base + "/api/accounts/{account}",
        "timeout": 0.3,
        "token": TOKEN,
        "results_path": "results",
        "field_map": {
            "id": "uid",
            "name": "display_name",
            "vip": "flags.vip",
            "data.segment": "tier",
        },
    }
    values.update(changes)
    return HttpCrmSettings.model_validate(values)


def builtin() -> MemoryCrm:
    parsed = parse_csv(SEED.read_text(encoding="utf-8"))
    cheap = PinHasher(PinHashSettings(time_cost=1, memory_cost_kib=8, parallelism=1))
    return MemoryCrm(parsed.contacts, hasher=cheap)


async def test_found_mapped_cached_then_expired(server: tuple[FakeCrm, str]) -> None:
    fake, base = server
    clock = ManualClock()
    async with aiohttp.ClientSession() as session:
        crm = HttpCrm(session, settings(base), fallback=builtin(), clock=clock)
        first = await crm.by_number("+33 6 12 34 56 78")
        assert first == Contact(
            id="EXT-1",
            name="Claire Martin (CRM)",
            phones=("0612345678",),
            vip=True,
            data={"segment": "platinum"},
        )
        assert await crm.by_number("06.12.34.56.78") == first  # same number: cache
        assert fake.seen == ["/api/contacts?phone=0612345678"]
        assert fake.auth == [f"Bearer {TOKEN}"]
        assert crm.stats.cache_hits == 1
        # "Not found" is cached too, for less time.
        assert await crm.by_number("0700000000") is None
        assert await crm.by_number("0700000000") is None
        assert len(fake.seen) == 2
        clock.advance(11)  # past the negative TTL (10 s), within the positive one (60 s)
        assert await crm.by_number("0700000000") is None
        assert await crm.by_number("0612345678") == first
        assert len(fake.seen) == 3
        clock.advance(60)
        assert await crm.by_number("0612345678") == first
        assert len(fake.seen) == 4


async def test_timeout_and_errors_fall_back_to_the_builtin_crm(
    server: tuple[FakeCrm, str],
) -> None:
    fake, base = server
    async with aiohttp.ClientSession() as session:
        crm = HttpCrm(session, settings(base), fallback=builtin())
        started = time.monotonic()
        hung = await crm.by_number("0611111111")  # nobody in the seed has it
        assert hung is None
        assert time.monotonic() - started < 1.5
        down = await crm.by_number("0698765432")  # HTTP 503
        assert down is not None
        assert down.id == "C002"
        html = await crm.by_number("0639984567")  # not JSON
        assert html is not None
        assert html.id == "C005"
        no_id = await crm.by_number("0639987701")  # JSON, but no contact id
        assert no_id is not None
        assert no_id.id == "C007"
        assert (crm.stats.errors, crm.stats.fallbacks) == (4, 4)
        # Failures are not cached: the CRM is asked again next time.
        await crm.by_number("0698765432")
        assert fake.seen.count("/api/contacts?phone=0698765432") == 2


async def test_without_a_fallback_failures_are_our_errors(server: tuple[FakeCrm, str]) -> None:
    _fake, base = server
    async with aiohttp.ClientSession() as session:
        crm = HttpCrm(session, settings(base))
        with pytest.raises(StoreError, match=r"did not answer within 0\.3 s"):
            await crm.by_number("0611111111")
        with pytest.raises(StoreError, match="HTTP 503"):
            await crm.by_number("0698765432")
        with pytest.raises(ProtocolError, match="invalid JSON"):
            await crm.by_number("0639984567")
        with pytest.raises(StoreError, match="need the built-in CRM"):
            await crm.history(number="0612345678")
    async with aiohttp.ClientSession() as session:
        unreachable = settings("http://127.0.0.1:9")  # discard port: connection refused
        with pytest.raises(StoreError, match=r"127\.0\.0\.1"):
            await HttpCrm(session, unreachable).by_number("0612345678")


async def test_hostile_account_stays_one_path_segment_and_404_is_not_found(
    server: tuple[FakeCrm, str],
) -> None:
    fake, base = server
    async with aiohttp.ClientSession() as session:
        crm = HttpCrm(session, settings(base), fallback=builtin())
        assert await crm.by_account("../contacts?phone=0612345678") is None
        assert await crm.by_account("a b#c") is None
        found = await crm.by_account("12345678")
        assert found is not None
        assert found.id == "EXT-1"
    assert fake.seen == [
        "/api/accounts/..%2Fcontacts%3Fphone%3D0612345678",
        "/api/accounts/a%20b%23c",
        "/api/accounts/12345678",
    ]


async def test_pins_and_history_go_to_the_builtin_crm(server: tuple[FakeCrm, str]) -> None:
    fake, base = server
    async with aiohttp.ClientSession() as session:
        crm = HttpCrm(session, settings(base), fallback=builtin())
        result = await crm.check_pin("87654321", "1234", datetime.now(UTC))
        assert result.ok
        assert await crm.lock("87654321", datetime.now(UTC)) is True
    assert fake.seen == []
