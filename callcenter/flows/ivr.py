"""Drive the pure IVR interpreter (callcenter/ivr) on a live call over FastAGI.

The interpreter yields requests (play, say, collect digits, listen, look up,
record, offer a callback); this driver performs each with AGI commands and
sends the result back, until the interpreter returns its outcome (route,
transfer, voicemail, hang-up) with the IVR context for the agent's screen.

Text prompts play the files built by ``callcenter prompts build``
(:class:`PromptFiles`); without it the plain name is tried, which Asterisk
skips when it does not exist.

Speech (Listen): with a :class:`~callcenter.adapters.speech.SpeechService`,
the channel is connected to our AudioSocket server with ``EXEC AudioSocket``;
the service plays the prompt through the socket (the caller may speak over
it), recognises one utterance with Vosk and ends the AudioSocket session at
end of speech, which gives the channel back to this AGI session. The text goes
back to the interpreter, which matches the intent (or re-prompts, then falls
back to DTMF). Without a speech service, or when recognition fails, the
answer is "nothing understood": scripts then fall back to DTMF as written.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from callcenter.adapters.audiosocket import AudioSocketServer
from callcenter.adapters.fastagi import AgiSession
from callcenter.adapters.prompts import read_pcm, sandbox_prompts_dir
from callcenter.adapters.speech import (
    SpeechRecognizer,
    SpeechService,
    require_models,
    speech_languages,
)
from callcenter.config import Settings
from callcenter.errors import AGICommandFailed, SpeechError
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
from callcenter.ivr.prompts import built_name

log = structlog.get_logger("callcenter.flows.ivr")

LookupFn = Callable[[Lookup], Awaitable[LookupResult]]
CallbackFn = Callable[[OfferCallback], Awaitable[CallbackResult]]


@dataclass(frozen=True)
class PromptFiles:
    """Where ``callcenter prompts build`` put the text prompts."""

    asterisk_dir: str
    """The prompts directory as Asterisk sees it."""
    local_dir: Path | None = None
    """The same directory on this host, if it is reachable: the speech service
    then plays listen prompts through AudioSocket, so callers can barge in."""
    voices: Mapping[str, str] | None = None

    def sound(self, play: Play) -> str:
        """What to STREAM FILE for *play*."""
        if play.text is None:
            return play.file  # a recorded file named by the script
        name = built_name(play.file, play.language, play.text, self.voices)
        return f"{self.asterisk_dir.rstrip('/')}/{name}"

    def audio(self, play: Play) -> bytes | None:
        """The prompt's 8 kHz samples, when the built file is reachable here."""
        if play.text is None or self.local_dir is None:
            return None
        name = built_name(play.file, play.language, play.text, self.voices)
        return read_pcm(self.local_dir / f"{name}.wav")


@dataclass(frozen=True)
class IvrServices:
    lookup: LookupFn
    offer_callback: CallbackFn
    recordings_dir: str
    """Where RECORD FILE writes (as Asterisk sees it)."""
    prompts: PromptFiles | None = None
    speech: SpeechService | None = None


def prompt_files(settings: Settings) -> PromptFiles:
    """The built prompts as configured (``ivr.prompts_dir``, unset: the sandbox's)."""
    local = settings.ivr.prompts_dir or sandbox_prompts_dir()
    return PromptFiles(settings.ivr.prompts_asterisk_dir, local if local.is_dir() else None)


def speech_service(settings: Settings, scripts: Iterable[Script]) -> SpeechService | None:
    """The speech service the scripts need, or None when none has a speech node.

    Raises ConfigError at start-up when a script needs a language without a
    model (never a failure in the middle of a call). Start it before the
    FastAGI server, stop it after."""
    scripts = list(scripts)
    config = settings.speech
    if not speech_languages(scripts):
        return None
    require_models(config.models, scripts)
    recognizer = SpeechRecognizer(config.models, workers=config.workers, grammar=config.grammar)
    server = AudioSocketServer(config.host, config.port, advertise=config.advertise)
    return SpeechService(
        recognizer, server, end_silence=config.end_silence, max_utterance=config.max_utterance
    )


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


def node_exits(outcome: Outcome) -> list[tuple[str, str]]:
    """(node, exit) for every node the call went through: the exit is the next
    node, or for the last one how the IVR ended (route, transfer...). Bounded
    by the script's graph, so fit for metric labels."""
    path = list(outcome.context.path)
    ends = [*path[1:], type(outcome).__name__.lower()]
    return list(zip(path, ends, strict=True))


async def _perform(session: AgiSession, request: Request, services: IvrServices) -> Result | None:
    if isinstance(request, Play):
        await session.stream_file(_sound(services, request))
        return None
    if isinstance(request, Say):
        await _say(session, request)
        return None
    if isinstance(request, CollectDigits):
        prompt = _sound(services, request.prompt) if request.prompt is not None else "silence/1"
        digits = await session.get_data(
            prompt, timeout_ms=int(request.timeout * 1000), max_digits=request.max_digits
        )
        return DigitsResult(digits, timed_out=not digits)
    if isinstance(request, Listen):
        return await _listen(session, request, services)
    if isinstance(request, Lookup):
        return await services.lookup(request)
    if isinstance(request, Record):
        return await _record(session, request, services)
    return await services.offer_callback(request)


def _sound(services: IvrServices, play: Play) -> str:
    return services.prompts.sound(play) if services.prompts is not None else play.file


async def _listen(session: AgiSession, request: Listen, services: IvrServices) -> SpeechResult:
    speech = services.speech
    if speech is None or request.language not in speech.languages:
        if request.prompt is not None:
            await session.stream_file(_sound(services, request.prompt))
        return SpeechResult("", 0.0)
    prompt_audio = None
    if request.prompt is not None:
        if services.prompts is not None:
            prompt_audio = services.prompts.audio(request.prompt)
        if prompt_audio is None:  # no barge-in: play it, then listen
            await session.stream_file(_sound(services, request.prompt))
    prompt_seconds = len(prompt_audio or b"") / 16000
    limit = prompt_seconds + request.timeout + speech.max_utterance + 5

    async def connect(call_id: uuid.UUID, address: str) -> None:
        try:
            await session.exec_("AudioSocket", str(call_id), address, timeout=limit)
        except AGICommandFailed as exc:
            raise SpeechError(f"AudioSocket({address}) failed: {exc}") from exc

    try:
        utterance = await speech.listen(
            connect,
            language=request.language,
            grammar=request.grammar,
            use_grammar=request.use_grammar,
            no_input=request.timeout,
            prompt=prompt_audio,
        )
    except SpeechError as exc:
        session.log.warning("ivr.speech_failed", error=str(exc))
        return SpeechResult("", 0.0)
    return SpeechResult(utterance.text, utterance.confidence)


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
        await session.stream_file(_sound(services, request.prompt))
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
