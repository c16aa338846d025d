"""Tier 3: `kill -9` of the daemon with callers waiting and a call connected.

The daemon runs as its own process (`python -m callcenter run`). It is
killed with SIGKILL; a new daemon starts and rebuilds from Asterisk and
PostgreSQL. Every caller is connected exactly once (checked in PostgreSQL),
none is lost, and a call connected during the crash is tracked to its end.
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


def agent_view(port: int, agent_id: str) -> dict[str, object]:
    _status, body = http(port, "GET", "/api/agents")
    assert isinstance(body, list)
    [view] = [a for a in body if a["agent"] == agent_id]
    return dict(view)


async def stored(url: str, query: str) -> list[asyncpg.Record]:
    """Rows of PostgreSQL once the daemon's writer has caught up."""
    await asyncio.sleep(1.0)
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def write_config(tmp_path: Path, asterisk: AsteriskInstance, url: str, http_port: int) -> Path:
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
    return config


async def test_kill_9_with_ten_callers_waiting_loses_nobody(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    http_port = free_port()
    config = write_config(tmp_path, asterisk, url, http_port)
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
                rows = await stored(
                    url,
                    "SELECT linkedid, outcome, count(*) AS n FROM interactions"
                    " GROUP BY linkedid, outcome",
                )
                stop(second)
    assert len(rows) == 10
    assert all(r["outcome"] == "completed" and r["n"] == 1 for r in rows)
    assert asterisk.active_channels() == 0


async def test_kill_9_with_a_call_connected_tracks_it_to_its_end(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    http_port = free_port()
    config = write_config(tmp_path, asterisk, url, http_port)
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=12_000),
        sipp_caller(asterisk.ports.sip, "3901", calls=2, rate=10) as callers,
    ):
        with daemon_process(config, "first") as first:
            await until(lambda: healthy(http_port), 30, "first daemon up", poll=0.2)
            assert http(http_port, "POST", "/api/agents/a01/login")[0] == 200
            await until(
                lambda: (
                    agent_view(http_port, "a01")["state"] == "on_call" and waiting(http_port) == 1
                ),
                30,
                "one caller with a01, one waiting",
                poll=0.2,
            )
            connected = agent_view(http_port, "a01")["interaction"]
            await asyncio.sleep(1.0)  # the writer stores the login and the answer
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        with daemon_process(config, "second") as second:
            await until(lambda: healthy(http_port), 30, "second daemon up", poll=0.2)
            await until(lambda: waiting(http_port) == 1, 30, "the waiting caller back", poll=0.2)
            # Rebuilt: a01 is still logged in and on the same call.
            a01 = agent_view(http_port, "a01")
            assert (a01["state"], a01["interaction"]) == ("on_call", connected)
            # a01 hangs up after 12 s, then takes the waiting caller.
            result = await callers.wait(timeout=60)
            assert result.ok, result.errors or result.stderr
            rows = await stored(
                url,
                "SELECT linkedid, id::text, outcome, agent_id, answered_at IS NOT NULL AS"
                " answered, ended_at IS NOT NULL AS ended FROM interactions",
            )
            stop(second)
    assert len(rows) == 2
    assert len({r["linkedid"] for r in rows}) == 2  # one interaction per caller
    assert connected in {r["id"] for r in rows}
    assert all(
        (r["outcome"], r["agent_id"], r["answered"], r["ended"]) == ("completed", "a01", True, True)
        for r in rows
    )
    assert asterisk.active_channels() == 0
