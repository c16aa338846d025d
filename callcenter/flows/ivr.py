"""Drive the pure IVR interpreter (callcenter/ivr) on a live call over FastAGI.

The interpreter yields requests (play, say, collect digits, listen, look up,
record, offer a callback); this driver performs each with AGI commands and
sends the result back, until the interpreter returns its outcome (route,
transfer, voicemail, hang-up) with the IVR context for the agent's screen.

Speech (Listen) needs the AudioSocket + Vosk path, which is not wired yet:
this driver answers "nothing understood", so scripts fall back to DTMF as
they are written to do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from callcenter.adapters.fastagi import AgiSession
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

log = structlog.get_logger("callcenter.flows.ivr")

LookupFn = Callable[[Lookup], Awaitable[LookupResult]]
CallbackFn = Callable[[OfferCallback], Awaitable[CallbackResult]]


@dataclass(frozen=True)
class IvrServices:
    lookup: LookupFn
    offer_callback: CallbackFn
    recordings_dir: str
    """Where RECORD FILE writes (as Asterisk sees it)."""


_OUTCOMES = (Route, Transfer, Voicemail, Hangup)


async def run_ivr(
    session: AgiSession, script: Script, call: CallInfo, services: IvrServices
) -> Outcome:
    ivr = Session(script, call)
    step: Request | Outcome = ivr.start()
    while not isinstance(step, _OUTCOMES):
        result = await _perform(session, step, services)
        step = ivr.send(result)
    log.info(
        "ivr.outcome",
        script=script.name,
        outcome=type(step).__name__,
        path=list(step.context.path),
        intent=step.context.intent,
    )
    return step


async def _perform(session: AgiSession, request: Request, services: IvrServices) -> Result | None:
    if isinstance(request, Play):
        await session.stream_file(request.file)
        return None
    if isinstance(request, Say):
        await _say(session, request)
        return None
    if isinstance(request, CollectDigits):
        prompt = request.prompt.file if request.prompt is not None else "silence/1"
        digits = await session.get_data(
            prompt, timeout_ms=int(request.timeout * 1000), max_digits=request.max_digits
        )
        return DigitsResult(digits, timed_out=not digits)
    if isinstance(request, Listen):
        if request.prompt is not None:
            await session.stream_file(request.prompt.file)
        return SpeechResult("", 0.0)
    if isinstance(request, Lookup):
        return await services.lookup(request)
    if isinstance(request, Record):
        return await _record(session, request, services)
    return await services.offer_callback(request)


async def _say(session: AgiSession, request: Say) -> None:
    value = request.value
    if request.kind == "number" and value.lstrip("-").isdigit():
        await session.say_number(int(value))
    elif request.kind in ("digits", "number") and value.isdigit():
        await session.say_digits(value)
    elif request.kind == "amount":
        whole = value.split(".")[0].split(",")[0]
        if whole.isdigit():
            await session.say_number(int(whole))
    else:
        await session.command("SAY ALPHA", value, "")


async def _record(session: AgiSession, request: Record, services: IvrServices) -> RecordResult:
    if request.prompt is not None:
        await session.stream_file(request.prompt.file)
    name = f"{services.recordings_dir}/ivr-{session.request.uniqueid}"
    parts: list[str | int] = ["RECORD FILE", name, "wav", "#", request.max_seconds * 1000, 0]
    if request.beep:
        parts.append("BEEP")
    reply = await session.command(*parts, timeout=request.max_seconds + 5)
    duration = float(reply.extra.get("endpos", "0") or 0) / 8000
    return RecordResult(f"{name}.wav" if duration > 0 else None, duration)


async def run_ivr_message(session: AgiSession, services: IvrServices, box: Voicemail) -> None:
    """Voicemail outcome: record the caller's message next to the recordings."""
    await session.stream_file("vm-intro")
    name = f"{services.recordings_dir}/voicemail-{box.mailbox}-{session.request.uniqueid}"
    await session.command("RECORD FILE", name, "wav", "#", 120_000, 0, "BEEP", timeout=130)
    await session.stream_file("vm-goodbye")
