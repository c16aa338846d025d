"""Tier 2: recording post-processing with pydub and the real ffmpeg."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydub import AudioSegment
from pydub.generators import Sine

from callcenter.adapters.recordings import Processed, RecordingWorker


def quiet_wav(path: Path, seconds: float) -> None:
    tone = Sine(440).to_audio_segment(duration=int(seconds * 1000), volume=-30.0)
    tone.set_frame_rate(8000).set_channels(1).set_sample_width(2).export(path, format="wav")


async def test_worker_normalises_and_exports_in_order(tmp_path: Path) -> None:
    quiet_wav(tmp_path / "i-1.wav", 2.0)
    quiet_wav(tmp_path / "i-2.wav", 1.0)
    seen: list[Processed] = []
    worker = RecordingWorker(tmp_path, on_done=seen.append, settle=0.05, wait_for_file=1.0)
    await worker.start()
    try:
        worker.submit("i-1")
        worker.submit("i-2")
        worker.submit("missing")  # never appears: reported, the worker goes on
        for _ in range(400):
            if len(seen) == 2 and worker.failures == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert [p.interaction_id for p in seen] == ["i-1", "i-2"]
    assert abs(seen[0].seconds - 2.0) < 0.1
    mp3 = AudioSegment.from_file(tmp_path / "i-1.mp3")
    original = AudioSegment.from_wav(tmp_path / "i-1.wav")
    assert mp3.max_dBFS > original.max_dBFS + 20  # normalised from -30 dBFS
    assert worker.failures == 1


@pytest.mark.parametrize("bad", ["../etc/passwd", ".hidden"])
def test_a_name_with_a_path_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a recording name"):
        RecordingWorker(tmp_path).submit(bad)
