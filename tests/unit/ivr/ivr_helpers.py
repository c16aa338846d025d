"""Helpers for the IVR tests: the sample scripts, and driving a script with canned answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from callcenter.ivr.interpreter import Session
from callcenter.ivr.loader import load_script
from callcenter.ivr.messages import CallInfo, Outcome, Request, Result
from callcenter.ivr.model import Script
from callcenter.ivr.simulate import CallerInput, FixtureDriver, load_fixture

SCRIPTS = Path(__file__).parents[3] / "ivr_scripts"
PARIS = ZoneInfo("Europe/Paris")
OPEN = datetime(2026, 3, 2, 10, 0, tzinfo=PARIS)  # a Monday morning
CLOSED = datetime(2026, 12, 25, 10, 0, tzinfo=PARIS)  # Christmas


BANK = load_script(SCRIPTS / "banque_entrante.yaml")
SURVEY = load_script(SCRIPTS / "enquete_satisfaction.yaml")


def drive(
    script: Script, call: CallInfo, answer: Callable[[Request], Result | None]
) -> tuple[Outcome, list[Request]]:
    session = Session(script, call)
    requests: list[Request] = []
    step = session.start()
    while session.outcome is None:
        assert not isinstance(step, Outcome.__args__)  # type: ignore[attr-defined]
        requests.append(step)  # type: ignore[arg-type]
        step = session.send(answer(step))  # type: ignore[arg-type]
    return session.outcome, requests


def run_inputs(
    script: Script, *inputs: str, ani: str = "", when: datetime = OPEN, lang: str | None = None
) -> tuple[Outcome, FixtureDriver]:
    """Inputs: "1234" are keys, "say:text" is speech."""
    caller = [
        CallerInput("speech", i[4:]) if i.startswith("say:") else CallerInput("dtmf", i)
        for i in inputs
    ]
    driver = FixtureDriver(caller, load_fixture(SCRIPTS / "fixtures" / "crm.json"))
    outcome, _ = drive(script, CallInfo(ani, when, language=lang), driver.answer)
    return outcome, driver
