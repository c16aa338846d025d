"""Tier 1: the sans-I/O interpreter on the sample scripts and small scripts."""

from __future__ import annotations

from datetime import datetime

import pytest
from ivr_helpers import CLOSED, OPEN, drive, run_inputs

from callcenter.errors import StateError
from callcenter.ivr.interpreter import Session, luhn_ok
from callcenter.ivr.loader import load_text
from callcenter.ivr.messages import (
    CallInfo,
    CollectDigits,
    DigitsResult,
    Hangup,
    Listen,
    Lookup,
    LookupResult,
    OfferCallback,
    Play,
    Request,
    Result,
    Route,
    Say,
    SpeechResult,
    Transfer,
    Voicemail,
)
from callcenter.ivr.model import Script


def test_known_vip_caller_by_speech_goes_to_billing_with_priority(bank: Script) -> None:
    outcome, driver = run_inputs(bank, "1", "say:euh c'est pour ma facture", ani="0612345678")
    assert isinstance(outcome, Route)
    assert outcome.queue == "facturation"
    assert outcome.priority == 10
    assert outcome.language == "fr"
    assert outcome.skills == {"facturation": 2, "gestion_privee": 1, "lang_fr": 1}
    ctx = outcome.context
    assert ctx.customer_id == "C001"
    assert ctx.vip is True
    assert ctx.intent == "facturation"
    assert ctx.path == (
        "accueil", "langue", "francais", "horaires", "identification_ani", "client_reconnu",
        "vip", "priorite_vip", "contrat", "motif", "annonce_solde", "solde_intro",
        "solde_montant", "file_facturation",
    )  # fmt: skip
    assert ctx.variables["facture.montant"] == 42.5
    assert "say      amount 42.5 [fr]" in driver.transcript


def test_english_caller_speech_my_bill_gets_english_skill(bank: Script) -> None:
    outcome, _ = run_inputs(bank, "2", "say:I have a question about my bills", ani="0698765432")
    assert isinstance(outcome, Route)
    assert outcome.language == "en"
    assert "lang_en" in outcome.skills
    assert outcome.context.intent == "facturation"
    # The CRM webhook timed out for this customer: the node's fallback was taken.
    assert outcome.context.errors == ("contrat: timeout after 1.5 s",)


def test_speech_no_match_reprompts_then_falls_back_to_dtmf_menu(bank: Script) -> None:
    outcome, driver = run_inputs(
        bank, "1", "say:bonjour", "say:je ne sais pas", "2", ani="0698765432"
    )
    assert isinstance(outcome, Route)
    assert outcome.queue == "technique"
    assert outcome.context.path[-3:] == ("motif", "menu_principal", "file_technique")
    assert sum("pas_compris" in line for line in driver.transcript) == 1


def test_low_confidence_speech_is_not_trusted(bank: Script) -> None:
    script = bank
    call = CallInfo("0698765432", OPEN)
    answers: list[Result | None] = []

    def answer(request: Request) -> Result | None:
        if isinstance(request, CollectDigits):
            return DigitsResult("1" if not answers else "3")
        if isinstance(request, Listen):
            answers.append(None)
            return SpeechResult("ma facture", confidence=0.3)
        if isinstance(request, Lookup):
            return LookupResult({"id": "C9"}) if request.kind == "crm_ani" else LookupResult()
        return None

    outcome, _ = drive(script, call, answer)
    assert isinstance(outcome, Route)
    assert outcome.queue == "ventes"  # key 3 in the fallback menu, not the heard intent
    assert len(answers) == 2


def test_menu_invalid_then_timeout_then_failure_goes_to_general_queue(bank: Script) -> None:
    outcome, driver = run_inputs(bank, "1", "9", "7", ani="0698765432")
    assert isinstance(outcome, Route)
    assert outcome.queue == "accueil_general"
    keys = [line for line in driver.transcript if line.startswith("keys")]
    # language, then three menu attempts: 9 (invalid), 7 (invalid), silence
    assert keys[-3:] == ["keys     9", "keys     7", "keys     (silence: timeout)"]
    plays = [line.split()[1] for line in driver.transcript if line.startswith("play")]
    assert plays.count("choix_invalide") == 2
    assert "sans_reponse" not in plays  # no retry prompt after the last attempt


def test_unknown_caller_identifies_with_account_and_pin(bank: Script) -> None:
    outcome, _ = run_inputs(bank, "1", "12345678#", "4567", "say:une panne", ani="0100000000")
    assert isinstance(outcome, Route)
    assert outcome.queue == "technique"
    assert outcome.context.customer_id == "C001"
    assert outcome.priority == 10
    assert "4567" not in outcome.context.variables.values()  # the PIN is never kept


def test_three_wrong_pins_lock_the_account(bank: Script) -> None:
    outcome, driver = run_inputs(
        bank, "1", "87654321", "0000", "87654321", "1111", "87654321", "2222", ani="0100000000"
    )
    assert isinstance(outcome, Route)
    assert outcome.queue == "securite"
    assert outcome.context.variables["customer.locked"] is True
    assert any("account_lock {'account': '87654321'}" in line for line in driver.transcript)
    plays = [line.split()[1] for line in driver.transcript if line.startswith("play")]
    assert plays.count("code_faux") == 2


def test_account_already_locked_in_crm(bank: Script) -> None:
    outcome, _ = run_inputs(bank, "1", "11112222", "0000", ani="0100000000")
    assert isinstance(outcome, Route)
    assert outcome.queue == "securite"


def test_silent_caller_during_identification_reaches_the_menu_then_general(bank: Script) -> None:
    outcome, _ = run_inputs(bank, "1", ani="0100000000")
    assert isinstance(outcome, Route)
    assert outcome.queue == "accueil_general"
    assert "menu_principal" in outcome.context.path


def test_closed_on_christmas_offers_callback(bank: Script) -> None:
    outcome, driver = run_inputs(bank, "1", "1", ani="0612345678", when=CLOSED)
    assert isinstance(outcome, Hangup)
    assert outcome.reason == "callback_scheduled"
    assert outcome.context.variables["callback.number"] == "0612345678"
    assert any(
        line.startswith("callback 0612345678 in queue rappels") for line in driver.transcript
    )


def test_closed_declined_callback_goes_to_voicemail(bank: Script) -> None:
    outcome, _ = run_inputs(bank, "2", "2", ani="0612345678", when=CLOSED)
    assert isinstance(outcome, Voicemail)
    assert outcome.mailbox == "service_client@banque"
    assert outcome.language == "en"


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (datetime.fromisoformat("2026-04-06T10:00+02:00"), False),  # Easter Monday
        (datetime.fromisoformat("2026-05-14T10:00+02:00"), False),  # Ascension
        (datetime.fromisoformat("2026-05-25T10:00+02:00"), False),  # Whit Monday
        (datetime.fromisoformat("2026-12-24T10:00+01:00"), False),  # closed date
        (datetime.fromisoformat("2026-03-07T12:29+01:00"), True),  # Saturday morning
        (datetime.fromisoformat("2026-03-07T12:30+01:00"), False),
        (datetime.fromisoformat("2026-03-27T07:30+00:00"), True),  # Friday 08:30 CET
        (datetime.fromisoformat("2026-03-30T05:59+00:00"), False),  # Monday 07:59 CEST
        (datetime.fromisoformat("2026-03-30T06:00+00:00"), True),  # 08:00 CEST
    ],
)
def test_opening_hours_decide_the_branch(bank: Script, when: datetime, is_open: bool) -> None:
    outcome, _ = run_inputs(bank, "1", "2", ani="0612345678", when=when)
    assert ("ferme" in outcome.context.path) is not is_open


def test_the_driver_language_skips_nothing_but_sets_the_default(bank: Script) -> None:
    session = Session(bank, CallInfo("", OPEN, language="en"))
    first = session.start()
    assert isinstance(first, Play)
    assert first.language == "en"
    assert first.file == "ivr/banque_entrante/en/bienvenue"


def test_survey_records_score_and_comment(survey: Script) -> None:
    outcome, _ = run_inputs(survey, "9", "5", "say:parfait", lang="en")
    assert isinstance(outcome, Hangup)
    assert outcome.reason == "survey_done"
    assert outcome.context.variables["survey.score"] == 5
    assert outcome.context.variables["survey.comment"] == "simulated:parfait"
    assert outcome.context.language == "en"


def test_survey_without_an_answer_keeps_no_score(survey: Script) -> None:
    outcome, _ = run_inputs(survey)
    assert isinstance(outcome, Hangup)
    assert outcome.context.variables["survey.score"] is None
    assert "survey.comment" not in outcome.context.variables


def test_survey_opt_out_given_by_the_driver(survey: Script) -> None:
    call = CallInfo("0612345678", OPEN, variables={"survey_opt_out": True})
    outcome, requests = drive(survey, call, lambda r: None)
    assert isinstance(outcome, Hangup)
    assert outcome.reason == "survey_skipped"
    assert requests == []


LOOP = """\
max_steps: 10
start: m
nodes:
  m:
    type: menu
    prompt: {fr: "Tapez 1.", en: "Press 1."}
    options: {1: m}
    on_failure: fin
  fin:
    type: hangup
"""


def test_max_steps_ends_a_caller_driven_loop() -> None:
    script = load_text(LOOP)
    outcome, requests = drive(script, CallInfo("", OPEN), lambda r: DigitsResult("1"))
    assert isinstance(outcome, Hangup)
    assert outcome.reason.startswith("max_steps")
    assert len(requests) == 10


def test_max_steps_routes_to_the_overflow_queue_when_given() -> None:
    script = load_text("overflow_queue: secours\n" + LOOP)
    outcome, _ = drive(script, CallInfo("", OPEN), lambda r: DigitsResult("1"))
    assert isinstance(outcome, Route)
    assert outcome.queue == "secours"
    assert outcome.context.errors[0].startswith("max_steps")


FEATURES = """\
start: carte
inputs: [montant]
nodes:
  carte:
    type: collect
    prompt: {fr: "Numéro de carte.", en: "Card number."}
    variable: carte
    min_length: 13
    max_length: 19
    validate: luhn
    sensitive: true
    retries: 1
    next: calcul
    on_failure: fin
  calcul:
    type: set
    compute: {double: "montant * 2", bad: "montant - 'x'"}
    next: web
  web:
    type: http
    url: "https://api.example.fr/cartes/${carte}?q=${double}"
    store_as: api
    next: sub
    on_error: fin
  sub:
    type: subflow
    flow: annonce
    next: transfert
  transfert:
    type: transfer
    number: "+33145678900"
  fin:
    type: hangup
subflows:
  annonce:
    start: dire
    nodes:
      dire:
        type: play
        say: digits
        value: api.code
        next: retour
      retour:
        type: return
"""


def test_collect_validation_sensitive_values_http_and_subflow() -> None:
    script = load_text(FEATURES)
    seen: list[Request] = []

    def answer(request: Request) -> Result | None:
        seen.append(request)
        if isinstance(request, CollectDigits):
            tries = sum(isinstance(r, CollectDigits) for r in seen)
            return DigitsResult("4111111111111112#" if tries == 1 else "4111111111111111#")
        if isinstance(request, Lookup):
            return LookupResult({"code": "A7", "nested": {"deep": 1}, "list": [1]})
        return None

    call = CallInfo("", OPEN, variables={"montant": 21})
    outcome, _ = drive(script, call, answer)
    assert isinstance(outcome, Transfer)
    assert outcome.number == "+33145678900"
    lookup = next(r for r in seen if isinstance(r, Lookup))
    assert lookup.params["url"] == "https://api.example.fr/cartes/4111111111111111?q=42"
    say = next(r for r in seen if isinstance(r, Say))
    assert (say.kind, say.value) == ("digits", "A7")
    ctx = outcome.context
    assert ctx.variables["carte"] == "************1111"
    assert ctx.variables["api.nested.deep"] == 1
    assert "api.list" not in ctx.variables
    assert ctx.variables["bad"] is None
    assert ctx.errors[0].startswith("calcul: bad: cannot compute")
    assert ctx.path == ("carte", "calcul", "web", "sub", "annonce/dire", "annonce/retour",
                        "transfert")  # fmt: skip


def test_http_error_follows_on_error() -> None:
    script = load_text(FEATURES)

    def answer(request: Request) -> Result | None:
        if isinstance(request, CollectDigits):
            return DigitsResult("4111111111111111")
        if isinstance(request, Lookup):
            return LookupResult(error="HTTP 503")
        return None

    outcome, _ = drive(script, CallInfo("", OPEN, variables={"montant": 1}), answer)
    assert isinstance(outcome, Hangup)
    assert outcome.context.errors[-1] == "web: HTTP 503"


def test_callback_is_registered_with_the_acd() -> None:
    script = load_text("""\
start: offre
nodes:
  offre:
    type: callback
    prompt: {fr: "Tapez 1 pour être rappelé.", en: "Press 1 for a callback."}
    queue: rappels
    accepted: ok
    declined: non
  ok:
    type: hangup
    reason: rappel
  non:
    type: hangup
    reason: refus
""")
    offers: list[OfferCallback] = []

    def answer(request: Request) -> Result | None:
        if isinstance(request, CollectDigits):
            return DigitsResult("1")
        if isinstance(request, OfferCallback):
            offers.append(request)
            return None  # a driver bug: the wrong answer type
        return None

    with pytest.raises(StateError, match="expected CallbackResult"):
        drive(script, CallInfo("0612345678", OPEN), answer)
    assert offers[0].number == "0612345678"
    assert offers[0].queue == "rappels"


def test_naive_time_is_refused(bank: Script) -> None:
    with pytest.raises(StateError, match="timezone-aware"):
        Session(bank, CallInfo("", datetime(2026, 3, 2, 10, 0)))


def test_sending_after_the_end_is_refused() -> None:
    script = load_text("start: a\nnodes:\n  a:\n    type: hangup\n")
    session = Session(script, CallInfo("", OPEN))
    assert isinstance(session.start(), Hangup)
    with pytest.raises(StateError, match="over"):
        session.send(None)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True), ("0", False)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_ok(digits) is valid
