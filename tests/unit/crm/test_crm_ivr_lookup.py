"""Tier 1: the CRM answers the IVR's lookups as the JSON fixture does today.

The bank script is run twice for the same caller inputs: once against the
fixture (``ivr_scripts/fixtures/crm.json``), once against an in-memory CRM
loaded from the seed CSV (``contacts.csv``); the outcomes must agree.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.crm.csv_import import parse_csv
from callcenter.crm.ivr_lookup import crm_lookup, ivr_data
from callcenter.crm.memory import MemoryCrm
from callcenter.crm.model import Contact, InteractionSummary, PinPolicy, PinResult
from callcenter.crm.pins import PinHasher
from callcenter.crm.screenpop import screen_pop
from callcenter.crm.settings import PinHashSettings
from callcenter.errors import StoreError
from callcenter.ivr.interpreter import Session
from callcenter.ivr.loader import load_script
from callcenter.ivr.messages import CallInfo, Lookup, LookupResult, Outcome, Result, Route
from callcenter.ivr.simulate import (
    CallerInput,
    Fixture,
    FixtureDriver,
    fixture_lookup,
    load_fixture,
)

SCRIPTS = Path(__file__).parents[3] / "ivr_scripts"
OPEN = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
CHEAP = PinHasher(PinHashSettings(time_cost=1, memory_cost_kib=8, parallelism=1))


def seed_crm() -> MemoryCrm:
    parsed = parse_csv((SCRIPTS / "fixtures" / "contacts.csv").read_text(encoding="utf-8"))
    assert not parsed.errors
    return MemoryCrm(parsed.contacts, hasher=CHEAP, policy=PinPolicy(max_failures=3))


def fixture() -> Fixture:
    return load_fixture(SCRIPTS / "fixtures" / "crm.json")


async def run_bank(inputs: list[str], ani: str, crm: MemoryCrm | None) -> Outcome:
    """Drive the bank script; lookups go to *crm* (or the fixture when None)."""
    script = load_script(SCRIPTS / "banque_entrante.yaml")
    caller = [
        CallerInput("speech", i[4:]) if i.startswith("say:") else CallerInput("dtmf", i)
        for i in inputs
    ]
    driver = FixtureDriver(caller, fixture())
    session = Session(script, CallInfo(ani, OPEN))
    step = session.start()
    while session.outcome is None:
        result: Result | None
        if isinstance(step, Lookup) and crm is not None and step.kind != "http":
            result = await crm_lookup(crm, step, now=OPEN.astimezone(UTC))
        else:
            result = driver.answer(step)  # type: ignore[arg-type]
        step = session.send(result)
    return session.outcome


CALLS = [
    pytest.param(["1", "say:c'est pour ma facture"], "0612345678", id="vip-by-caller-id"),
    pytest.param(["1", "say:une panne"], "+33 1 45 67 89 01", id="second-number"),
    pytest.param(["2", "say:my bill"], "0698765432", id="english-caller"),
    pytest.param(["1", "12345678#", "4567", "say:une panne"], "0100000000", id="account-pin"),
    pytest.param(["1", "11112222", "0000"], "0100000000", id="locked-account"),
    pytest.param(
        ["1", "87654321", "0000", "87654321", "1111", "87654321", "2222"],
        "0100000000",
        id="three-wrong-pins",
    ),
]


@pytest.mark.parametrize(("inputs", "ani"), CALLS)
async def test_the_bank_script_ends_the_same_with_the_crm_as_with_the_fixture(
    inputs: list[str], ani: str
) -> None:
    expected = await run_bank(inputs, ani, None)
    got = await run_bank(inputs, ani, seed_crm())
    assert isinstance(expected, Route)
    assert isinstance(got, Route)
    assert (got.queue, got.priority, dict(got.skills), got.language) == (
        expected.queue,
        expected.priority,
        dict(expected.skills),
        expected.language,
    )
    assert got.context.customer_id == expected.context.customer_id
    assert got.context.vip == expected.context.vip
    for name, value in expected.context.variables.items():
        if name.startswith("customer."):
            assert got.context.variables.get(name) == value, name


async def test_answers_have_the_fixture_shapes() -> None:
    crm, fix = seed_crm(), fixture()
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    async def both(kind: str, **params: str) -> tuple[LookupResult, LookupResult]:
        request = Lookup(kind, params)  # type: ignore[arg-type]
        return await crm_lookup(crm, request, now=now), fixture_lookup(fix, request)

    got, expected = await both("crm_ani", ani="+33612345678")
    assert got.error is None
    assert expected.data is not None
    assert got.data is not None
    assert {k: got.data[k] for k in expected.data} == dict(expected.data)
    assert "pin" not in got.data
    assert "phones" not in got.data
    assert "notes" not in got.data
    for kind, params in [
        ("crm_ani", {"ani": "0700000000"}),
        ("crm_ani", {"ani": ""}),
        ("account_pin", {"account": "87654321", "pin": "9999"}),
        ("account_pin", {"account": "99999999", "pin": "1234"}),
        ("account_pin", {"account": "11112222", "pin": "0000"}),
        ("account_lock", {"account": "87654321"}),
        ("account_lock", {"account": "99999999"}),
        ("account_pin", {"account": "87654321", "pin": "1234"}),  # locked just above
    ]:
        got, expected = await both(kind, **params)
        assert got == expected, (kind, params)


async def test_the_lock_lasts_across_calls_then_expires() -> None:
    crm = seed_crm()
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    pin = Lookup("account_pin", {"account": "87654321", "pin": "0000"})
    assert (await crm_lookup(crm, pin, now=now)).data is None
    assert (await crm_lookup(crm, pin, now=now)).data is None
    assert (await crm_lookup(crm, pin, now=now)).data == {"locked": True}
    right = Lookup("account_pin", {"account": "87654321", "pin": "1234"})
    assert (await crm_lookup(crm, right, now=now + timedelta(minutes=29))).data == {"locked": True}
    answer = await crm_lookup(crm, right, now=now + timedelta(minutes=31))
    assert answer.data is not None
    assert answer.data["id"] == "C002"


class _Broken(MemoryCrm):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(hasher=CHEAP)
        self.delay = delay

    async def by_number(self, number: str) -> Contact | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        raise StoreError("contacts: lookup by number failed: connection refused")

    async def check_pin(self, account: str, pin: str, now: datetime) -> PinResult:
        await asyncio.sleep(self.delay or 10)
        raise AssertionError("not reached")

    async def history(
        self, *, contact_id: str | None = None, number: str | None = None, limit: int = 10
    ) -> list[InteractionSummary]:
        return []


async def test_a_failing_or_slow_crm_gives_an_error_the_script_can_follow() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    failed = await crm_lookup(_Broken(), Lookup("crm_ani", {"ani": "0612345678"}), now=now)
    assert failed.data is None
    assert failed.error is not None
    assert "connection refused" in failed.error
    slow = Lookup("account_pin", {"account": "1", "pin": "1234"}, timeout=0.05)
    timed_out = await crm_lookup(_Broken(), slow, now=now)
    assert timed_out == LookupResult(None, "CRM did not answer within 0.05 s")


async def test_http_lookups_go_elsewhere() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    request = Lookup("http", {"url": "https://crm.example.fr/x", "method": "GET"})
    assert (await crm_lookup(seed_crm(), request, now=now)).error is not None

    async def other(seen: Lookup) -> LookupResult:
        return LookupResult({"url": seen.params["url"]})

    answer = await crm_lookup(seed_crm(), request, now=now, other=other)
    assert answer.data == {"url": "https://crm.example.fr/x"}


def test_ivr_data_keeps_core_fields_over_extra_data() -> None:
    contact = Contact("C9", "Name", vip=True, data={"id": "spoofed", "segment": "pro"})
    assert ivr_data(contact) == {"id": "C9", "name": "Name", "vip": True, "segment": "pro"}


async def test_screen_pop_gives_the_card_and_the_history() -> None:
    crm = seed_crm()
    crm.interactions.append(
        InteractionSummary(
            "i-1", "voice", "inbound", "support", "+33612345678", "a01", "completed", OPEN
        )
    )
    crm.interactions.append(
        InteractionSummary(
            "i-2", "voice", "inbound", "support", "0700000000", None, "abandoned", OPEN
        )
    )
    pop = await screen_pop(crm, "0612345678")
    assert pop is not None
    assert pop["contact"]["id"] == "C001"
    assert pop["contact"]["data"] == {"segment": "gestion privée"}
    assert [h["interaction_id"] for h in pop["history"]] == ["i-1"]
    unknown = await screen_pop(crm, "0700000000")
    assert unknown is not None
    assert unknown["contact"] is None
    assert [h["outcome"] for h in unknown["history"]] == ["abandoned"]
    assert await screen_pop(crm, "0711111111") is None
