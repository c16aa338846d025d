"""Tier 3: what an agent does to a live call from the desktop: hold, resume,
hang up, and a callback promised to the customer, on the sandbox Asterisk."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callcenter.callpath.service import Phase
from callcenter.protocol.ami_events import ChanSpyStart, DTMFEnd
from callcenter.testing.daemons import connected, rest, running_daemon
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

SITE = """
queues:
  support:
    skills: {support: 1}
    language: fr
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 60
routes:
  '3901': {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5}}
supervisors:
  s1: {name: Supervisor 1, endpoint: supervisor1}
"""


def channel_apps(asterisk: AsteriskInstance) -> list[str]:
    """Application of every live channel ("core show channels concise")."""
    lines = asterisk.cli("core show channels concise").splitlines()
    return [line.split("!")[5] for line in lines if line.count("!") > 5]


def on_hold(asterisk: AsteriskInstance) -> bool:
    """A caller waits in a holding bridge (callcenter-hold: music on hold).
    An empty one may stay listed while its BridgeWait() runs on elsewhere."""
    # Columns: Bridge-ID, Name (may be empty), Chans, Type, Technology, Duration.
    rows = [line.split() for line in asterisk.cli("bridge show all").splitlines()]
    return any(row[-2] == "holding_bridge" and int(row[-4]) > 0 for row in rows if len(row) >= 5)


async def test_hold_resume_and_hangup_from_the_desktop(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        running_daemon(asterisk, tmp_path, SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200),
        sipp_caller(asterisk.ports.sip, "3901") as caller,
    ):
        d.callpath.agent_login("a01")
        await until(lambda: connected(d), what="connected")
        [record] = list(d.callpath.calls.values())
        await until(lambda: channel_apps(asterisk).count("Bridge") == 1, what="bridged")

        status, body = await rest(d, "POST", "/api/agents/a01/hold")
        assert status == 200, body
        await until(lambda: on_hold(asterisk), what="caller hears MOH")
        assert "Wait" in channel_apps(asterisk)  # the agent's leg, waiting
        assert (await rest(d, "POST", "/api/agents/a01/hold"))[0] == 409  # already held
        await asyncio.sleep(0.5)  # some hold time to count

        status, body = await rest(d, "POST", "/api/agents/a01/resume")
        assert status == 200, body
        await until(lambda: not on_hold(asterisk), what="off hold")
        await until(lambda: channel_apps(asterisk).count("Bridge") == 1, what="bridged again")
        assert record.phase is Phase.CONNECTED
        assert record.hold_seconds >= 0.5
        assert (await rest(d, "POST", "/api/agents/a01/resume"))[0] == 409  # not held

        status, body = await rest(d, "POST", "/api/agents/a01/hangup")
        assert status == 200, body
        await until(lambda: record.phase is Phase.COMPLETED, what="completed")
        assert (await rest(d, "POST", "/api/agents/a01/hangup"))[0] == 409  # no call
        await caller.wait(timeout=40)
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_caller_hanging_up_during_hold_frees_the_agent(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        running_daemon(asterisk, tmp_path, SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200),
        sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=4000) as caller,
    ):
        d.callpath.agent_login("a01")
        await until(lambda: connected(d), what="connected")
        [record] = list(d.callpath.calls.values())
        assert (await rest(d, "POST", "/api/agents/a01/hold"))[0] == 200
        await caller.wait(timeout=20)
        await until(lambda: record.phase is Phase.COMPLETED, what="completed")
        assert record.hold_seconds > 0
    # The agent's leg did not stay waiting in callcenter-held.
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_a_call_on_hold_survives_a_daemon_restart(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=9000),
        sipp_caller(asterisk.ports.sip, "3901") as caller,
    ):
        async with running_daemon(asterisk, tmp_path, SITE) as first:
            first.callpath.agent_login("a01")
            await until(lambda: connected(first), what="connected")
            [before] = list(first.callpath.calls.values())
            await until(lambda: channel_apps(asterisk).count("Bridge") == 1, what="bridged")
            await first.callpath.hold("a01")
            await until(lambda: on_hold(asterisk), what="caller hears MOH")
        # A new daemon while the caller is on hold. Before, it hung up the
        # agent's leg (alone, so "stale") and the caller heard music for ever.
        async with running_daemon(asterisk, tmp_path, SITE) as second:
            await until(lambda: second.callpath.calls, what="call adopted")
            [adopted] = list(second.callpath.calls.values())
            assert adopted.interaction_id == before.interaction_id
            assert adopted.caller_uniqueid == before.caller_uniqueid
            assert adopted.held_since is not None
            assert "Wait" in channel_apps(asterisk)  # the agent's leg, still waiting
            await second.callpath.resume("a01")
            await until(lambda: not on_hold(asterisk), what="off hold")
            await until(lambda: channel_apps(asterisk).count("Bridge") == 1, what="bridged again")
            await until(lambda: adopted.phase is Phase.COMPLETED, timeout=20, what="completed")
            assert (await caller.wait(timeout=30)).ok
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_agent_schedules_a_callback_for_the_customer(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        running_daemon(asterisk, tmp_path, SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=1500),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=1500),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: d.callpath.history, timeout=30, what="first call done")
            await caller.wait(timeout=40)
        [first] = list(d.callpath.history)
        due = datetime.fromtimestamp(time.time() + 3, UTC)
        end = datetime.fromtimestamp(time.time() + 300, UTC)
        body = {"interaction": first.interaction_id, "number": "0698765432", "at": due.isoformat()}
        for window_end in (
            "soon",
            end.replace(tzinfo=None).isoformat(),
            due.isoformat(),
        ):
            # malformed, naive, ends as it starts
            status, answer = await rest(
                d, "POST", "/api/agents/a01/callbacks", dict(body, until=window_end)
            )
            assert status == 400, answer
        past = {
            "interaction": first.interaction_id,
            "number": "0698765432",
            "until": "2020-01-01T00:00:00+00:00",
        }
        status, answer = await rest(d, "POST", "/api/agents/a01/callbacks", past)
        assert (status, "past" in answer["error"]) == (400, True), answer
        body["until"] = end.isoformat()
        bad = dict(body, at="tomorrow")
        assert (await rest(d, "POST", "/api/agents/a01/callbacks", bad))[0] == 400
        naive = dict(body, at=due.replace(tzinfo=None).isoformat())
        assert (await rest(d, "POST", "/api/agents/a01/callbacks", naive))[0] == 400
        wrong = dict(body, number="06-98")
        assert (await rest(d, "POST", "/api/agents/a01/callbacks", wrong))[0] == 409
        status, answer = await rest(d, "POST", "/api/agents/a01/callbacks", body)
        assert status == 200, answer
        callback = d.callpath.calls[answer["callback"]]
        assert answer["not_after"] == callback.not_after_wall == end.timestamp()
        assert callback.kind == "callback"
        assert callback.origin == first.interaction_id
        await until(lambda: d.acd.agent_state("a01") == "ready", what="wrap-up over")
        await asyncio.sleep(1)
        assert callback.phase is Phase.WAITING  # not before its time
        await until(
            lambda: any(r.interaction_id == callback.interaction_id for r in d.callpath.history),
            timeout=30,
            what="callback done",
        )
        assert callback.phase is Phase.COMPLETED
        assert callback.callback_number == "0698765432"
        assert time.time() >= due.timestamp()
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_click_to_call_rings_the_agent_then_dials_the_customer(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        running_daemon(asterisk, tmp_path, SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=1500),
    ):
        assert (await rest(d, "POST", "/api/agents/a01/dial", {"number": "06-98"}))[0] == 409
        d.callpath.agent_login("a01")
        status, body = await rest(d, "POST", "/api/agents/a01/dial", {"number": "0698765432"})
        assert status == 200, body
        await until(
            lambda: any(r.interaction_id == body["interaction"] for r in d.callpath.history),
            timeout=30,
            what="call done",
        )
        [call] = list(d.callpath.history)
        assert call.phase is Phase.COMPLETED
        assert call.agent_id == "a01"
        assert call.callback_number == "0698765432"
        assert call.context["click_to_call"] == "a01"
        assert call.answered_at is not None
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_supervisor_switches_coaching_mode_without_ringing_again(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    spies: list[ChanSpyStart] = []
    keys: list[DTMFEnd] = []

    def seen(item: object) -> None:
        if isinstance(item, ChanSpyStart):
            spies.append(item)
        elif isinstance(item, DTMFEnd):
            keys.append(item)

    async with (
        running_daemon(asterisk, tmp_path, SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=8000),
        sipp_caller(asterisk.ports.sip, "3901") as caller,
    ):
        d.ami.subscribe(seen)
        d.callpath.agent_login("a01")
        await until(lambda: connected(d), what="connected")
        listen = {"agent": "a01", "mode": "listen"}
        status, first = await rest(d, "POST", "/api/supervisors/s1/coach", listen)
        assert status == 200, first
        await until(lambda: spies, what="ChanSpy started")
        for mode, digit in (("whisper", "5"), ("barge", "6")):
            status, body = await rest(
                d, "POST", "/api/supervisors/s1/coach", {"agent": "a01", "mode": mode}
            )
            assert status == 200, body
            assert body["supervisor_leg"] == first["supervisor_leg"]  # same spy, same phone
            await until(
                lambda digit=digit: any(
                    k.digit == digit and k.snapshot.uniqueid == first["supervisor_leg"]
                    for k in keys
                ),
                what=f"ChanSpy got key {digit}",
            )
        assert len(spies) == 1  # the supervisor's phone rang once
        await caller.wait(timeout=40)
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_agent_hanging_up_during_hold_sends_the_caller_to_the_after_call_step(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        running_daemon(asterisk, tmp_path, SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200),
        sipp_caller(asterisk.ports.sip, "3901") as caller,
    ):
        d.callpath.agent_login("a01")
        await until(lambda: connected(d), what="connected")
        [record] = list(d.callpath.calls.values())
        assert d.agi.stats.sessions == 1  # the caller's time in queue
        assert (await rest(d, "POST", "/api/agents/a01/hold"))[0] == 200
        await until(lambda: on_hold(asterisk), what="caller on hold")
        assert (await rest(d, "POST", "/api/agents/a01/hangup"))[0] == 200
        await until(lambda: record.phase is Phase.COMPLETED, what="completed")
        # The caller left the music for the after-agent step (the queue's
        # survey, if any, then goodbye), as when an agent ends any call.
        await until(lambda: d.agi.stats.sessions == 2, what="after-agent session")
        result = await caller.wait(timeout=30)
        assert result.ok, result.errors or result.stderr
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")
