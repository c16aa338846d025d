"""Numbered event streams that a reconnecting desktop can replay (resume).

One stream per agent (``agent:a01``) and one for supervisors
(``supervisors``). Each keeps its last ``capacity`` events. A desktop that
reconnects says which stream epoch and sequence number it saw last and gets
exactly the events after it, in order; when those are no longer kept (a long
outage) or the epoch changed (the daemon restarted) it is told to start from
a fresh snapshot instead. Nothing is silently skipped.

Events are kept as the text sent on the socket, encoded once: a string is
one object the garbage collector never scans, whereas hundreds of thousands
of kept event objects with their nested data made every full collection of
a busy daemon pause it for half a second (bench/e2e_load.py, 10 minutes at
30 calls/s).

Pure: no clock (times come in with the events), no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from callcenter.cti.protocol import Event, encode

SUPERVISORS = "supervisors"


def agent_stream(agent_id: str) -> str:
    return f"agent:{agent_id}"


@dataclass
class _Stream:
    seq: int
    frames: deque[tuple[int, str]]
    """(seq, the event encoded as sent)."""


@dataclass(frozen=True, slots=True)
class Appended:
    event: Event
    frame: str
    """``event`` encoded: what every subscriber of the stream is sent."""


class Journal:
    def __init__(self, epoch: str, capacity: int = 2_000) -> None:
        self.epoch = epoch
        """Changes when the daemon restarts: sequence numbers start again."""
        self.capacity = capacity
        self._streams: dict[str, _Stream] = {}

    def append(self, stream: str, at: float, kind: str, data: dict[str, Any]) -> Appended:
        entry = self._streams.get(stream)
        if entry is None:
            entry = self._streams[stream] = _Stream(0, deque(maxlen=self.capacity))
        entry.seq += 1
        event = Event(entry.seq, at, kind, data)
        frame = encode(event)
        entry.frames.append((entry.seq, frame))
        return Appended(event, frame)

    def seq(self, stream: str) -> int:
        entry = self._streams.get(stream)
        return entry.seq if entry else 0

    def since(self, stream: str, epoch: str | None, after: int | None) -> list[str] | None:
        """The events after ``after`` (encoded), or None when they cannot all
        be given."""
        if epoch != self.epoch or after is None:
            return None
        entry = self._streams.get(stream)
        current = entry.seq if entry else 0
        if after > current:
            return None  # a number we never gave: the page is confused, resync
        if after == current:
            return []
        assert entry is not None
        oldest = entry.frames[0][0] if entry.frames else current + 1
        if after + 1 < oldest:
            return None
        return [frame for seq, frame in entry.frames if seq > after]
