"""Tier 3: `callcenter run --sandbox` (what `make run` does) brings the stack up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from callcenter.sandbox.asterisk import AsteriskSandbox
from callcenter.sandbox.postgres import free_port
from callcenter.testing.sipp import free_udp_port

pytestmark = pytest.mark.asterisk


def test_run_with_sandbox_serves_health_and_stops_cleanly(database_url: str) -> None:
    http, ami, agi = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CALLCENTER_HTTP__PORT": str(http),
        "CALLCENTER_AMI__PORT": str(ami),
        "CALLCENTER_AGI__PORT": str(agi),
        "CALLCENTER_LOG__FORMAT": "json",
        "CALLCENTER_RUN_SECONDS": "6",
    }
    name = f"runsmoke-{os.getpid()}"
    command = [sys.executable, "-m", "callcenter", "run", "--sandbox"]
    command += ["--sandbox-name", name, "--sip-port", str(free_udp_port())]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    health: dict[str, object] = {}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=1) as reply:
                health = json.loads(reply.read())
            if health.get("ok"):
                break
        except OSError:
            pass
        time.sleep(0.3)
    stdout, stderr = process.communicate(timeout=60)
    AsteriskSandbox(name).destroy()
    assert process.returncode == 0, stderr[-3000:]
    assert health.get("ok") is True, (health, stderr[-3000:])
    assert health.get("node") == "node1"
    events = [json.loads(line).get("event") for line in stderr.splitlines() if line.startswith("{")]
    assert "daemon.started" in events
    assert "daemon.stopped" in events
    # The event loop at Asterisk's priority while serving (callcenter/scheduling.py).
    assert "scheduling.realtime" in events
    assert "sandbox: Asterisk SIP" in stdout
