"""Tier 3: the shipped French energy-supplier flow (ivr_scripts/energie_fr.yaml)
through the sandbox Asterisk, with sipp's RFC 4733 DTMF and the real
PostgreSQL CRM (the demo contacts of ivr_scripts/fixtures/contacts.csv).

The caller's number is unknown to the CRM, so the IVR asks for the customer
number and the personal code. The path taken is the breakdown line
(dépannage), which the script serves day and night without looking at the
opening hours: the test does not depend on the wall clock (the hours-dependent
paths are covered by the simulator tests, tests/unit/ivr/test_ivr_example_flows.py,
with a fixed time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from callcenter.callpath.service import Phase
from callcenter.clock import ShiftedClock
from callcenter.crm.model import PinStatus
from callcenter.crm.store import PgCrm
from callcenter.testing.daemons import running_daemon
from callcenter.testing.databases import fresh_database
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

# The energy queues of callcenter/callpath/default_site.yaml, with test timings;
# agents chosen so that only one holds every skill the IVR asks for.
SITE = """
queues:
  energie_facturation: {skills: {facturation: 1}, wrapup: 0.5, first_announce_after: 60}
  energie_depannage: {skills: {depannage: 1}, wrapup: 0.5, first_announce_after: 60}
  energie_resiliation: {skills: {resiliation: 1}, wrapup: 0.5, first_announce_after: 60}
  energie_accueil: {skills: {energie: 1}, wrapup: 0.5, first_announce_after: 60}
  energie_rappels: {skills: {energie: 1}, wrapup: 0.5, first_announce_after: 60}
routes:
  '3910': {queue: energie_accueil, ivr: energie_fr}
agents:
  a01: {name: Depannage sans VIP, endpoint: agent11, skills: {depannage: 8}}
  a02: {name: VIP sans depannage, endpoint: agent12, skills: {facturation: 8, clients_vip: 1}}
  a03: {name: Depannage niveau 1, endpoint: agent13, skills: {depannage: 1, clients_vip: 1}}
  a04: {name: Depannage VIP, endpoint: agent14, skills: {depannage: 3, clients_vip: 1}}
  a05: {name: Accueil, endpoint: agent15, skills: {energie: 5}}
"""

UNKNOWN_NUMBER = "0100000000"  # not in the CRM: identification by number + code

# Announcements (play nodes) cannot be interrupted: keys pressed while one plays
# are lost, so the caller waits them out; menus and digit prompts can be
# interrupted (the first key stops the prompt). The prompts are those
# `callcenter prompts build` renders (`make test` builds them first).
WELCOME_MS = 8_500  # "bienvenue" lasts 6.9 s; the language menu follows
GAP_MS = 700  # one "," in the key string
AFTER_VIP_WELCOME = "," * 9  # 6.3 s: the 4.9 s VIP announcement after the code
AFTER_WRONG_CODE = "," * 5  # 3.5 s: "code incorrect" lasts 2.8 s


async def test_known_vip_customer_by_number_and_code_reaches_the_breakdown_queue(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with (
        running_daemon(asterisk, tmp_path, SITE, database_url=url, contacts=True) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=1500),
    ):
        # 1 French; customer number 12345678 and code 4567 (Mme Claire Martin,
        # VIP); 2 breakdown or emergency; 2 power cut.
        async with sipp_caller(
            asterisk.ports.sip,
            "3910",
            digits="1,,12345678,,4567" + AFTER_VIP_WELCOME + "2,,2",
            caller_num=UNKNOWN_NUMBER,
            first_delay_ms=WELCOME_MS,
            gap_ms=GAP_MS,
        ) as caller:
            await until(
                lambda: any(r.phase is Phase.WAITING for r in d.callpath.calls.values()),
                timeout=40,
                what="the IVR queued the call",
            )
            [record] = d.callpath.calls.values()
            # What the ACD was asked for: the queue's skill at the IVR's level,
            # the VIP skill; the caller's language is matched separately.
            waiting = d.acd.interactions[record.interaction_id]
            assert dict(waiting.skills) == {"depannage": 2, "clients_vip": 1}
            assert record.language == "fr"
            # Agents who lack a skill (or its level) are ready first, and longer.
            for agent in ("a01", "a02", "a03", "a05"):
                d.callpath.agent_login(agent)
            assert record.phase is Phase.WAITING
            d.callpath.agent_login("a04")
            await until(lambda: d.callpath.history, timeout=30, what="call answered and ended")
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr

    [done] = list(d.callpath.history)
    assert done.interaction_id == record.interaction_id
    assert done.phase is Phase.COMPLETED
    assert done.queue == "energie_depannage"  # the IVR's choice, not the route's
    assert done.agent_id == "a04"
    assert done.priority == 15  # VIP 10 + breakdown 5
    ivr = done.context["ivr"]
    assert isinstance(ivr, dict)
    assert ivr["path"] == [
        "accueil",
        "langue",
        "francais",
        "identification_ani",
        "identification_client",
        "statut",
        "client_vip",
        "annonce_vip",
        "menu_motif",
        "motif_depannage",
        "menu_depannage",
        "file_depannage",
    ]
    assert ivr["customer_id"] == "C001"
    assert ivr["vip"] is True
    assert ivr["intent"] == "depannage"
    assert ivr["language"] == "fr"
    variables = ivr["variables"]
    assert isinstance(variables, dict)
    assert variables["customer.name"] == "Mme Claire Martin"
    assert variables["customer.account"] == "12345678"
    assert variables["statut"] == "vip"
    # The code is never kept (the account number 12345678 contains 4567).
    assert "4567" not in {str(v) for v in variables.values()}
    assert not [k for k in variables if "pin" in k.lower() or "code" in k.lower()]
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_three_wrong_codes_lock_the_account_in_the_crm(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with (
        running_daemon(asterisk, tmp_path, SITE, database_url=url, contacts=True) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=1000),
    ):
        d.callpath.agent_login("a05")
        # M. John Smith's customer number (87654321) with a wrong code, 3 times.
        wrong = "87654321,,0000" + AFTER_WRONG_CODE
        async with sipp_caller(
            asterisk.ports.sip,
            "3910",
            digits="1,," + wrong * 3,
            caller_num=UNKNOWN_NUMBER,
            first_delay_ms=WELCOME_MS,
            gap_ms=GAP_MS,
        ) as caller:
            await until(lambda: d.callpath.history, timeout=60, what="call answered and ended")
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        [done] = list(d.callpath.history)
        assert done.queue == "energie_accueil"
        assert done.agent_id == "a05"
        assert done.priority == 5
        ivr = done.context["ivr"]
        assert isinstance(ivr, dict)
        assert ivr["path"][-2:] == ["identification_client", "compte_bloque"]
        assert ivr["customer_id"] is None
        variables = ivr["variables"]
        assert isinstance(variables, dict)
        assert variables["customer.locked"] is True
        # Locked in PostgreSQL: even the right code is refused now.
        assert d.pool is not None
        check = await PgCrm(d.pool, d.settings.crm).check_pin("87654321", "1234", datetime.now(UTC))
        assert check.status is PinStatus.LOCKED
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_on_a_public_holiday_the_caller_leaves_a_callback_in_its_queue(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    # Christmas Day, 10:00 in Paris: the billing line is closed (public holiday).
    christmas = datetime(2026, 12, 25, 9, 0, tzinfo=UTC).timestamp()
    url = await fresh_database(database_url)
    async with running_daemon(
        asterisk,
        tmp_path,
        SITE,
        database_url=url,
        contacts=True,
        clock=ShiftedClock(christmas),
    ) as d:
        # 1 French; customer 12345678 / code 4567; 1 billing; then 1 (call me
        # back) every 2 s: those sent during the holiday announcement are lost,
        # the first that lands in the callback offer's prompt accepts it.
        async with sipp_caller(
            asterisk.ports.sip,
            "3910",
            digits="1,,12345678,,4567" + AFTER_VIP_WELCOME + "1" + ",,1" * 8,
            caller_num=UNKNOWN_NUMBER,
            first_delay_ms=WELCOME_MS,
            gap_ms=GAP_MS,
        ) as caller:
            await until(
                lambda: any(r.kind == "callback" for r in d.callpath.calls.values()),
                timeout=60,
                what="a callback registered by the IVR",
            )
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        [callback] = [r for r in d.callpath.calls.values() if r.kind == "callback"]
        assert callback.queue == "energie_rappels"
        assert callback.callback_number == UNKNOWN_NUMBER
        assert callback.phase is Phase.WAITING  # for an agent of energie_rappels
        ivr = callback.context["ivr"]
        assert isinstance(ivr, dict)
        assert "ferie" in ivr["path"]
        assert ivr["customer_id"] == "C001"
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")
