"""Expected wait time (EWT) and position, from the live state.

    EWT = position * AHT / staffed

``position``: the waiting calls of the same queue served before this one
(priority, then enqueue time), plus one; ``staffed``: the logged-in agents
eligible for the call (ready, busy or paused: they serve the queue over the
next minutes); ``AHT``: the mean of the queue's last handle times (talk +
wrap-up), the queue's default until it has some.

Why this formula: with ``staffed`` agents each finishing a call every AHT on
average, calls leave the system at ``staffed / AHT`` per second, and this
call is served after ``position`` departures. It is an estimate for
announcements ("about 3 minutes"), not a promise: it ignores that other
queues share the agents and that callers ahead may abandon (both make it
pessimistic by roughly the abandon rate).
"""

from __future__ import annotations

from collections import deque

__all__ = ["HandleTimes", "expected_wait"]


class HandleTimes:
    """The last ``size`` handle times of one queue, with their running sum."""

    def __init__(self, default: float, size: int = 50) -> None:
        self.default = default
        self._times: deque[float] = deque(maxlen=size)
        self._sum = 0.0

    def add(self, seconds: float) -> None:
        if len(self._times) == self._times.maxlen:
            self._sum -= self._times[0]
        self._times.append(seconds)
        self._sum += seconds

    @property
    def mean(self) -> float:
        return self._sum / len(self._times) if self._times else self.default

    def __len__(self) -> int:
        return len(self._times)


def expected_wait(position: int, staffed: int, aht: float) -> float | None:
    """Seconds until the call at ``position`` is served; None if nobody serves it."""
    if staffed <= 0:
        return None
    return position * aht / staffed
