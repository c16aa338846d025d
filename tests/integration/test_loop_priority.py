"""Tier 2: the event loop's thread at Asterisk's realtime priority
(callcenter/scheduling.py), on the real kernel scheduler. Each case runs in a
child process, so the test process's own scheduling never changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Inside loop_priority: this thread's policy, a thread's and a process's
# started from it; after it: this thread's again.
PROBE = """
import json, os, subprocess, sys, threading
from callcenter.scheduling import loop_priority

def policy(pid=0):
    return os.sched_getscheduler(pid) & ~os.SCHED_RESET_ON_FORK

seen = {}
with loop_priority(sys.argv[1] == "on", 10) as applied:
    seen["applied"] = applied
    seen["inside"] = [policy(), os.sched_getparam(0).sched_priority]
    worker = threading.Thread(target=lambda: seen.__setitem__("thread", policy()))
    worker.start()
    worker.join()
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
        capture_output=True, text=True, check=True,
    )
    seen["process"] = int(child.stdout)
seen["after"] = policy()
print(json.dumps(seen))
"""


def probe(mode: str, *, without_sys_nice: bool = False) -> tuple[dict[str, object], str]:
    command = [sys.executable, "-c", PROBE, mode]
    if without_sys_nice:
        command = ["setpriv", "--bounding-set", "-sys_nice", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout.splitlines()[-1]), result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="realtime scheduling needs root or CAP_SYS_NICE")
def test_only_the_loop_thread_runs_at_realtime_and_only_while_inside() -> None:
    seen, _output = probe("on")
    assert seen["applied"] is True
    assert seen["inside"] == [os.SCHED_RR, 10]
    # CPU-heavy work started from the loop (hashing threads, ffmpeg) stays ordinary.
    assert seen["thread"] == os.SCHED_OTHER
    assert seen["process"] == os.SCHED_OTHER
    assert seen["after"] == os.SCHED_OTHER


def test_switched_off_it_changes_nothing() -> None:
    seen, _output = probe("off")
    assert seen["applied"] is False
    assert seen["inside"] == [os.SCHED_OTHER, 0]
    assert seen["after"] == os.SCHED_OTHER


@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv drops the right from root")
def test_without_the_right_it_says_so_and_runs_at_ordinary_priority() -> None:
    seen, output = probe("on", without_sys_nice=True)
    assert seen["applied"] is False
    assert seen["inside"] == [os.SCHED_OTHER, 0]
    assert "scheduling.realtime_refused" in output
    assert "CAP_SYS_NICE" in output
