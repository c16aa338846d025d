"""Tier 3: `kill -9` of the daemon with ten callers waiting.

The daemon runs as its own process (`python -m callcenter run`). While ten
sipp callers wait in queue it is killed with SIGKILL; a new daemon starts;
agents log in through REST. Every caller is connected exactly once (checked
in PostgreSQL), none is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from callcenter.sandbox.postgres import free_port
from callcenter.testing.databases import fresh_database
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

SITE = """
queues:
  support: {skills: {support: 1}, wrapup: 0.2, first_announce_after: 60, ring_timeout: 8}
routes:
  default: {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent16, skills: {support: 5}}
  a02: {name: Agent 2, endpoint: agent17, skills: {support: 5}}
"""


def http(port: int, method: str, path: str) -> tuple[int, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"")
    try:
        with urllib.request.urlopen(request, timeout=2) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def daemon_process(config: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "CALLCENTER_CONFIG_FILE": str(config)}
    with (config.parent / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "run"], env=env, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def healthy(port: int) -> bool:
    try:
        status, body = http(port, "GET", "/health")
    except OSError:
        return False
    return status == 200 and isinstance(body, dict) and bool(body.get("ok"))


def waiting(port: int) -> int:
    try:
        _status, body = http(port, "GET", "/api/queues")
    except OSError:
        return -1
    assert isinstance(body, dict)
    return int(body["support"]["waiting"])


async def test_kill_9_with_ten_callers_waiting_loses_nobody(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    http_port = free_port()
    (tmp_path / "site.yaml").write_text(SITE)
    config = tmp_path / "callcenter.toml"
    config.write_text(
        f"""
[ami]
port = {asterisk.ports.ami}
secret = "{asterisk.ami.secret}"
ping_interval = 1.0
ping_timeout = 1.0
[agi]
port = {asterisk.ports.agi}
[http]
port = {http_port}
auth = "off"
[database]
url = "{url}"
[site]
file = "{tmp_path / "site.yaml"}"
[recording]
asterisk_dir = "{asterisk.sandbox.recordings_in_asterisk}"
[log]
format = "json"
"""
    )
    async with sipp_caller(asterisk.ports.sip, "3901", calls=10, rate=10) as callers:
        with daemon_process(config, "first") as first:
            await until(lambda: healthy(http_port), 30, "first daemon up", poll=0.2)
            await until(lambda: waiting(http_port) == 10, 30, "10 callers waiting", poll=0.2)
            await asyncio.sleep(1.0)  # each caller's place is written on its channel
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        await asyncio.sleep(2.0)
        async with sipp_agents(
            asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=700
        ):
            with daemon_process(config, "second") as second:
                await until(lambda: healthy(http_port), 30, "second daemon up", poll=0.2)
                await until(lambda: waiting(http_port) == 10, 30, "10 callers back", poll=0.2)
                for agent in ("a01", "a02"):
                    assert http(http_port, "POST", f"/api/agents/{agent}/login")[0] == 200
                result = await callers.wait(timeout=90)
                assert result.ok, result.errors or result.stderr
                await asyncio.sleep(1.0)  # the writer catches up
                connection = await asyncpg.connect(url)
                try:
                    rows = await connection.fetch(
                        "SELECT linkedid, outcome, count(*) AS n FROM interactions"
                        " GROUP BY linkedid, outcome"
                    )
                finally:
                    await connection.close()
                second.send_signal(signal.SIGTERM)
                assert second.wait(timeout=20) == 0
    assert len(rows) == 10
    assert all(r["outcome"] == "completed" and r["n"] == 1 for r in rows)
    assert asterisk.active_channels() == 0
