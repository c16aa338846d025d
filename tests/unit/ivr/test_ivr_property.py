"""Tier 1: whatever the caller does, every call ends in an outcome within bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from ivr_helpers import BANK, SURVEY

from callcenter.ivr.interpreter import Session
from callcenter.ivr.messages import (
    CallbackResult,
    CallInfo,
    CollectDigits,
    DigitsResult,
    Hangup,
    Listen,
    Lookup,
    LookupResult,
    OfferCallback,
    Play,
    Record,
    RecordResult,
    Request,
    Result,
    Route,
    Say,
    SpeechResult,
    Transfer,
    Voicemail,
)

KEYS = st.text(alphabet="0123456789*#", max_size=10)
PHRASES = st.sampled_from(
    ["ma facture", "MES FACTURES !", "my bill", "une panne", "ouvrir un compte", "euh", "",
     "prêt immobilier", "je veux parler à quelqu'un", "password"]
) | st.text(max_size=30)  # fmt: skip
INPUT = st.one_of(
    st.tuples(st.just("dtmf"), KEYS),
    st.tuples(st.just("speech"), PHRASES),
    st.tuples(st.just("silence"), st.just("")),
)
LOOKUP = st.one_of(
    st.just(LookupResult()),
    st.just(LookupResult(error="timeout")),
    st.just(LookupResult({"locked": True})),
    st.fixed_dictionaries(
        {"id": st.text(max_size=5), "vip": st.booleans(), "montant": st.integers(-(10**20), 10**20)}
    ).map(LookupResult),
)
WHEN = st.integers(0, 3 * 365 * 24 * 60).map(
    lambda minutes: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
)


def respond(request: Request, inputs: list[tuple[str, str]], lookups: list[LookupResult],
            confidence: float) -> Result | None:  # fmt: skip
    kind, value = inputs.pop(0) if inputs else ("silence", "")
    if isinstance(request, Play | Say):
        return None
    if isinstance(request, CollectDigits):
        return DigitsResult(value) if kind == "dtmf" else DigitsResult("", timed_out=True)
    if isinstance(request, Listen):
        return SpeechResult(value if kind == "speech" else "", confidence)
    if isinstance(request, Lookup):
        return lookups.pop(0) if lookups else LookupResult()
    if isinstance(request, Record):
        return RecordResult("x" if kind == "speech" else None)
    assert isinstance(request, OfferCallback)
    return CallbackResult(kind != "silence")


@settings(max_examples=150, deadline=None)
@given(
    script=st.sampled_from([BANK, SURVEY]),
    inputs=st.lists(INPUT, max_size=60),
    lookups=st.lists(LOOKUP, max_size=6),
    when=WHEN,
    ani=st.sampled_from(["", "0612345678", "+33612345678", "anonymous"]),
    language=st.sampled_from([None, "fr", "en", "de"]),
    confidence=st.floats(0.0, 1.0),
)
def test_every_call_ends_within_the_step_limit(
    script: object,
    inputs: list[tuple[str, str]],
    lookups: list[LookupResult],
    when: datetime,
    ani: str,
    language: str | None,
    confidence: float,
) -> None:
    assert script is BANK or script is SURVEY
    session = Session(script, CallInfo(ani, when, language=language))
    step = session.start()
    # Each node yields a bounded number of requests (retries, attempts): a
    # generous per-step bound catches any loop hidden inside a node.
    limit = script.max_steps * 30
    answers = list(lookups)
    while session.outcome is None:
        assert session.requests <= limit
        step = session.send(respond(step, inputs, answers, confidence))  # type: ignore[arg-type]
    outcome = session.outcome
    assert isinstance(outcome, Route | Transfer | Voicemail | Hangup)
    assert 1 <= len(outcome.context.path) <= script.max_steps
    assert outcome.context.language in script.languages
