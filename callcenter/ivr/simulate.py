"""Drive a script offline: scripted caller inputs, CRM answers from a fixture.

Used by ``callcenter ivr simulate`` and by tests. Caller inputs are consumed
in order; an input of the wrong kind for the current request (speech while
the IVR waits for keys, or the reverse) counts as silence and stays queued,
which is what a real caller talking over a keypad prompt amounts to.

Fixture (JSON)::

    {"customers": [{"id": "C001", "ani": ["0612345678"], "account": "12345678",
                    "pin": "4567", "name": "Mme Martin", "vip": true}],
     "http": {"https://crm.example.fr/api/...": {"montant": 42.5},
              "https://down.example.fr/...": {"error": "timeout"}}}
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from callcenter.errors import ConfigError
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
    Outcome,
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
from callcenter.ivr.model import Script

MAX_TRANSFERS = 3


@dataclass(frozen=True)
class CallerInput:
    kind: Literal["dtmf", "speech"]
    value: str
    confidence: float = 0.9


@dataclass
class Fixture:
    customers: list[dict[str, object]] = field(default_factory=list)
    http: dict[str, object] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)


def load_fixture(path: str | Path) -> Fixture:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"CRM fixture {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"CRM fixture {path}: expected an object with 'customers' and 'http'")
    customers = data.get("customers", [])
    http = data.get("http", {})
    if not isinstance(customers, list) or not all(isinstance(c, dict) for c in customers):
        raise ConfigError(f"CRM fixture {path}: 'customers' must be a list of objects")
    if not isinstance(http, dict):
        raise ConfigError(f"CRM fixture {path}: 'http' must map URLs to answers")
    return Fixture(customers, http)


def _national(number: str) -> str:
    """+33 6 12 34 56 78 and 0612345678 are the same French caller."""
    digits = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    if digits.startswith("+33"):
        return "0" + digits[3:]
    if digits.startswith("0033"):
        return "0" + digits[4:]
    return digits


def _public(customer: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in customer.items() if k not in ("pin", "ani")}


def fixture_lookup(fixture: Fixture, request: Lookup) -> LookupResult:
    """Answer a CRM or web-service lookup from a fixture (the built-in CRM)."""
    params = request.params
    if request.kind == "crm_ani":
        ani = _national(params.get("ani", ""))
        for customer in fixture.customers:
            anis = customer.get("ani", [])
            numbers = [anis] if isinstance(anis, str) else anis
            if isinstance(numbers, list) and ani in (_national(str(n)) for n in numbers):
                return LookupResult(_public(customer))
        return LookupResult(None)
    if request.kind in ("account_pin", "account_lock"):
        account = params.get("account", "")
        for customer in fixture.customers:
            if str(customer.get("account", "")) != account:
                continue
            if request.kind == "account_lock":
                fixture.locked.add(account)
                return LookupResult({"locked": True})
            if account in fixture.locked or customer.get("locked"):
                return LookupResult({"locked": True})
            if str(customer.get("pin", "")) == params.get("pin"):
                return LookupResult(_public(customer))
        return LookupResult(None)
    answer = fixture.http.get(params.get("url", ""))
    if isinstance(answer, dict) and set(answer) == {"error"}:
        return LookupResult(None, str(answer["error"]))
    return LookupResult(answer if isinstance(answer, dict) else None)


class FixtureDriver:
    """Answers the interpreter's requests from scripted inputs and a fixture,
    and keeps a human-readable transcript."""

    def __init__(self, inputs: list[CallerInput], fixture: Fixture | None = None) -> None:
        self.inputs = deque(inputs)
        self.fixture = fixture or Fixture()
        self.transcript: list[str] = []

    def _log(self, kind: str, text: str) -> None:
        self.transcript.append(f"{kind:<9}{text}")

    def _play(self, play: Play | None) -> None:
        if play is not None:
            said = f" « {play.text} »" if play.text else f" ({play.file})"
            self._log("play", f"{play.prompt_id} [{play.language}]{said}")

    def answer(self, request: Request) -> Result | None:
        if isinstance(request, Play):
            self._play(request)
            return None
        if isinstance(request, Say):
            self._log("say", f"{request.kind} {request.value} [{request.language}]")
            return None
        if isinstance(request, CollectDigits):
            self._play(request.prompt)
            if self.inputs and self.inputs[0].kind == "dtmf":
                digits = self.inputs.popleft().value
                self._log("keys", digits)
                return DigitsResult(digits)
            self._log("keys", "(silence: timeout)")
            return DigitsResult("", timed_out=True)
        if isinstance(request, Listen):
            self._play(request.prompt)
            if self.inputs and self.inputs[0].kind == "speech":
                said = self.inputs.popleft()
                self._log("caller", f"« {said.value} » (confidence {said.confidence:.2f})")
                return SpeechResult(said.value, said.confidence)
            self._log("caller", "(silence)")
            return SpeechResult("", 0.0)
        if isinstance(request, Lookup):
            result = self._lookup(request)
            shown = {k: ("****" if k == "pin" else v) for k, v in request.params.items()}
            found = (
                f"error: {result.error}"
                if result.error
                else (
                    "not found"
                    if result.data is None
                    else json.dumps(result.data, ensure_ascii=False)
                )
            )
            self._log("lookup", f"{request.kind} {shown} -> {found}")
            return result
        if isinstance(request, Record):
            self._play(request.prompt)
            if self.inputs and self.inputs[0].kind == "speech":
                comment = self.inputs.popleft().value
                self._log("record", f"« {comment} »")
                return RecordResult(f"simulated:{comment}", 3.0)
            self._log("record", "(nothing said)")
            return RecordResult(None)
        assert isinstance(request, OfferCallback)
        self._log("callback", f"{request.number} in queue {request.queue} [{request.language}]")
        return CallbackResult(True)

    def _lookup(self, request: Lookup) -> LookupResult:
        return fixture_lookup(self.fixture, request)


@dataclass
class Simulation:
    outcome: Outcome
    transcript: list[str]
    scripts: list[str]


def describe(outcome: Outcome) -> str:
    if isinstance(outcome, Route):
        skills = ", ".join(f"{k}>={v}" for k, v in sorted(outcome.skills.items())) or "none"
        return (
            f"ROUTE queue={outcome.queue} priority={outcome.priority} "
            f"language={outcome.language} skills=[{skills}]"
        )
    if isinstance(outcome, Transfer):
        where = outcome.number or f"script {outcome.script}"
        return f"TRANSFER to {where} language={outcome.language}"
    if isinstance(outcome, Voicemail):
        return f"VOICEMAIL mailbox={outcome.mailbox} language={outcome.language}"
    assert isinstance(outcome, Hangup)
    return f"HANGUP reason={outcome.reason}"


def simulate(
    script: Script,
    call: CallInfo,
    driver: FixtureDriver,
    load: Callable[[str], Script] | None = None,
) -> Simulation:
    """Run *script* to its outcome; with *load*, follow transfers to scripts."""
    scripts = [script.name]
    while True:
        session = Session(script, call)
        step = session.start()
        while session.outcome is None:
            assert not isinstance(step, Route | Transfer | Voicemail | Hangup)
            step = session.send(driver.answer(step))
        outcome = session.outcome
        if not (isinstance(outcome, Transfer) and outcome.script and load is not None):
            return Simulation(outcome, driver.transcript, scripts)
        if len(scripts) > MAX_TRANSFERS:
            return Simulation(outcome, driver.transcript, scripts)
        driver.transcript.append(f"{'transfer':<9}to script {outcome.script}")
        script = load(outcome.script)
        scripts.append(script.name)
        carried = {k: v for k, v in outcome.context.variables.items() if k not in ("ani", "dnis")}
        call = CallInfo(call.ani, call.now, call.dnis, outcome.language, carried)
