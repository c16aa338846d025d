"""Tier 3: the CTI bridge with real calls: security, hostile sockets, resume.

A daemon with authentication on (users in a real PostgreSQL), the sandbox
Asterisk, sipp callers and agents. The browser test is in test_desktop.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from callcenter.daemon import Daemon
from callcenter.testing.daemons import connected, rest, running_daemon
from callcenter.testing.databases import fresh_database
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

PASSWORD = "correct horse"

SITE = """
queues:
  support:
    skills: {support: 1}
    language: fr
    ring_timeout: 15
    wrapup: 30
    first_announce_after: 60
routes:
  '3901': {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5}}
  a02: {name: Agent 2, endpoint: agent12, skills: {support: 5}}
supervisors:
  s1: {name: Supervisor 1, endpoint: supervisor1}
  s2: {name: Supervisor 2, endpoint: supervisor2}
"""


async def seeded(d: Daemon) -> None:
    from callcenter.store.users import seed_site_users

    assert d.users is not None
    await seed_site_users(d.users, d.site, PASSWORD)


async def login(d: Daemon, name: str, password: str = PASSWORD) -> str:
    status, body = await rest(d, "POST", "/api/auth/login", {"login": name, "password": password})
    assert status == 200, body
    return str(body["token"])


async def test_roles_decide_who_may_do_what_and_supervisors_are_audited(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with running_daemon(
        asterisk, tmp_path, SITE, database_url=url, auth="required", contacts=True
    ) as d:
        await seeded(d)
        assert (await rest(d, "GET", "/api/agents"))[0] == 401
        assert (await rest(d, "GET", "/api/agents", token="forged"))[0] == 401
        status, body = await rest(d, "POST", "/api/auth/login", {"login": "a01", "password": "x"})
        assert (status, body) == (401, {"error": "wrong login or password"})
        status, _ = await rest(d, "POST", "/api/auth/login", {"login": "nobody", "password": "x"})
        assert status == 401

        agent = await login(d, "a01")
        assert (await rest(d, "GET", "/api/auth/me", token=agent))[1]["agent"] == "a01"
        assert (await rest(d, "POST", "/api/agents/a01/login", token=agent))[0] == 200
        # An agent token cannot touch another agent, spy, or see the wallboard.
        status, body = await rest(d, "POST", "/api/agents/a02/login", token=agent)
        assert status == 403, body
        assert d.views.agent("a02")["state"] == "logged_out"
        coach = {"agent": "a02", "mode": "listen"}
        assert (await rest(d, "POST", "/api/supervisors/s1/coach", coach, token=agent))[0] == 403
        assert (await rest(d, "GET", "/api/calls", token=agent))[0] == 403
        message = {"text": "hi"}
        assert (await rest(d, "POST", "/api/agents/a02/message", message, token=agent))[0] == 403

        supervisor = await login(d, "s1")
        assert (await rest(d, "POST", "/api/agents/a02/login", token=supervisor))[0] == 200
        pause = {"reason": "meeting"}
        status, body = await rest(d, "POST", "/api/agents/a02/pause", pause, token=supervisor)
        assert status == 200, body
        assert d.acd.agent_state("a02") == "paused"
        # A supervisor coaches from their own phone only.
        status, _ = await rest(d, "POST", "/api/supervisors/s2/coach", coach, token=supervisor)
        assert status == 403
        assert (await rest(d, "GET", "/api/calls", token=supervisor))[0] == 200

        assert (await rest(d, "POST", "/api/auth/logout", token=agent))[0] == 200
        assert (await rest(d, "GET", "/api/agents", token=agent))[0] == 401

        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT actor, action, target, detail FROM audit_log ORDER BY id"
            )
        finally:
            await connection.close()
        trail = [(r["actor"], r["action"], r["target"]) for r in rows]
        assert trail == [("s1", "agent.login", "a02"), ("s1", "agent.pause", "a02")]
        assert json.loads(rows[1]["detail"]) == {"reason": "meeting"}


class Socket:
    """A CTI client for tests: what the desktop's cti.js does, in Python."""

    def __init__(self, d: Daemon, http: aiohttp.ClientSession) -> None:
        self.url = f"http://127.0.0.1:{d.http.port}/cti/ws"
        self.http = http
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self, hello: dict[str, Any]) -> dict[str, Any]:
        self.ws = await self.http.ws_connect(self.url)
        await self.ws.send_str(json.dumps({"type": "hello", **hello}))
        return await self.receive()

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            message = await self.ws.receive(timeout=timeout)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            data: dict[str, Any] = json.loads(message.data)
            if data["type"] != "ping":
                return data

    async def event(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                data = await self.receive(timeout)
                if data["type"] == "event" and data["kind"] == kind:
                    return data


async def test_hostile_socket_messages_get_errors_or_a_clean_close(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with (
        running_daemon(
            asterisk, tmp_path, SITE, database_url=url, auth="required", contacts=True
        ) as d,
        aiohttp.ClientSession() as http,
    ):
        await seeded(d)
        token = await login(d, "a01")
        # No valid token: an error, then close 4401.
        stranger = Socket(d, http)
        reply = await stranger.open({"token": "forged"})
        assert reply["type"] == "error"
        assert reply["code"] == "unauthenticated"
        assert stranger.ws is not None
        closing = await stranger.ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert stranger.ws.close_code == 4401
        # First message not a hello: close 4400.
        rude = await http.ws_connect(f"http://127.0.0.1:{d.http.port}/cti/ws")
        await rude.send_str('{"type": "ping"}')
        assert json.loads((await rude.receive(timeout=5)).data)["type"] == "error"
        await rude.receive(timeout=5)
        assert rude.close_code == 4400

        agent = Socket(d, http)
        welcome = await agent.open({"token": token})
        assert welcome["type"] == "welcome"
        assert welcome["agent"] == "a01"
        assert welcome["snapshot"]["agent"]["state"] == "logged_out"
        assert agent.ws is not None
        for bad, why in [
            ("not json", "not JSON"),
            ('{"type": "subscribe", "stream": "supervisors"}', "unknown message type"),
            ('{"type": "hello", "token": "again"}', "already"),
            ('{"type": "ping", "nonce": {"a": 1}}', "'nonce'"),
        ]:
            await agent.ws.send_str(bad)
            reply = await agent.receive()
            assert reply["type"] == "error", bad
            assert why in reply["message"], reply
        await agent.ws.send_bytes(b"\x00\x01")
        assert (await agent.receive())["message"] == "text frames only"
        # Still alive and useful after all that.
        await agent.ws.send_str('{"type": "ping", "nonce": "n1"}')
        assert await agent.receive() == {"type": "pong", "nonce": "n1"}
        assert (await rest(d, "POST", "/api/agents/a01/login", token=token))[0] == 200
        assert (await agent.event("agent.state"))["data"]["state"] == "ready"
        # Oversized: aiohttp closes with 1009 (message too big), nothing else breaks.
        await agent.ws.send_str('{"type": "ping", "nonce": "' + "x" * 100_000 + '"}')
        closing = await agent.ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert agent.ws.close_code == 1009
        assert d.acd.agent_state("a01") == "ready"  # a dropped socket logs nobody out
        assert (await rest(d, "GET", "/health"))[0] == 200


async def test_socket_cut_while_ringing_resumes_with_the_missed_events_in_order(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with (
        running_daemon(
            asterisk, tmp_path, SITE, database_url=url, auth="required", contacts=True
        ) as d,
        aiohttp.ClientSession() as http,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=2500, talk_ms=3000),
    ):
        await seeded(d)
        token = await login(d, "a01")
        assert (await rest(d, "POST", "/api/agents/a01/login", token=token))[0] == 200
        desk = Socket(d, http)
        welcome = await desk.open({"token": token})
        epoch = welcome["epoch"]
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            ringing = await desk.event("call.ringing")
            assert ringing["data"]["number"] == "0612345678"
            assert desk.ws is not None
            await desk.ws.close()  # the network blips while the phone rings
            await until(lambda: connected(d), what="answered while the desktop was away")
            await until(lambda: d.acd.agent_state("a01") == "wrap_up", what="hung up")
            back = Socket(d, http)
            resumed = await back.open({"token": token, "epoch": epoch, "after": ringing["seq"]})
            assert resumed["type"] == "welcome"
            assert resumed["resumed"] is True
            assert resumed["seq"] == ringing["seq"]
            replay = []
            while len(replay) < 5:
                replay.append(await back.receive())
            first = ringing["seq"] + 1
            assert [e["seq"] for e in replay] == list(range(first, first + 5))
            # The CRM answered just after the ring: the completed screen-pop.
            assert replay[0]["kind"] == "call.contact"
            assert replay[0]["data"]["name"] == "Mme Claire Martin"
            assert [e["kind"] for e in replay[1:]] == [
                "agent.state",
                "call.answered",
                "agent.state",
                "call.ended",
            ]
            assert [e["data"].get("state") for e in replay[1::2]] == ["on_call", "wrap_up"]
            assert replay[4]["data"]["wrapup_until"] > replay[3]["at"]
            await caller.wait(timeout=40)
            # A page from before a daemon restart (unknown epoch) gets a snapshot instead.
            fresh = await Socket(d, http).open({"token": token, "epoch": "old", "after": 3})
            assert fresh["resumed"] is False
            assert fresh["snapshot"]["agent"]["state"] == "wrap_up"


async def test_rest_api_fuzzed_from_its_openapi_document_never_fails_on_the_server(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with running_daemon(
        asterisk, tmp_path, SITE, database_url=url, auth="required", contacts=True
    ) as d:
        await seeded(d)
        token = await login(d, "admin")
        status, document = await rest(d, "GET", "/api/openapi.json")
        assert status == 200
        assert "/api/agents/{agent}/pause" in document["paths"]
        assert "/api/reports/daily" in document["paths"]
        schemathesis = Path(sys.executable).parent / "schemathesis"
        fuzz = await asyncio.create_subprocess_exec(
            str(schemathesis),
            "run",
            f"http://127.0.0.1:{d.http.port}/api/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "30",
            "--exclude-path",
            "/api/auth/logout",  # it would revoke the token the fuzzer uses
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(fuzz.communicate(), 600)
        report = output.decode(errors="replace")
        assert fuzz.returncode == 0, report[-6000:]
        assert "passed" in report.lower(), report[-2000:]
        assert (await rest(d, "GET", "/health"))[0] == 200
