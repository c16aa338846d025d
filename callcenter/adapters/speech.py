"""Offline speech for the IVR: AudioSocket audio -> streaming Vosk -> utterance.

* :class:`EndOfSpeech` (pure, audio time only) decides when the caller starts
  and stops speaking from the frames' energy: speech after a few loud frames,
  end after ``end_silence`` of quiet, "no input" when nothing was said before
  the deadline, and a cap on the utterance's length.
* :class:`SpeechRecognizer` holds one Vosk model per language and runs every
  Kaldi call (model load, ``AcceptWaveform``, results) in a thread pool, never
  on the event loop. With a grammar (the node's phrases) the recogniser only
  chooses among them: far more robust on telephone audio.
* :class:`SpeechService` ties them to the AudioSocket server for one listen
  step: it registers a UUID, lets the caller (the FastAGI driver) connect the
  channel with ``AudioSocket(uuid,host:port)``, plays the prompt through the
  socket so the caller can speak over it (barge-in: the prompt stops when
  speech starts), and ends the AudioSocket session at end of speech, which
  hands the channel back to the AGI session.

Intent matching is not here: the interpreter matches the text with
:func:`callcenter.ivr.speech.match_intent`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog

from callcenter.adapters.audiosocket import AudioSocketConnection, AudioSocketServer
from callcenter.errors import ConfigError, SpeechError
from callcenter.ivr.model import Script, SpeechNode
from callcenter.protocol.audiosocket import SAMPLE_RATE, Audio, Dtmf, ErrorFrame
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.speech")

BYTES_PER_SECOND = SAMPLE_RATE * 2
_BLOCK = 160  # samples: 20 ms
# Audio handed to the recogniser per thread-pool call (fewer hops, same result).
_CHUNK_BYTES = BYTES_PER_SECOND // 10

# A gap in the caller's audio longer than this counts as silence.
_GAP = 0.1
# Silent frame sent to the channel this often once the prompt is over.
_KEEPALIVE = 0.5

Verdict = Literal["speech", "end", "no_input", "too_long"]
Reason = Literal["speech", "no_input", "too_long", "hangup", "error"]


# --- end of speech (pure) ---------------------------------------------------------


class EndOfSpeech:
    """Energy-based start/end of an utterance, in audio time (no clock).

    ``feed`` returns ``"speech"`` once when speech starts, then ``"end"`` after
    ``end_silence`` seconds of quiet, ``"too_long"`` after ``max_utterance`` of
    speech, or ``"no_input"`` if no speech started before ``no_input`` seconds
    of audio; ``None`` otherwise. The loudness threshold follows the line's
    noise floor (``min_level`` at least, on a 16-bit scale).
    """

    def __init__(
        self,
        *,
        no_input: float,
        end_silence: float = 0.6,
        max_utterance: float = 15.0,
        min_level: float = 500.0,
        start_blocks: int = 3,
    ) -> None:
        self.no_input = no_input
        self.end_silence = end_silence
        self.max_utterance = max_utterance
        self.min_level = min_level
        self.start_blocks = start_blocks
        self.position = 0.0  # seconds of audio fed
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._noise = 0.0
        self._loud_run = 0
        self._quiet = 0.0
        self._rest = b""
        self.done = False

    @property
    def speaking(self) -> bool:
        return self.started_at is not None

    def feed(self, pcm: bytes) -> Verdict | None:
        if self.done:
            return None
        data = self._rest + pcm
        usable = len(data) - len(data) % (_BLOCK * 2)
        self._rest = data[usable:]
        if not usable:
            return None
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        levels = np.sqrt(np.mean(samples.reshape(-1, _BLOCK) ** 2, axis=1))
        verdict: Verdict | None = None
        for level in levels:
            self.position += _BLOCK / SAMPLE_RATE
            step = self._block(float(level))
            if step is not None:
                if step != "speech":
                    self.done = True
                    self.ended_at = self.position
                    return step
                verdict = step
        return verdict

    def _block(self, level: float) -> Verdict | None:
        threshold = max(self.min_level, 3.0 * self._noise)
        loud = level > threshold
        if self.started_at is None:
            if loud:
                self._loud_run += 1
                if self._loud_run >= self.start_blocks:
                    self.started_at = self.position - self.start_blocks * _BLOCK / SAMPLE_RATE
                    return "speech"
            else:
                self._loud_run = 0
                # Slow-moving noise floor, learnt while nobody speaks.
                self._noise = level if self._noise == 0.0 else 0.95 * self._noise + 0.05 * level
                if self.position >= self.no_input:
                    return "no_input"
            return None
        if self.position - self.started_at >= self.max_utterance:
            return "too_long"
        self._quiet = 0.0 if loud else self._quiet + _BLOCK / SAMPLE_RATE
        if self._quiet >= self.end_silence:
            return "end"
        return None


# --- recogniser (Vosk in a thread pool) ---------------------------------------------


@dataclass(frozen=True)
class Recognition:
    text: str
    confidence: float


def check_model_dir(language: str, path: Path) -> None:
    """A clear ConfigError unless *path* looks like an unpacked Vosk model."""
    key = f"speech.models.{language}"
    if not path.is_dir():
        raise ConfigError(
            f"{key}: {path} is not a directory; install a Vosk model there "
            "(docs/ivr.md, 'Speech models')"
        )
    if not ((path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()):
        raise ConfigError(f"{key}: {path} does not hold a Vosk model (no am/final.mdl)")


def parse_result(raw: str) -> Recognition:
    """Text and mean word confidence of a Vosk JSON result ([unk] dropped)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return Recognition("", 0.0)
    words = [w for w in data.get("result", []) if isinstance(w, dict) and w.get("word") != "[unk]"]
    text = " ".join(str(w.get("word", "")) for w in words).strip()
    if not words:
        text = " ".join(t for t in str(data.get("text", "")).split() if t != "[unk]")
        return Recognition(text, 1.0 if text else 0.0)
    confidence = sum(float(w.get("conf", 0.0)) for w in words) / len(words)
    return Recognition(text, round(confidence, 3))


class RecognizerStream:
    """One utterance on one Kaldi recogniser; every call runs in the pool."""

    def __init__(self, recognizer: Any, executor: ThreadPoolExecutor) -> None:
        self._recognizer = recognizer
        self._executor = executor
        self.busy_seconds = 0.0  # thread time spent recognising (for the RTF)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        def timed() -> Any:
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.busy_seconds += time.perf_counter() - start

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, timed)
        except Exception as exc:  # Kaldi errors surface as plain exceptions
            raise SpeechError(f"recogniser failed: {exc}") from exc

    async def accept(self, pcm: bytes) -> bool:
        """Feed audio; True when Vosk itself detected an endpoint."""
        return bool(await self._run(self._recognizer.AcceptWaveform, pcm))

    async def result(self) -> Recognition:
        return parse_result(str(await self._run(self._recognizer.Result)))

    async def final(self) -> Recognition:
        return parse_result(str(await self._run(self._recognizer.FinalResult)))


class SpeechRecognizer:
    """Vosk models per language, loaded by :meth:`start` (a few seconds each)."""

    def __init__(
        self, models: Mapping[str, Path], *, workers: int = 2, grammar: bool = True
    ) -> None:
        for language, path in models.items():
            check_model_dir(language, path)
        self.paths = dict(models)
        self.grammar = grammar
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vosk")
        self._models: dict[str, Any] = {}

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self.paths)

    async def start(self) -> None:
        try:
            import vosk
        except ImportError as exc:  # pragma: no cover - a dependency of the project
            raise ConfigError("speech.models: the vosk package is not installed") from exc
        vosk.SetLogLevel(-1)
        loop = asyncio.get_running_loop()
        for language, path in sorted(self.paths.items()):
            try:
                self._models[language] = await loop.run_in_executor(
                    self._executor, vosk.Model, str(path)
                )
            except Exception as exc:
                raise ConfigError(
                    f"speech.models.{language}: Vosk could not load {path}: {exc}"
                ) from exc
            log.info("speech.model_loaded", language=language, path=str(path))

    async def stop(self) -> None:
        self._models.clear()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)

    async def open(
        self, language: str, grammar: Sequence[str] = (), *, use_grammar: bool | None = None
    ) -> RecognizerStream:
        """A recogniser restricted to *grammar* when *use_grammar* (None: the
        ``grammar`` setting given at construction) and there are phrases."""
        model = self._models.get(language)
        if model is None:
            raise SpeechError(f"no speech model loaded for language {language!r}")
        restrict = self.grammar if use_grammar is None else use_grammar
        phrases = _grammar(model, grammar) if restrict and grammar else None

        def create() -> Any:
            import vosk

            if phrases is None:
                recognizer = vosk.KaldiRecognizer(model, SAMPLE_RATE)
            else:
                recognizer = vosk.KaldiRecognizer(model, SAMPLE_RATE, phrases)
            recognizer.SetWords(True)
            return recognizer

        try:
            recognizer = await asyncio.get_running_loop().run_in_executor(self._executor, create)
        except Exception as exc:
            raise SpeechError(f"recogniser could not start: {exc}") from exc
        return RecognizerStream(recognizer, self._executor)


def _grammar(model: Any, phrases: Sequence[str]) -> str:
    words = sorted({p.strip().lower() for p in phrases if p.strip()})
    # "[unk]" lets noise and other words be nothing rather than a phrase
    # (when the model knows it).
    if model.vosk_model_find_word("[unk]") >= 0:
        words.append("[unk]")
    return json.dumps(words, ensure_ascii=False)


# --- one listen step -----------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    text: str
    confidence: float
    reason: Reason
    heard: float = 0.0  # seconds of caller audio received
    barged_in: bool = False
    eos_at: float | None = None  # event-loop time end of speech was decided
    recognised_at: float | None = None  # event-loop time the text was known
    recognizer_seconds: float = 0.0  # thread time spent in Vosk


@dataclass(frozen=True)
class ListenLimits:
    no_input: float = 5.0  # seconds after the prompt
    end_silence: float = 0.6
    max_utterance: float = 15.0


Connect = Callable[[uuid.UUID, str], Awaitable[None]]
"""Connect the channel to AudioSocket ``(call id, host:port)``; returns when the
AudioSocket session is over (the FastAGI driver runs ``EXEC AudioSocket``)."""


class SpeechService:
    """The AudioSocket server and the recogniser, for the IVR's listen steps."""

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        server: AudioSocketServer,
        *,
        end_silence: float = 0.6,
        max_utterance: float = 15.0,
    ) -> None:
        self.recognizer = recognizer
        self.server = server
        self.end_silence = end_silence
        self.max_utterance = max_utterance

    @property
    def languages(self) -> frozenset[str]:
        return self.recognizer.languages

    async def start(self) -> None:
        await self.recognizer.start()
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        await self.recognizer.stop()

    async def listen(
        self,
        connect: Connect,
        *,
        language: str,
        grammar: Sequence[str] = (),
        use_grammar: bool | None = None,
        no_input: float = 5.0,
        prompt: bytes | None = None,
    ) -> Utterance:
        """Recognise one utterance; *prompt* (8 kHz slin) is played through the
        socket first, and stops as soon as the caller speaks."""
        if language not in self.languages:
            raise SpeechError(f"no speech model for language {language!r}")
        stream = await self.recognizer.open(language, grammar, use_grammar=use_grammar)
        limits = ListenLimits(no_input, self.end_silence, self.max_utterance)
        step = _ListenStep(stream, limits, prompt or b"")
        call_id = uuid.uuid4()
        with self.server.expect(call_id, step.run):
            await connect(call_id, self.server.address)
        if step.utterance is None:
            raise SpeechError("the AudioSocket session ended before anything was recognised")
        return step.utterance


class _ListenStep:
    def __init__(self, stream: RecognizerStream, limits: ListenLimits, prompt: bytes) -> None:
        self.stream = stream
        self.limits = limits
        self.prompt = prompt
        self.utterance: Utterance | None = None
        self._barge_in = asyncio.Event()

    async def run(self, connection: AudioSocketConnection) -> None:
        prompt_seconds = len(self.prompt) / BYTES_PER_SECOND
        detector = EndOfSpeech(
            no_input=prompt_seconds + self.limits.no_input,
            end_silence=self.limits.end_silence,
            max_utterance=self.limits.max_utterance,
        )
        player = asyncio.create_task(self._play(connection), name="speech-prompt")
        try:
            self.utterance = await self._recognise(connection, detector)
        finally:
            await cancel_and_wait([player])
        log.info(
            "speech.utterance",
            reason=self.utterance.reason,
            text=self.utterance.text,
            confidence=self.utterance.confidence,
            heard=round(self.utterance.heard, 2),
            barged_in=self.utterance.barged_in,
        )
        await connection.hangup()

    async def _play(self, connection: AudioSocketConnection) -> None:
        """Send the prompt at the pace of the call (20 ms frames); Asterisk
        plays frames as they come, so sending ahead would defeat barge-in.

        Then keep the session alive: app_audiosocket gives up after 2 s
        without a frame either way, and a channel that carries no audio
        while the caller is silent (a Local channel, RTP with silence
        suppression) would end the listen step with an error."""
        loop = asyncio.get_running_loop()
        frame = BYTES_PER_SECOND // 50
        start = loop.time()
        for i, offset in enumerate(range(0, len(self.prompt), frame)):
            if self._barge_in.is_set() or connection.hung_up:
                break
            # Keep ~60 ms queued ahead so the line never runs dry.
            delay = start + i * 0.02 - 0.06 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await connection.send_audio(self.prompt[offset : offset + frame])
        while not connection.hung_up and not connection.closed:
            await connection.send_audio(bytes(frame))
            await asyncio.sleep(_KEEPALIVE)

    async def _recognise(
        self, connection: AudioSocketConnection, detector: EndOfSpeech
    ) -> Utterance:
        loop = asyncio.get_running_loop()
        pending = bytearray()
        heard = 0.0
        while True:
            try:
                events = await asyncio.wait_for(connection.read(), _GAP)
            except TimeoutError:
                # No frame for a while: the channel sends nothing while the
                # caller is silent (Local channels, silence suppression). Count
                # the gap as silence, so end of speech and "no input" come in
                # time whatever the channel does.
                events = [Audio(bytes(int(_GAP * BYTES_PER_SECOND)))]
            if not events:
                return Utterance("", 0.0, "hangup", heard, self._barge_in.is_set())
            for event in events:
                if isinstance(event, Dtmf):
                    log.info("speech.dtmf_ignored", digit=event.digit)
                    continue
                if isinstance(event, ErrorFrame):
                    log.warning("speech.audiosocket_error", code=event.code)
                    continue
                if not isinstance(event, Audio):
                    continue
                heard += event.seconds
                verdict = detector.feed(event.pcm)
                if verdict == "speech" and self.prompt and not self._barge_in.is_set():
                    self._barge_in.set()
                if verdict == "no_input":
                    return Utterance("", 0.0, "no_input", heard, self._barge_in.is_set())
                pending += event.pcm
                ended = verdict in ("end", "too_long")
                if not detector.speaking and not ended:
                    # Keep 300 ms before speech starts; Vosk needs no more.
                    del pending[: max(0, len(pending) - BYTES_PER_SECOND * 3 // 10)]
                    continue
                if len(pending) >= _CHUNK_BYTES or ended:
                    chunk, pending = bytes(pending), bytearray()
                    endpoint = await self.stream.accept(chunk)
                    if ended or endpoint:
                        eos = loop.time()
                        found = await (self.stream.final() if ended else self.stream.result())
                        if ended or found.text:
                            reason: Reason = "too_long" if verdict == "too_long" else "speech"
                            return Utterance(
                                found.text,
                                found.confidence,
                                reason,
                                heard,
                                self._barge_in.is_set(),
                                eos,
                                loop.time(),
                                self.stream.busy_seconds,
                            )


def speech_languages(scripts: Iterable[Script]) -> dict[str, set[str]]:
    """Languages that need a speech model: script name -> its languages, for
    every script with a speech node."""
    needed: dict[str, set[str]] = {}
    for script in scripts:
        for flow in (script.main, *script.subflows.values()):
            if any(isinstance(n, SpeechNode) for n in flow.nodes.values()):
                needed[script.name] = set(script.languages)
    return needed


def require_models(models: Mapping[str, Path], scripts: Iterable[Script]) -> None:
    """Start-up check: every language of every script with a speech node has a
    model directory. Raises ConfigError naming the scripts and the setting."""
    missing: dict[str, list[str]] = {}
    for script, languages in sorted(speech_languages(scripts).items()):
        for language in sorted(languages):
            if language not in models:
                missing.setdefault(language, []).append(script)
    if missing:
        what = "; ".join(f"{lang} (scripts {', '.join(s)})" for lang, s in sorted(missing.items()))
        raise ConfigError(
            f"speech.models: no Vosk model for {what}; set speech.models.<language> "
            "to an unpacked model directory (docs/ivr.md, 'Speech models')"
        )
    for language, path in models.items():
        check_model_dir(language, path)
