"""Tier 1: prompt names for the prompt build, French/English intent matching on
recognised text, and the start-up check for speech models."""

from __future__ import annotations

from pathlib import Path

import pytest
from ivr_helpers import BANK, OPEN, SURVEY, drive

from callcenter.adapters.speech import parse_result, require_models, speech_languages
from callcenter.errors import ConfigError
from callcenter.ivr.loader import load_script
from callcenter.ivr.messages import (
    CallInfo,
    DigitsResult,
    Listen,
    LookupResult,
    Play,
    Request,
    Result,
    Route,
    SpeechResult,
)
from callcenter.ivr.model import Script
from callcenter.ivr.prompts import built_name, content_hash, prompt_path, text_prompts
from callcenter.ivr.speech import match_intent, normalise

# --- prompt names ---------------------------------------------------------------------


def test_every_text_prompt_of_the_bank_script() -> None:
    prompts = text_prompts(BANK)
    ids = {p.prompt_id for p in prompts}
    assert {"bienvenue", "motif", "pas_compris", "menu_principal"} <= ids
    # Inline prompts are named after their node; every language is there.
    assert {(p.prompt_id, p.language) for p in prompts if p.prompt_id == "motif"} == {
        ("motif", "fr"),
        ("motif", "en"),
    }
    assert all(p.text for p in prompts)
    assert len({(p.prompt_id, p.language) for p in prompts}) == len(prompts)
    assert prompts == sorted(prompts, key=lambda p: (p.prompt_id, p.language))


def test_recorded_files_are_not_rendered() -> None:
    assert all(p.script == "enquete_satisfaction" for p in text_prompts(SURVEY))
    file_prompts = [p for p in BANK.prompts.values() if p.file is not None]
    names = {p.prompt_id for p in text_prompts(BANK)}
    assert all(p.id not in names for p in file_prompts)


def test_hash_follows_text_voice_and_language() -> None:
    base = content_hash("fr", "Bonjour.")
    assert base == content_hash("fr", "Bonjour.")
    assert len(base) == 12
    assert content_hash("fr", "Bonjour !") != base
    assert content_hash("en", "Bonjour.") != base
    assert content_hash("fr", "Bonjour.", {"fr": "fr+f3"}) != base


SPEECH = """
script: parole
languages: [fr, en]
start: motif
nodes:
  motif:
    type: speech
    prompt: {fr: "Quel est le motif de votre appel ?", en: "Why are you calling?"}
    no_match_prompt: {fr: "Pardon ?", en: "Sorry?"}
    retries: 1
    intents:
      facturation:
        phrases: {fr: [ma facture, facturation], en: [my bill, billing]}
        next: file_facturation
    fallback: menu
  menu:
    type: menu
    prompt: {fr: "Tapez 1.", en: "Press 1."}
    options: {1: file_facturation}
    on_failure: file_generale
  file_facturation:
    type: queue
    queue: facturation
  file_generale:
    type: queue
    queue: generale
"""


@pytest.fixture
def speech_script(tmp_path: Path) -> Script:
    path = tmp_path / "parole.yaml"
    path.write_text(SPEECH, "utf-8")
    return load_script(path)


def test_driver_and_build_agree_on_the_name(speech_script: Script) -> None:
    # The name the build writes is the one the driver derives from a Play.
    motif = next(
        p for p in text_prompts(speech_script) if p.prompt_id == "motif" and p.language == "fr"
    )
    outcome, requests = drive(speech_script, CallInfo(ani="", now=OPEN), _silent)
    plays = [r.prompt for r in requests if isinstance(r, Listen) and r.prompt is not None]
    play = next(p for p in plays if p.prompt_id == "motif")
    assert play.text == motif.text
    assert built_name(play.file, play.language, play.text) == prompt_path(motif)
    assert prompt_path(motif).startswith("ivr/parole/fr/motif-")
    assert isinstance(outcome, Route)
    assert outcome.queue == "generale"


def _silent(request: Request) -> Result | None:
    if isinstance(request, Listen):
        return SpeechResult("", 0.0)
    if isinstance(request, Play):
        return None
    if request.__class__.__name__ == "Lookup":
        return LookupResult()
    return DigitsResult("", timed_out=True)


# --- intents on recognised text (what the French and English models would say) ----


MOTIF = {
    "facturation": ["ma facture", "facturation", "prélèvement", "remboursement"],
    "technique": ["panne", "problème technique", "mot de passe", "carte bloquée"],
    "commercial": ["ouvrir un compte", "crédit", "prêt"],
}
REASON = {
    "billing": ["my bill", "billing", "direct debit", "refund"],
    "technical": ["fault", "technical problem", "password", "card blocked"],
    "sales": ["open an account", "loan", "credit"],
}


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("c'est pour ma facture", "facturation"),
        ("MA FACTURE !", "facturation"),
        ("les factures", None),
        ("un prelevement en trop", "facturation"),
        ("j'ai un probleme technique avec l'application", "technique"),
        ("ma carte est bloquee", None),  # words apart: no phrase matches
        ("carte bloquée depuis hier", "technique"),
        ("je voudrais ouvrir un compte", "commercial"),
        ("bonjour", None),
        ("", None),
    ],
)
def test_french_intents(text: str, intent: str | None) -> None:
    assert match_intent(text, MOTIF) == intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("it's about my bills", "billing"),
        ("Direct Debit!", "billing"),
        ("i forgot my password", "technical"),
        ("my card blocked", "technical"),
        ("i want a loan", "sales"),
        ("hello", None),
    ],
)
def test_english_intents(text: str, intent: str | None) -> None:
    assert match_intent(text, REASON) == intent


def test_longest_phrase_wins() -> None:
    phrases = {"short": ["facture"], "late": ["facture en retard"]}
    assert match_intent("ma facture en retard", phrases) == "late"
    assert match_intent("ma facture", phrases) == "short"


def test_non_latin_words_stay_words() -> None:
    assert normalise("상담원 연결해 주세요") != ()
    assert match_intent("상담원", {"agent": ["상담원"], "yes": ["네"]}) == "agent"
    assert match_intent("네", {"agent": ["상담원"], "yes": ["네"]}) == "yes"
    assert normalise("Crédit, prêt-à-porter") == ("credit", "pret", "a", "porter")


@pytest.mark.parametrize(
    ("language", "said", "confidence", "queue", "listens"),
    [
        ("fr", ["euh c'est pour ma facture"], 0.9, "facturation", 1),
        ("en", ["it's about my bill"], 0.9, "facturation", 1),
        ("fr", ["bonjour", "la facturation"], 0.9, "facturation", 2),  # re-prompt
        ("fr", ["ma facture"], 0.2, "generale", 2),  # not trusted, then keypad
        ("en", ["hello", "hello"], 0.9, "generale", 2),  # no match twice: keypad
    ],
)
def test_speech_routes_by_intent(
    speech_script: Script,
    language: str,
    said: list[str],
    confidence: float,
    queue: str,
    listens: int,
) -> None:
    utterances = iter(said)

    def answer(request: Request) -> Result | None:
        if isinstance(request, Listen):
            assert request.language == language
            assert set(request.grammar) == (
                {"ma facture", "facturation"} if language == "fr" else {"my bill", "billing"}
            )
            return SpeechResult(next(utterances, ""), confidence)
        return _silent(request)

    outcome, requests = drive(speech_script, CallInfo(ani="", now=OPEN, language=language), answer)
    assert isinstance(outcome, Route)
    assert outcome.queue == queue
    assert sum(isinstance(r, Listen) for r in requests) == listens


# --- models at start-up ------------------------------------------------------------


def test_scripts_that_need_speech() -> None:
    assert speech_languages([BANK, SURVEY]) == {"banque_entrante": {"fr", "en"}}


def test_missing_model_is_a_clear_startup_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Vosk model for en \(scripts banque_entrante\)"):
        require_models({"fr": tmp_path}, [BANK])
    with pytest.raises(ConfigError, match=r"speech\.models"):
        require_models({}, [BANK, SURVEY])
    require_models({}, [SURVEY])  # no speech node: nothing needed


def test_vosk_results() -> None:
    raw = (
        '{"result": [{"conf": 0.8, "word": "ma"}, {"conf": 0.6, "word": "facture"}],'
        ' "text": "ma facture"}'
    )
    assert parse_result(raw).text == "ma facture"
    assert parse_result(raw).confidence == pytest.approx(0.7)
    assert parse_result('{"text": ""}').text == ""
    assert parse_result('{"text": ""}').confidence == 0.0
    assert parse_result('{"result": [{"conf": 1.0, "word": "[unk]"}], "text": "[unk]"}').text == ""
    assert parse_result("not json").confidence == 0.0
