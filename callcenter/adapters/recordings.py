"""Recording post-processing (pydub + ffmpeg), off the event loop.

MixMonitor writes ``<interaction>.wav`` (8 kHz) while the call goes on. Once
the interaction is over, a worker task waits until the file stops growing
(MixMonitor closes it just after the hang-up), normalises the level, exports
the configured format (MP3 by default, ffmpeg underneath) and reports the
duration, so the interaction row can carry it. File names are ours (an
interaction id), never caller input; nothing is passed to a shell.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydub import AudioSegment, effects

from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.recordings")


@dataclass(frozen=True, slots=True)
class Processed:
    interaction_id: str
    source: Path
    output: Path
    seconds: float
    bytes: int


def process(source: Path, output_format: str = "mp3", keep_source: bool = True) -> Processed:
    """Normalise and export one recording (blocking: run it in a thread)."""
    audio = AudioSegment.from_wav(source)
    if len(audio) > 0 and audio.max > 0:
        audio = effects.normalize(audio, headroom=1.0)
    output = source.with_suffix(f".{output_format}")
    audio.export(output, format=output_format, bitrate="32k", parameters=["-ac", "1"])
    if not keep_source:
        source.unlink()
    return Processed(source.stem, source, output, len(audio) / 1000.0, output.stat().st_size)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


class RecordingWorker:
    """One owned task; recordings are handled in order, one at a time."""

    def __init__(
        self,
        directory: Path,
        *,
        output_format: str = "mp3",
        keep_source: bool = True,
        on_done: Callable[[Processed], None] | None = None,
        settle: float = 0.5,
        wait_for_file: float = 10.0,
    ) -> None:
        self.directory = directory
        self.output_format = output_format
        self.keep_source = keep_source
        self.on_done = on_done
        self._settle = settle
        self._wait_for_file = wait_for_file
        self._pending: deque[str] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.done: list[Processed] = []
        self.failures = 0

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def submit(self, interaction_id: str) -> None:
        if "/" in interaction_id or interaction_id.startswith("."):
            raise ValueError(f"not a recording name: {interaction_id!r}")
        self._pending.append(interaction_id)
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recording-worker")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            interaction_id = self._pending.popleft()
            source = self.directory / f"{interaction_id}.wav"
            try:
                await self._settled(source)
                result = await asyncio.to_thread(
                    process, source, self.output_format, self.keep_source
                )
            except (OSError, ValueError, TimeoutError) as exc:
                self.failures += 1
                log.error("recording.failed", interaction=interaction_id, error=str(exc))
                continue
            except Exception as exc:  # pydub raises its own errors (CouldntDecodeError...)
                self.failures += 1
                log.error("recording.failed", interaction=interaction_id, error=repr(exc))
                continue
            self.done.append(result)
            log.info(
                "recording.processed",
                interaction=interaction_id,
                seconds=round(result.seconds, 2),
                output=str(result.output),
            )
            if self.on_done is not None:
                self.on_done(result)

    async def _settled(self, source: Path) -> None:
        """Wait until the file exists and its size has not changed for a while."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_for_file
        last = -1
        while True:
            size = await asyncio.to_thread(_size, source)
            if size == last and size > 44:
                return
            last = size
            if loop.time() > deadline:
                raise TimeoutError(f"{source} did not appear or settle in time")
            await asyncio.sleep(self._settle)
