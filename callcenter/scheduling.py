"""The event loop's thread at Asterisk's realtime priority.

Asterisk runs every thread under ``SCHED_RR`` priority 10 (``highpriority``
in asterisk.conf, docs/asterisk-notes.md). A realtime thread that wakes on the
CPU the daemon's event loop runs on takes that CPU at once: at 30 calls/s on 2
vCPU, the loop waited up to 7 ms at p99 for its CPU, most of the tail of
agent-free -> ring (issue 4). At the *same* priority neither preempts the
other (each runs until it waits), and both go before ordinary processes
(docs/performance.md, "The daemon at Asterisk's priority"). Below Asterisk's
priority the loop is preempted as before.

Only the loop's thread: with ``SCHED_RESET_ON_FORK`` the threads it starts
(password hashing, file writes, speech recognition) and the processes it runs
are ordinary again, so CPU-heavy work never runs at realtime priority.

It needs root or ``CAP_SYS_NICE``, as Asterisk's does; without it the daemon
says so and runs at ordinary priority.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import structlog

log = structlog.get_logger("callcenter.scheduling")


@contextlib.contextmanager
def loop_priority(realtime: bool, priority: int) -> Iterator[bool]:
    """While inside, the calling thread (the event loop's) runs under
    ``SCHED_RR`` ``priority`` if ``realtime``; yields whether it does. The
    previous policy is put back on exit."""
    if not realtime:
        yield False
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except PermissionError:
        log.warning(
            "scheduling.realtime_refused",
            priority=priority,
            why="needs root or CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE)",
        )
        yield False
        return
    log.info("scheduling.realtime", policy="SCHED_RR", priority=priority)
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)
