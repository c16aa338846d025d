"""Tier 1: the shipped energy-supplier flows (ivr_scripts/energie_fr.yaml and
energy_en.yaml) in the offline simulator, with the CRM fixture
(ivr_scripts/fixtures/crm.json) and fixed times: VIP routing, the wrong-code
lockout, opening hours, French public holidays, callback and voicemail; and
the sandbox site (callcenter/callpath/default_site.yaml) able to serve them.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from ivr_helpers import PARIS, SCRIPTS

from callcenter.callpath.site import load_site
from callcenter.ivr.interpreter import Session
from callcenter.ivr.loader import load_script
from callcenter.ivr.messages import (
    CallInfo,
    CollectDigits,
    DigitsResult,
    Hangup,
    OfferCallback,
    Outcome,
    Play,
    Request,
    Result,
    Route,
    Transfer,
    Voicemail,
)
from callcenter.ivr.model import CallbackNode, QueueNode, Script
from callcenter.ivr.simulate import CallerInput, Fixture, FixtureDriver, load_fixture

ENERGIE = load_script(SCRIPTS / "energie_fr.yaml")
ENERGY = load_script(SCRIPTS / "energy_en.yaml")

MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=PARIS)
MONDAY_NIGHT = datetime(2026, 3, 2, 21, 30, tzinfo=PARIS)
SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=PARIS)
SUNDAY_3AM = datetime(2026, 3, 8, 3, 0, tzinfo=PARIS)
CHRISTMAS = datetime(2026, 12, 25, 10, 0, tzinfo=PARIS)

UNKNOWN = "0100000000"  # not in the CRM
MARTIN = "0612345678"  # C001, Mme Claire Martin, VIP (account 12345678, code 4567)
SMITH = "0698765432"  # C002, M. John Smith (account 87654321, code 1234)
SILENCE = ""  # the caller presses nothing: the IVR's wait times out


class Caller(FixtureDriver):
    """The simulator's driver, where an empty key input is a timeout; keeps
    every request for the assertions."""

    def __init__(self, keys: list[str], crm: Fixture | None = None) -> None:
        crm = crm or load_fixture(SCRIPTS / "fixtures" / "crm.json")
        super().__init__([CallerInput("dtmf", k) for k in keys], crm)
        self.requests: list[Request] = []

    def answer(self, request: Request) -> Result | None:
        self.requests.append(request)
        if isinstance(request, CollectDigits) and self.inputs and self.inputs[0].value == "":
            self.inputs.popleft()
            self._play(request.prompt)
            self._log("keys", "(silence: timeout)")
            return DigitsResult("", timed_out=True)
        return super().answer(request)

    def played(self) -> list[str]:
        plays = [r if isinstance(r, Play) else getattr(r, "prompt", None) for r in self.requests]
        return [p.prompt_id for p in plays if isinstance(p, Play)]


def call(
    script: Script,
    *keys: str,
    ani: str = UNKNOWN,
    when: datetime = MONDAY,
    crm: Fixture | None = None,
) -> tuple[Outcome, Caller]:
    """One call through *script*: keys in order (SILENCE: none), the CRM
    fixture (or *crm*, to keep its locks from a previous call)."""
    caller = Caller(list(keys), crm)
    session = Session(script, CallInfo(ani, when, dnis="3910"))
    step = session.start()
    while session.outcome is None:
        assert not isinstance(step, Route | Transfer | Voicemail | Hangup)
        step = session.send(caller.answer(step))
    assert not caller.inputs, f"inputs left over: {list(caller.inputs)}"
    return session.outcome, caller


# --- energie_fr: identification and VIP routing ---------------------------------------


def test_known_vip_by_number_and_code_gets_priority_and_the_vip_skill() -> None:
    # 1 French, customer number + code, 2 breakdown, 2 power cut.
    outcome, caller = call(ENERGIE, "1", "12345678", "4567", "2", "2")
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_depannage"
    assert outcome.priority == 15  # VIP 10 + breakdown 5
    assert outcome.skills == {"depannage": 2, "clients_vip": 1, "lang_fr": 1}
    assert outcome.language == "fr"
    ctx = outcome.context
    assert (ctx.customer_id, ctx.vip, ctx.intent) == ("C001", True, "depannage")
    assert ctx.variables["statut"] == "vip"
    assert "4567" not in {str(v) for v in ctx.variables.values()}
    assert "accueil_vip" in caller.played()


def test_vip_recognised_by_caller_number_hears_the_last_bill_then_billing() -> None:
    outcome, caller = call(ENERGIE, "1", "1", ani=MARTIN)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_facturation"
    assert outcome.priority == 10
    assert outcome.skills == {"facturation": 2, "clients_vip": 1, "lang_fr": 1}
    assert outcome.context.variables["facture.montant"] == 87.3
    assert "say      amount 87.3 [fr]" in caller.transcript
    assert "saisie_client" not in caller.played()  # no code asked: the number is known


def test_customer_who_is_not_vip_ends_a_contract_at_normal_priority() -> None:
    outcome, _ = call(ENERGIE, "1", "3", ani=SMITH)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_resiliation"
    assert outcome.priority == 0
    assert outcome.skills == {"resiliation": 2, "lang_fr": 1}
    assert outcome.context.variables["statut"] == "client"


def test_billing_lookup_timeout_still_reaches_billing() -> None:
    outcome, caller = call(ENERGIE, "1", "1", ani=SMITH)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_facturation"
    assert any("derniere_facture" in e and "timeout" in e for e in outcome.context.errors)
    assert "solde_annonce" not in caller.played()


def test_caller_without_a_usable_number_is_a_prospect() -> None:
    # Two tries at the customer number, both too short; then 4, anything else.
    outcome, _ = call(ENERGIE, "1", "12", "34", "4")
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_accueil"
    assert outcome.skills == {"energie": 1, "lang_fr": 1}
    assert outcome.context.variables["statut"] == "prospect"
    assert outcome.context.customer_id is None


def test_three_wrong_codes_lock_the_account() -> None:
    wrong = ("87654321", "0000")
    outcome, caller = call(ENERGIE, "1", *wrong, *wrong, *wrong)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_accueil"  # an adviser checks the caller's identity
    assert outcome.priority == 5
    assert outcome.skills == {"energie": 2, "lang_fr": 1}
    assert outcome.context.variables["customer.locked"] is True
    assert outcome.context.path[-2:] == ("identification_client", "compte_bloque")
    assert caller.played().count("code_faux") == 2
    assert "87654321" in caller.fixture.locked  # the CRM was told
    # The next call with the right code is refused too.
    again, _ = call(ENERGIE, "1", "87654321", "1234", crm=caller.fixture)
    assert isinstance(again, Route)
    assert again.context.path[-1] == "compte_bloque"


def test_account_locked_in_the_crm_is_refused_at_once() -> None:
    outcome, _ = call(ENERGIE, "1", "11112222", "0000")
    assert isinstance(outcome, Route)
    assert outcome.context.path[-1] == "compte_bloque"


def test_english_chosen_at_the_start_drives_prompts_and_agent_language() -> None:
    outcome, caller = call(ENERGIE, "2", "12345678", "4567", "1")
    assert isinstance(outcome, Route)
    assert outcome.language == "en"
    assert outcome.skills == {"facturation": 2, "clients_vip": 1, "lang_en": 1}
    menu = next(
        r.prompt
        for r in caller.requests
        if isinstance(r, CollectDigits)
        and r.prompt is not None
        and r.prompt.prompt_id == "menu_motif"
    )
    assert menu.language == "en"
    assert menu.text is not None
    assert menu.text.startswith("For your bill")


def test_gas_smell_is_transferred_to_the_emergency_number() -> None:
    outcome, _ = call(ENERGIE, "1", "2", "1", ani=MARTIN, when=SUNDAY_3AM)
    assert isinstance(outcome, Transfer)
    assert outcome.number == "0800473333"


# --- energie_fr: opening hours, holidays, callback, voicemail ------------------------


@pytest.mark.parametrize("when", [SUNDAY_3AM, CHRISTMAS, MONDAY_NIGHT], ids=str)
def test_breakdowns_are_served_whatever_the_hour(when: datetime) -> None:
    outcome, _ = call(ENERGIE, "1", "2", "2", ani=MARTIN, when=when)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_depannage"
    assert outcome.priority == 15


def test_closed_in_the_evening_callback_accepted() -> None:
    outcome, caller = call(ENERGIE, "1", "1", "1", ani=MARTIN, when=MONDAY_NIGHT)
    assert isinstance(outcome, Hangup)
    assert outcome.reason == "callback_scheduled"
    assert "ferme" in caller.played()
    [offer] = [r for r in caller.requests if isinstance(r, OfferCallback)]
    assert offer.queue == "energie_rappels"
    assert offer.number == MARTIN
    assert offer.priority == 10  # the VIP keeps priority for the callback
    assert offer.skills == {"clients_vip": 1}


def test_closed_callback_declined_goes_to_voicemail() -> None:
    outcome, caller = call(ENERGIE, "1", "3", "2", ani=SMITH, when=MONDAY_NIGHT)
    assert isinstance(outcome, Voicemail)
    assert outcome.mailbox == "service_client@energie"
    assert outcome.context.variables["callback.accepted"] is False
    assert "messagerie" in caller.played()


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 4, 6, 10, 0, tzinfo=PARIS),  # Easter Monday
        datetime(2026, 5, 14, 10, 0, tzinfo=PARIS),  # Ascension
        datetime(2026, 7, 14, 10, 0, tzinfo=PARIS),  # 14 July
        datetime(2026, 12, 24, 10, 0, tzinfo=PARIS),  # closed date of the calendar
        CHRISTMAS,
    ],
    ids=lambda d: d.date().isoformat(),
)
def test_public_holidays_play_the_holiday_message_then_offer_a_callback(when: datetime) -> None:
    outcome, caller = call(ENERGIE, "1", "4", SILENCE, SILENCE, ani=SMITH, when=when)
    assert isinstance(outcome, Voicemail)  # silence at the callback offer
    assert "ferie" in caller.played()
    assert "ferme" not in caller.played()
    assert outcome.context.path[-4:] == ("horaires", "ferie", "offre_rappel", "messagerie")


def test_saturday_morning_is_open_in_french() -> None:
    outcome, _ = call(ENERGIE, "1", "4", ani=SMITH, when=SATURDAY)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_accueil"


# --- energy_en --------------------------------------------------------------------------


def test_english_line_vip_by_number_billing() -> None:
    # Silence at the welcome (9 would switch to French), then 1 billing.
    outcome, caller = call(ENERGY, SILENCE, "1", ani=MARTIN)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_facturation"
    assert outcome.language == "en"
    assert outcome.priority == 10
    assert outcome.skills == {"facturation": 2, "clients_vip": 1, "lang_en": 1}
    assert outcome.context.variables["status"] == "vip"
    assert caller.played()[:3] == ["welcome", "number_recognised", "vip_welcome"]


def test_english_line_nine_switches_to_french() -> None:
    outcome, _ = call(ENERGY, "9", "3", ani=SMITH)
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_resiliation"
    assert outcome.language == "fr"
    assert outcome.skills == {"resiliation": 2, "lang_fr": 1}


def test_english_line_identifies_by_number_and_code_and_locks_after_three() -> None:
    outcome, _ = call(ENERGY, SILENCE, "87654321", "1234", "2", "2")
    assert isinstance(outcome, Route)
    assert outcome.queue == "energie_depannage"
    assert outcome.priority == 5
    assert outcome.context.customer_id == "C002"
    wrong = ("87654321", "9999")
    locked, _ = call(ENERGY, SILENCE, *wrong, *wrong, *wrong)
    assert isinstance(locked, Route)
    assert locked.context.path[-1] == "locked_account"
    assert locked.priority == 5


def test_english_line_is_closed_on_saturday_callback() -> None:
    outcome, caller = call(ENERGY, SILENCE, "1", "1", ani=SMITH, when=SATURDAY)
    assert isinstance(outcome, Hangup)
    assert outcome.reason == "callback_scheduled"
    assert "closed" in caller.played()


def test_english_line_french_holiday() -> None:
    armistice = datetime(2026, 11, 11, 10, 0, tzinfo=PARIS)
    outcome, caller = call(ENERGY, SILENCE, "4", "2", ani=SMITH, when=armistice)
    assert isinstance(outcome, Voicemail)
    assert "holiday" in caller.played()


# --- the sandbox site serves them ----------------------------------------------------------


@pytest.mark.parametrize("script", [ENERGIE, ENERGY], ids=lambda s: s.name)
def test_the_default_site_has_the_queues_and_agents_these_flows_need(script: Script) -> None:
    site = load_site()
    assert script.name in site.scripts()
    nodes = [n for flow in (script.main, *script.subflows.values()) for n in flow.nodes.values()]
    callbacks = [n.queue for n in nodes if isinstance(n, CallbackNode)]
    assert callbacks
    assert all(q in site.queues for q in callbacks)
    queues = [n for n in nodes if isinstance(n, QueueNode)]
    assert queues
    for node in queues:
        assert node.queue in site.queues, node.queue
        for language in script.languages:
            for vip in (False, True):
                wanted = {**site.queues[node.queue].skills, **node.skills}
                if vip:
                    wanted["clients_vip"] = 1
                able = [
                    agent_id
                    for agent_id, agent in site.agents.items()
                    if language in agent.languages
                    and all(agent.skills.get(s, 0) >= level for s, level in wanted.items())
                ]
                assert able, f"{node.id}: no agent for {wanted} in {language}"
