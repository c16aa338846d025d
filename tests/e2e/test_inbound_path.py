"""Tier 3: the inbound call path through the real Asterisk, driven by sipp.

A sipp caller dials a queue's number, waits in our FastAGI session; the ACD
picks an agent; the daemon rings the agent's phone (a sipp UAS) agent-first,
bridges, records; hang-ups, ring-no-answer and abandons are followed from AMI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydub import AudioSegment

from callcenter.callpath.service import CallRecord, Phase
from callcenter.daemon import Daemon
from callcenter.protocol.ami_events import (
    BridgeEnter,
    ChanSpyStart,
    ConfbridgeJoin,
    DialBegin,
    MusicOnHoldStart,
    Newchannel,
)
from callcenter.testing.daemons import connected, ivr_test_scripts, rest, running_daemon
from callcenter.testing.databases import fresh_database
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_busy, sipp_caller
from callcenter.testing.tcp_proxy import TcpProxy
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

SITE = """
queues:
  support:
    skills: {support: 1}
    language: fr
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 2
    announce_every: 3
  rona:
    skills: {support: 1}
    ring_timeout: 2
    wrapup: 1
  callbacks:
    skills: {support: 1}
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 60
    callback_attempts: 2
    callback_retry_delay: 1
    callback_dial_timeout: 4
  ventes:
    skills: {ventes: 1}
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 60
routes:
  '3901': {queue: support}
  '3902': {queue: rona}
  '3903': {queue: callbacks}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5}}
  a02: {name: Agent 2, endpoint: agent12, skills: {support: 5, ventes: 5}}
supervisors:
  s1: {name: Supervisor 1, endpoint: supervisor1}
"""


def daemon(
    asterisk: AsteriskInstance,
    tmp_path: Path,
    database_url: str | None = None,
    site_text: str = SITE,
    scripts_dir: Path | None = None,
) -> contextlib.AbstractAsyncContextManager[Daemon]:
    return running_daemon(
        asterisk, tmp_path, site_text, database_url=database_url, scripts_dir=scripts_dir
    )


def finished(d: Daemon) -> list[CallRecord]:
    return list(d.callpath.history)


def callback_completed(d: Daemon) -> bool:
    return any(r.kind == "callback" and r.phase is Phase.COMPLETED for r in d.callpath.history)


async def test_caller_is_connected_agent_first_recorded_and_agent_wraps_up(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=2500),
    ):
        # Two AMI sessions as the callcenter user: events, and the dialer
        # (Events: off) that every Originate of this test goes out on.
        assert d.dialer is not None
        await d.dialer.wait_connected(10)
        sessions = asterisk.cli("manager show connected")
        assert sessions.count("callcenter") == 2, sessions
        dialer_originate, sent = d.dialer.originate, []

        def noting(*args: Any, **kwargs: Any) -> Any:
            sent.append(kwargs["channel_id"])
            return dialer_originate(*args, **kwargs)

        d.dialer.originate = noting  # type: ignore[method-assign]
        status, view = await rest(d, "POST", "/api/agents/a01/login")
        assert status == 200, view
        assert isinstance(view, dict)
        assert view["state"] == "ready"
        log_from = asterisk.sandbox.log_file.stat().st_size
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: connected(d), what="connected")
            # The caller's FastAGI session ends once the channel is taken,
            # while the conversation goes on.
            await until(lambda: d.agi.stats.active == 0, what="FastAGI session over")
            assert connected(d)
            await until(lambda: d.callpath.history, what="call finished")
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        # The caller waited for the agent in a holding bridge and was moved
        # from it: never pulled out of AGI by a masquerade, whose Surrogate/
        # channel Asterisk 22 may keep for good (docs/asterisk-notes.md).
        with asterisk.sandbox.log_file.open(errors="replace") as log_file:
            log_file.seek(log_from)
            log_text = log_file.read()
        assert "joined 'holding_bridge'" in log_text
        assert "Surrogate/" not in log_text
        [record] = finished(d)
        assert record.phase is Phase.COMPLETED
        assert record.agent_id == "a01"
        assert record.answered_at is not None
        assert record.offers == 1
        assert sent == [record.legs[0][1]]  # the agent was rung through the dialer
        assert d.acd.agent_state("a01") in ("wrap_up", "ready")
        await until(lambda: d.acd.agent_state("a01") == "ready", what="wrap-up ends")
        status, shown = await rest(d, "GET", f"/api/interactions/{record.interaction_id}")
        assert status == 200
        assert isinstance(shown, dict)
        assert shown["phase"] == "completed"
        # Post-processed: normalised MP3 next to MixMonitor's WAV.
        await until(lambda: "recording_seconds" in record.context, what="recording processed")
        assert 1.0 < float(record.context["recording_seconds"]) < 10.0  # type: ignore[arg-type]
    recording = asterisk.sandbox.recordings / f"{record.interaction_id}.wav"
    assert recording.exists()
    assert recording.stat().st_size > 8000
    assert recording.with_suffix(".mp3").stat().st_size > 1000
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


SEPARATE_LEGS_SITE = """
queues:
  support: {skills: {support: 1}, wrapup: 1, first_announce_after: 60, separate_legs: true}
routes:
  '3901': {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5}}
"""


async def test_a_queue_can_record_each_leg_in_a_file_of_its_own(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path, site_text=SEPARATE_LEGS_SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=3000),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            assert (await caller.wait(timeout=30)).ok
        await until(lambda: d.callpath.history, what="call finished")
        [record] = finished(d)
        assert record.answered_at is not None
        assert record.ended_at is not None
        talk = record.ended_at - record.answered_at
    base = asterisk.sandbox.recordings / record.interaction_id
    mixed, agent, caller_side = (
        AudioSegment.from_wav(f"{base}{suffix}.wav") for suffix in ("", "-in", "-out")
    )
    # Each file lasts the conversation (MixMonitor's b: only while bridged).
    for audio in (mixed, agent, caller_side):
        assert abs(audio.duration_seconds - talk) < 0.5, (audio.duration_seconds, talk)
    # The agent's phone sends audio, the sipp caller none: the legs are apart.
    assert agent.rms > 0
    assert caller_side.rms == 0
    assert mixed.rms > 0
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_ring_no_answer_pauses_agent_and_caller_keeps_waiting_then_abandons(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=60_000),
    ):
        d.callpath.agent_login("a02")
        async with sipp_caller(asterisk.ports.sip, "3902", hangup_after_ms=6000) as caller:
            await until(lambda: d.acd.agent_state("a02") == "paused", what="RONA")
            assert d.acd.agents["a02"].pause_reason == "no answer"
            [record] = list(d.callpath.calls.values())
            assert record.phase is Phase.WAITING  # still in queue, same place
            assert record.offers == 1
            # Out of the holding bridge where they waited for a02, back in
            # FastAGI (callcenter-requeue): the same interaction, a new session.
            await until(lambda: d.agi.stats.sessions == 2, what="back in the queue's FastAGI")
            assert list(d.callpath.calls.values()) == [record]
            await caller.wait(timeout=30)
        await until(lambda: d.callpath.history, what="abandon recorded")
        [record] = finished(d)
        assert record.phase is Phase.ABANDONED
        assert record.abandoned_where == "queue"
        status, agents = await rest(d, "GET", "/api/agents")
        assert status == 200
        assert isinstance(agents, list)
        assert {a["agent"]: a["state"] for a in agents}["a02"] == "paused"
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


ENGLISH_SITE = SITE.replace(
    "routes:\n",
    "  english:\n    skills: {support: 1}\n    language: en\n    ring_timeout: 8\n"
    "    wrapup: 1\n    first_announce_after: 1\n    announce_every: 1\n    callback: false\n"
    "routes:\n  '3904': {queue: english}\n",
)


async def test_waiting_callers_hear_music_position_and_wait_in_their_language(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    # No agent: two French callers queue one behind the other, one English
    # caller alone in another queue. What Asterisk played, read in its log.
    music: list[MusicOnHoldStart] = []
    log_from = asterisk.sandbox.log_file.stat().st_size
    async with daemon(asterisk, tmp_path, site_text=ENGLISH_SITE) as d:
        d.ami.subscribe(lambda e: music.append(e) if isinstance(e, MusicOnHoldStart) else None)
        async with (
            sipp_caller(asterisk.ports.sip, "3901", calls=2, hangup_after_ms=9000) as french,
            sipp_caller(asterisk.ports.sip, "3904", hangup_after_ms=9000) as english,
        ):
            await until(lambda: len(d.callpath.calls) == 3, what="three callers waiting")
            by_queue = {
                q: [r for r in d.callpath.calls.values() if r.queue == q]
                for q in ("support", "english")
            }
            first, second = sorted(by_queue["support"], key=lambda r: r.arrived_at)
            [alone] = by_queue["english"]
            assert (await french.wait(timeout=30)).ok
            assert (await english.wait(timeout=30)).ok
        assert all(r.phase is Phase.ABANDONED for r in finished(d))
    with asterisk.sandbox.log_file.open(errors="replace") as log_file:
        log_file.seek(log_from)
        log_text = log_file.read()

    def played(record: CallRecord) -> list[str]:
        """The prompts played to this caller: 'name (language)'."""
        out = []
        for line in log_text.splitlines():
            if f"<{record.caller_channel}> Playing '" in line:
                name = line.split("Playing '", 1)[1].split("'", 1)[0].rsplit(".", 1)[0]
                language = line.rsplit("(language '", 1)[1].split("'", 1)[0]
                out.append(f"{name} ({language})")
        return out

    # Position: the first is next; the second has one caller ahead ("il y a
    # 1 appel en attente"), in French; the English caller is next, in English.
    # Then, where the queue offers it, "press 1 to be called back".
    assert played(first)[:4] == [
        "queue-youarenext (fr)",
        "vm-press (fr)",
        "digits/1 (fr)",
        "vm-tocallback (fr)",
    ]
    assert played(second)[:3] == [
        "queue-thereare (fr)",
        "digits/1 (fr)",
        "queue-callswaiting (fr)",
    ]
    # The English queue offers no callback and announces every second.
    assert played(alone)[:2] == ["queue-youarenext (en)"] * 2
    assert not [name for name in played(alone) if not name.startswith("queue-youarenext")]
    # Music on hold in the caller's language, around the announcements.
    classes = {
        r.interaction_id: {m.music_class for m in music if m.uniqueid == r.caller_uniqueid}
        for r in (first, second, alone)
    }
    assert classes == {
        first.interaction_id: {"fr"},
        second.interaction_id: {"fr"},
        alone.interaction_id: {"en"},
    }


async def test_after_no_answer_the_caller_is_offered_to_the_next_free_agent(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    # Neither phone answers (one sipp serves both): a02 rings, then a01 at
    # once for the same caller, then both are paused and the caller waits on.
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=60_000),
    ):
        d.callpath.agent_login("a02")
        async with sipp_caller(asterisk.ports.sip, "3902", hangup_after_ms=9000) as caller:
            await until(lambda: d.acd.agent_state("a02") == "reserved", what="a02 rings")
            [record] = list(d.callpath.calls.values())
            d.callpath.agent_login("a01")  # free, but the caller is a02's for now
            assert d.acd.agent_state("a01") == "ready"
            await until(lambda: d.acd.agent_state("a02") == "paused", what="a02: no answer")
            await until(lambda: d.acd.agent_state("a01") == "reserved", what="a01 rings next")
            assert (record.agent_id, record.offers) == ("a01", 2)
            assert record.phase is not Phase.ABANDONED
            await until(lambda: d.acd.agent_state("a01") == "paused", what="a01: no answer")
            assert [d.acd.agents[a].pause_reason for a in ("a01", "a02")] == ["no answer"] * 2
            assert list(d.callpath.calls.values()) == [record]  # still waiting, same call
            await caller.wait(timeout=30)
        await until(lambda: d.callpath.history, what="abandon recorded")
        [done] = finished(d)
        assert (done.interaction_id, done.phase, done.offers) == (
            record.interaction_id,
            Phase.ABANDONED,
            2,
        )
        assert done.abandoned_where == "queue"
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_abandon_while_agent_rings_hangs_up_the_agent_and_frees_them(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=60_000),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=3000) as caller:
            await until(lambda: d.acd.agent_state("a01") == "reserved", what="agent rings")
            await caller.wait(timeout=30)
        await until(lambda: d.callpath.history, what="abandon recorded")
        [record] = finished(d)
        assert record.phase is Phase.ABANDONED
        assert record.abandoned_where == "ringing"
        assert record.ended_at is not None
        assert 2.0 < record.ended_at - record.arrived_at < 4.5  # hung up after 3 s
        await until(lambda: d.acd.agent_state("a01") == "ready", what="agent freed")
    await until(lambda: asterisk.active_channels() == 0, what="agent leg hung up")


LONG_WRAPUP_SITE = """
queues:
  support: {skills: {support: 1}, wrapup: 60, first_announce_after: 60, ring_timeout: 8}
routes:
  '3901': {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5}}
"""


async def test_an_agents_shift_through_rest_login_at_a_desk_end_wrapup_early_logout(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    channels: dict[str, str] = {}
    async with (
        daemon(asterisk, tmp_path, site_text=LONG_WRAPUP_SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=1500),
    ):
        d.ami.subscribe(
            lambda e: (
                channels.update({e.uniqueid: e.channel}) if isinstance(e, Newchannel) else None
            )
        )
        # Hot-desking: a01 logs in at another desk's phone.
        status, body = await rest(d, "POST", "/api/agents/a01/login", {"endpoint": "agent13"})
        assert status == 200, body
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: connected(d), what="connected")
            [record] = list(d.callpath.calls.values())
            assert record.agent_leg is not None
            assert channels[record.agent_leg].startswith("PJSIP/agent13-")
            assert (await caller.wait(timeout=30)).ok  # the agent hangs up after 1.5 s
        await until(lambda: d.acd.agent_state("a01") == "wrap_up", what="a01 in wrap-up")
        # A 60 s wrap-up, ended by the agent when their notes are done.
        status, body = await rest(d, "POST", "/api/agents/a01/wrapup/end")
        assert status == 200, body
        assert d.acd.agent_state("a01") == "ready"
        status, body = await rest(d, "POST", "/api/agents/a01/logout")
        assert status == 200, body
        status, agents = await rest(d, "GET", "/api/agents")
        assert isinstance(agents, list)
        assert {a["agent"]: a["state"] for a in agents}["a01"] == "logged_out"
        # Logged out: a new caller waits, nobody's phone rings.
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=2500) as second:
            await until(lambda: d.callpath.calls, what="the second caller waiting")
            [waiting] = list(d.callpath.calls.values())
            assert (await second.wait(timeout=30)).ok
        await until(lambda: waiting.phase is Phase.ABANDONED, what="the caller gave up")
        assert waiting.offers == 0
        assert (await rest(d, "POST", "/api/agents/a01/wrapup/end"))[0] == 409
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_rest_refuses_bad_requests_and_illegal_operations(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with daemon(asterisk, tmp_path) as d:
        assert (await rest(d, "POST", "/api/agents/ghost/login"))[0] == 404
        status, body = await rest(d, "POST", "/api/agents/a01/ready")
        assert status == 404  # never logged in: unknown to the ACD
        await rest(d, "POST", "/api/agents/a01/login")
        status, body = await rest(d, "POST", "/api/agents/a01/wrapup/end")
        assert status == 409
        assert isinstance(body, dict)
        assert "not allowed" in body["error"]
        assert d.acd.agent_state("a01") == "ready"  # unchanged
        status, body = await rest(d, "POST", "/api/agents/a01/pause", {"reason": "nap"})
        assert status == 409
        url = f"http://127.0.0.1:{d.http.port}/api/agents/a01/pause"
        async with aiohttp.ClientSession() as http, http.post(url, data=b"{not json") as reply:
            assert reply.status == 400
            assert "JSON" in json.loads(await reply.text())["error"]
        status, body = await rest(d, "POST", "/api/agents/a01/pause", {"reason": "lunch"})
        assert status == 200
        assert isinstance(body, dict)
        assert (body["state"], body["reason"]) == ("paused", "lunch")


async def test_ami_outage_never_drops_a_waiting_caller(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    """AMI goes down while a caller waits and an agent logs in: the offer
    cannot be placed, the caller keeps waiting (FastAGI does not need AMI),
    and once AMI is back the call is offered again and connected."""
    proxy = TcpProxy("127.0.0.1", asterisk.ports.ami)
    await proxy.start()
    proxied = dataclasses.replace(
        asterisk, ports=dataclasses.replace(asterisk.ports, ami=proxy.port)
    )
    try:
        async with (
            daemon(proxied, tmp_path) as d,
            sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=1500),
            sipp_caller(asterisk.ports.sip, "3901") as caller,
        ):
            await until(lambda: d.callpath.calls, what="caller in queue")
            proxy.refuse()
            proxy.cut()
            await until(lambda: not d.ami.connected, what="AMI down")
            d.callpath.agent_login("a01")
            # The Originate waits for the link a while, then gives up:
            # the agent is not blamed, the caller keeps their place.
            await until(
                lambda: any(e.kind == "cancelled" for e in d.acd.audit), what="offer not placed"
            )
            assert d.acd.agent_state("a01") == "ready"
            [record] = list(d.callpath.calls.values())
            assert record.phase is Phase.WAITING
            proxy.refuse(False)
            proxy.heal()
            await until(lambda: d.callpath.history, timeout=30, what="connected after recovery")
            result = await caller.wait(timeout=40)
            assert result.ok, result.errors or result.stderr
            [done] = finished(d)
            assert done.phase is Phase.COMPLETED
            assert done.offers == 2
    finally:
        await proxy.stop()


async def test_an_agent_who_becomes_free_is_rung_for_the_oldest_caller_they_can_take(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    # a01 (support only) is on a call; a sales caller, then a support caller
    # queue up. When a01 hangs up, a01 is rung for the support caller: the
    # oldest one a01 can take, not the oldest of all.
    site = SITE.replace("routes:\n", "routes:\n  '3900': {queue: ventes}\n")
    async with (
        daemon(asterisk, tmp_path, site_text=site) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=4000),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901") as first:
            await until(lambda: connected(d), what="a01 on a call")
            async with sipp_caller(asterisk.ports.sip, "3900", hangup_after_ms=12_000) as sales:
                await until(lambda: len(d.callpath.calls) == 2, what="sales caller waiting")
                async with sipp_caller(asterisk.ports.sip, "3901") as support:
                    await until(lambda: len(d.callpath.calls) == 3, what="support caller waiting")
                    waiting = sorted(
                        (r for r in d.callpath.calls.values() if r.phase is Phase.WAITING),
                        key=lambda r: r.arrived_at,
                    )
                    assert [r.queue for r in waiting] == ["ventes", "support"]
                    older, younger = waiting
                    assert (await first.wait(timeout=30)).ok  # a01 hangs up after 4 s
                    await until(lambda: younger.agent_id == "a01", what="a01 rung again")
                    assert older.phase is Phase.WAITING
                    assert older.offers == 0
                    assert (await support.wait(timeout=30)).ok
                assert (await sales.wait(timeout=30)).ok
        await until(lambda: older.phase is Phase.ABANDONED, what="the sales caller gave up")
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_a_call_that_ends_during_an_ami_outage_is_completed_after_it(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    """AMI goes down during a conversation, which ends meanwhile: when the
    link is back, the resync finds the call gone, completes it and frees
    the agent, who takes the next caller."""
    proxy = TcpProxy("127.0.0.1", asterisk.ports.ami)
    await proxy.start()
    proxied = dataclasses.replace(
        asterisk, ports=dataclasses.replace(asterisk.ports, ami=proxy.port)
    )
    try:
        async with (
            daemon(proxied, tmp_path) as d,
            sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=2000),
        ):
            d.callpath.agent_login("a01")
            async with sipp_caller(asterisk.ports.sip, "3901") as caller:
                await until(lambda: connected(d), what="connected")
                [record] = list(d.callpath.calls.values())
                proxy.refuse()
                proxy.cut()
                await until(lambda: not d.ami.connected, what="AMI down")
                assert (await caller.wait(timeout=30)).ok  # the agent hung up
                await until(lambda: asterisk.active_channels() == 0, what="call over")
                # Unseen yet: no event reached the daemon.
                assert record.phase is Phase.CONNECTED
                assert d.acd.agent_state("a01") == "on_call"
            proxy.refuse(False)
            proxy.heal()
            await until(lambda: record.phase is Phase.COMPLETED, timeout=30, what="resynced")
            await until(lambda: d.acd.agent_state("a01") == "ready", what="a01 free again")
            async with sipp_caller(asterisk.ports.sip, "3901") as second:
                await until(lambda: len(d.callpath.history) == 2, what="next call served")
                assert (await second.wait(timeout=30)).ok
            assert [r.agent_id for r in finished(d)] == ["a01", "a01"]
            assert all(r.phase is Phase.COMPLETED for r in finished(d))
    finally:
        await proxy.stop()


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_supervisor_coaches_a_live_call_from_rest(
    asterisk: AsteriskInstance, tmp_path: Path, mode: str
) -> None:
    spies: list[ChanSpyStart] = []
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=5000),
    ):
        d.ami.subscribe(lambda item: spies.append(item) if isinstance(item, ChanSpyStart) else None)
        d.callpath.agent_login("a01")
        coach = {"agent": "a01", "mode": mode}
        status, body = await rest(d, "POST", "/api/supervisors/s1/coach", coach)
        assert status == 409  # no call in progress
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: connected(d), what="connected")
            [record] = list(d.callpath.calls.values())
            status, body = await rest(d, "POST", "/api/supervisors/s1/coach", coach)
            assert status == 200, body
            assert isinstance(body, dict)
            await until(lambda: spies, what="ChanSpy started")
            # The supervisor's phone spies on this agent's leg of this call.
            assert spies[0].spyee.uniqueid == record.agent_leg
            assert spies[0].spyer.uniqueid == body["supervisor_leg"]
            assert spies[0].spyer.channel.startswith("PJSIP/supervisor1-")
            # The mode reached Asterisk: the supervisor's leg runs ChanSpy with
            # its option (none for listen, w whisper, B barge).
            concise = asterisk.cli("core show channels concise").splitlines()
            [spy] = [
                line.split("!") for line in concise if line.startswith(spies[0].spyer.channel + "!")
            ]
            assert spy[5] == "ChanSpy"
            target, options = spy[6].split(",")
            assert target == record.agent_leg
            assert options == "uqEd" + {"listen": "", "whisper": "w", "barge": "B"}[mode]
            bad = {"agent": "a01", "mode": "shout"}
            assert (await rest(d, "POST", "/api/supervisors/s1/coach", bad))[0] == 400
            await caller.wait(timeout=40)
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_callback_keeps_place_rings_agent_first_then_dials_the_customer(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=2000),
    ):
        # No agent yet: the caller waits, presses 1, confirms their number with #
        # (a sipp capture replayed twice in a row is one digit to Asterisk).
        async with sipp_caller(
            asterisk.ports.sip, "3903", digits="1,#", first_delay_ms=2000, gap_ms=1000
        ) as caller:
            result = await caller.wait(timeout=40)  # we say goodbye and hang up
        assert result.ok, result.errors or result.stderr
        [left] = finished(d)
        assert left.phase is Phase.CALLBACK
        assert left.callback_number == "0612345678"
        [callback] = list(d.callpath.calls.values())
        assert callback.kind == "callback"
        assert callback.origin == left.interaction_id
        assert callback.arrived_at == left.arrived_at  # keeps the caller's place
        d.callpath.agent_login("a01")
        await until(lambda: callback_completed(d), timeout=30, what="callback completed")
        done = next(r for r in d.callpath.history if r.kind == "callback")
        assert done.agent_id == "a01"
        assert [a["result"] for a in done.attempts] == ["ANSWER"]
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_a_caller_can_leave_another_number_to_be_called_back_on(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    dials: list[DialBegin] = []
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=1500),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=2000),
    ):
        d.ami.subscribe(lambda e: dials.append(e) if isinstance(e, DialBegin) else None)
        # 1: call me back; 2 (during "I have 0612345678"): another number;
        # then the number, ended by #.
        async with sipp_caller(
            asterisk.ports.sip, "3903", digits="1,2,0698765432#", first_delay_ms=2000, gap_ms=800
        ) as caller:
            result = await caller.wait(timeout=60)  # we say goodbye and hang up
        assert result.ok, result.errors or result.stderr
        [left] = finished(d)
        assert (left.phase, left.callback_number) == (Phase.CALLBACK, "0698765432")
        [callback] = list(d.callpath.calls.values())
        d.callpath.agent_login("a01")
        # The agent's phone rings first, and the desktop says whom they will call.
        await until(lambda: d.acd.agent_state("a01") == "reserved", what="a01 rung first")
        pop = d.views.screen_pop(callback.interaction_id)
        assert pop is not None
        assert (pop["kind"], pop["number"]) == ("callback", "0698765432")
        assert not [e for e in dials if e.dial_string.endswith("@trunk")]  # not yet
        await until(lambda: callback_completed(d), timeout=30, what="callback completed")
        [out] = [e for e in dials if e.dial_string.endswith("@trunk")]
        assert out.dial_string == "0698765432@trunk"
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_an_agent_free_during_the_callback_dialogue_does_not_interrupt_it(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=2000),
    ):
        async with sipp_caller(
            asterisk.ports.sip, "3903", digits="1,#", first_delay_ms=2000, gap_ms=1500
        ) as caller:
            await until(
                lambda: any(r.choosing_callback for r in d.callpath.calls.values()),
                poll=0.01,
                what="the caller in the callback dialogue",
            )
            # An agent is free while "I have 0612345678, press 1" plays:
            # before, they were rung for the caller, who was taken out of
            # the dialogue halfway (their # then fell into the music).
            d.callpath.agent_login("a01")
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        [left] = finished(d)
        assert left.phase is Phase.CALLBACK
        assert left.legs == []  # nobody was rung for the caller meanwhile
        await until(lambda: callback_completed(d), timeout=30, what="callback completed")
        done = next(r for r in d.callpath.history if r.kind == "callback")
        assert done.agent_id == "a01"
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_pending_callback_survives_a_daemon_restart(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with daemon(asterisk, tmp_path, url) as first:
        async with sipp_caller(
            asterisk.ports.sip, "3903", digits="1,#", first_delay_ms=2000, gap_ms=1000
        ) as caller:
            assert (await caller.wait(timeout=40)).ok
        [pending] = list(first.callpath.calls.values())
        assert first.writer is not None
        await first.writer.flush()
    # A new daemon on the same database: the callback is back, in its place.
    async with (
        daemon(asterisk, tmp_path, url) as second,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=1500),
    ):
        [restored] = list(second.callpath.calls.values())
        assert restored.interaction_id == pending.interaction_id
        assert restored.callback_number == "0612345678"
        assert abs(restored.arrived_wall - pending.arrived_wall) < 0.01
        second.callpath.agent_login("a01")
        await until(lambda: second.callpath.history, timeout=30, what="callback made")
        assert second.writer is not None
        await second.writer.flush()
        assert second.pool is not None
        row = await second.pool.fetchrow(
            "SELECT status, jsonb_array_length(attempts) AS n FROM callbacks WHERE id = $1",
            uuid.UUID(pending.interaction_id),
        )
        outcomes = await second.pool.fetch(
            "SELECT outcome, direction FROM interactions ORDER BY created_at"
        )
    assert (row["status"], row["n"]) == ("done", 1)
    assert [(o["outcome"], o["direction"]) for o in outcomes] == [
        ("callback", "inbound"),
        ("completed", "outbound"),
    ]


async def test_blind_transfer_to_a_queue_carries_the_context_and_dispositions(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with (
        daemon(asterisk, tmp_path, url) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=9000) as caller:
            await until(lambda: connected(d), what="connected to a01")
            [first] = list(d.callpath.calls.values())
            first.context["customer"] = {"id": "C-42", "vip": True}
            # Notes taken during the call go with it to the next agent.
            during = f"/api/interactions/{first.interaction_id}/disposition"
            noted = await rest(
                d,
                "POST",
                during,
                {"agent": "a01", "code": "follow-up", "notes": "identity checked"},
            )
            assert noted[0] == 200, noted
            d.callpath.agent_login("a02")
            status, body = await rest(d, "POST", "/api/agents/a01/transfer", {"queue": "ventes"})
            assert status == 200, body
            await until(
                lambda: any(
                    r.agent_id == "a02" and r.phase is Phase.CONNECTED
                    for r in d.callpath.calls.values()
                ),
                what="connected to a02 through the ventes queue",
            )
            [second] = [r for r in d.callpath.calls.values() if r.agent_id == "a02"]
            assert second.queue == "ventes"
            assert second.origin == first.interaction_id
            assert second.context["customer"] == {"id": "C-42", "vip": True}
            assert second.context["transferred_by"] == "a01"
            assert second.notes == "identity checked"
            pop = d.views.screen_pop(second.interaction_id)
            assert pop is not None
            assert (pop["transferred_by"], pop["notes"]) == ("a01", "identity checked")
            assert first.phase is Phase.COMPLETED
            await caller.wait(timeout=30)
        url = f"/api/interactions/{first.interaction_id}/disposition"
        ok = await rest(d, "POST", url, {"agent": "a01", "code": "follow-up", "notes": "to sales"})
        assert ok[0] == 200, ok
        assert first.disposition == "follow-up"
        assert (await rest(d, "POST", url, {"agent": "a02", "code": "resolved"}))[0] == 409
        assert (await rest(d, "POST", url, {"agent": "a01", "code": "bogus"}))[0] == 409
        bad = await rest(d, "POST", "/api/agents/a01/transfer", {"queue": "ventes"})
        assert bad[0] == 409  # no call in progress any more
        await until(lambda: not d.callpath.calls, what="the second interaction ended")
        assert d.writer is not None
        assert d.pool is not None
        await d.writer.flush()
        # One call, two interactions: both stored, under the caller's linkedid.
        stored = await d.pool.fetch(
            "SELECT id::text, queue, agent_id, context->>'notes' AS notes FROM interactions"
            " WHERE linkedid = $1 ORDER BY created_at",
            first.caller_uniqueid,
        )
        assert d.writer.rejected == 0
    assert [(r["id"], r["queue"], r["agent_id"], r["notes"]) for r in stored] == [
        (first.interaction_id, first.queue, "a01", "to sales"),
        (second.interaction_id, "ventes", "a02", "identity checked"),
    ]
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


@pytest.mark.parametrize("customer", ["BUSY", "NOANSWER"])
async def test_a_customer_busy_or_not_answering_is_retried_then_the_callback_fails(
    asterisk: AsteriskInstance, tmp_path: Path, customer: str
) -> None:
    # The customer's line on the trunk: busy (486), or ringing past the
    # queue's callback_dial_timeout (4 s).
    trunk = (
        sipp_busy(asterisk.ports.sip, port=asterisk.ports.trunk)
        if customer == "BUSY"
        else sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=60_000)
    )
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
        trunk,
    ):
        async with sipp_caller(
            asterisk.ports.sip, "3903", digits="1,#", first_delay_ms=2000, gap_ms=1000
        ) as caller:
            assert (await caller.wait(timeout=40)).ok
        d.callpath.agent_login("a01")
        await until(
            lambda: any(r.phase is Phase.FAILED for r in d.callpath.history),
            timeout=40,
            what="two attempts, then failed",
        )
        [failed] = [r for r in d.callpath.history if r.phase is Phase.FAILED]
        assert [a["result"] for a in failed.attempts] == [customer, customer]
        assert all(a["agent"] == "a01" for a in failed.attempts)
        assert d.acd.agent_state("a01") in ("wrap_up", "ready")
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_blind_transfer_to_an_outside_number_bridges_the_caller_to_the_trunk(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    events: list[DialBegin | BridgeEnter] = []
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=20_000),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=3000),
    ):
        d.ami.subscribe(
            lambda item: events.append(item) if isinstance(item, DialBegin | BridgeEnter) else None
        )
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: connected(d), what="connected")
            [record] = list(d.callpath.calls.values())
            bad = await rest(d, "POST", "/api/agents/a01/transfer", {"number": "06;evil"})
            assert bad[0] == 409  # never dialled: not a phone number
            status, body = await rest(
                d, "POST", "/api/agents/a01/transfer", {"number": "0611223344"}
            )
            assert status == 200, body
            # The agent is free of the call at once; the caller is dialled out.
            await until(lambda: record.phase is Phase.COMPLETED, what="agent's part completed")
            assert d.acd.agent_state("a01") in ("wrap_up", "ready")
            assert record.context["transfer"] == {
                "to_queue": None,
                "to_agent": None,
                "to_number": "0611223344",
            }
            await until(
                lambda: any(
                    isinstance(e, BridgeEnter)
                    and e.snapshot.channel.startswith("PJSIP/trunk-")
                    and e.uniqueid != record.caller_uniqueid
                    for e in events
                ),
                what="the outside party in a bridge",
            )
            [dial] = [
                e for e in events if isinstance(e, DialBegin) and e.dial_string.endswith("@trunk")
            ]
            assert dial.caller is not None
            assert dial.caller.uniqueid == record.caller_uniqueid
            assert dial.dial_string == "0611223344@trunk"
            outside = dial.dest.uniqueid
            # Caller and outside party in one bridge, the agent not in it.
            bridges = {e.uniqueid: e.bridge.uniqueid for e in events if isinstance(e, BridgeEnter)}
            assert bridges[outside] == bridges[record.caller_uniqueid]
            assert record.agent_leg not in [u for u, b in bridges.items() if b == bridges[outside]]
            # The outside party hangs up after 3 s: the caller's call ends.
            assert (await caller.wait(timeout=30)).ok
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_three_way_conference_with_an_outside_number(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    joins: list[ConfbridgeJoin] = []
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=6000),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=7000),
    ):
        d.ami.subscribe(
            lambda item: joins.append(item) if isinstance(item, ConfbridgeJoin) else None
        )
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=9000) as caller:
            await until(lambda: connected(d), what="connected")
            [record] = list(d.callpath.calls.values())
            status, body = await rest(
                d, "POST", "/api/agents/a01/conference", {"number": "0698765432"}
            )
            assert status == 200, body
            assert isinstance(body, dict)
            await until(lambda: len(joins) >= 3, what="three in the room")
            assert {j.conference for j in joins} == {body["room"]}
            names = sorted(j.snapshot.channel.split("-")[0] for j in joins)
            assert names == ["PJSIP/agent11", "PJSIP/trunk", "PJSIP/trunk"]
            await caller.wait(timeout=30)
        await until(lambda: record.phase is Phase.COMPLETED, what="agent left, completed")
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_a_caller_who_leaves_a_conference_leaves_the_agent_on_their_call(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=9000),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=12_000),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=5000) as caller:
            await until(lambda: connected(d), what="connected")
            [record] = list(d.callpath.calls.values())
            await d.callpath.conference("a01", number="0698765432")
            await caller.wait(timeout=30)
        # The caller is gone; the agent talks on with the third party. Before,
        # the agent went to wrap-up, then ready, in the middle of it.
        await until(lambda: d.tracker.channel(record.caller_uniqueid) is None, what="caller gone")
        assert record.phase is Phase.CONNECTED
        assert d.acd.agent_state("a01") == "on_call"
        await until(lambda: record.phase is Phase.COMPLETED, timeout=20, what="agent left")
        # The third party hangs up last (their phone, still running, sends BYE).
        await until(lambda: asterisk.active_channels() == 0, timeout=20, what="no channels left")


async def test_three_way_conference_with_another_agent(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    joins: list[ConfbridgeJoin] = []
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=6000),
    ):
        d.ami.subscribe(
            lambda item: joins.append(item) if isinstance(item, ConfbridgeJoin) else None
        )
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=12_000) as caller:
            await until(lambda: connected(d), what="connected")
            d.callpath.agent_login("a02")
            d.callpath.agent_pause("a02", "lunch")
            status, body = await rest(d, "POST", "/api/agents/a01/conference", {"agent": "a02"})
            assert status == 409, body  # away: their phone is not rung
            assert "not free" in str(body)
            d.callpath.agent_ready("a02")
            status, body = await rest(d, "POST", "/api/agents/a01/conference", {"agent": "a02"})
            assert status == 200, body
            await until(lambda: len(joins) >= 3, what="three in the room")
            names = sorted(j.snapshot.channel.split("-")[0] for j in joins)
            assert names == ["PJSIP/agent11", "PJSIP/agent12", "PJSIP/trunk"]
            # In the room, a02 is offered nothing; when their phone leaves
            # it (after its talk time), they are free again.
            assert d.acd.agent_state("a02") == "paused"
            assert d.acd.agents["a02"].pause_reason == "conference"
            await until(lambda: d.acd.agent_state("a02") == "ready", timeout=20, what="a02 free")
            await caller.wait(timeout=30)
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


@pytest.mark.parametrize("finish", ["complete", "cancel"])
async def test_attended_transfer_consult_then_complete_or_cancel(
    asterisk: AsteriskInstance, tmp_path: Path, finish: str
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=12_000) as caller:
            await until(lambda: connected(d), what="connected")
            [record] = list(d.callpath.calls.values())
            assert record.agent_leg is not None
            status, body = await rest(
                d, "POST", "/api/agents/a01/consult", {"number": "0698765432"}
            )
            assert status == 200, body
            await until(
                lambda: record.consult is not None and record.consult["state"] == "talking",
                what="consulted party answered",
            )
            target = record.consult["target"] if record.consult else None
            assert target is not None
            agent_leg = record.agent_leg
            # DialEnd(ANSWER) says "talking"; the bridge's BridgeEnter follows it.
            await until(
                lambda: (p := d.tracker.peer_of(agent_leg)) is not None and p.uniqueid == target,
                what="the agent talks to the consulted party",
            )
            status, body = await rest(d, "POST", f"/api/agents/a01/consult/{finish}")
            assert status == 200, body
            if finish == "complete":
                await until(lambda: record.phase is Phase.COMPLETED, what="agent leg ended")
                await until(
                    lambda: (
                        (p := d.tracker.peer_of(record.caller_uniqueid)) is not None
                        and p.uniqueid == target
                    ),
                    what="caller bridged with the consulted party",
                )
                assert record.context["transfer"] == {"attended": True, "to_number": "0698765432"}
            else:
                await until(
                    lambda: (
                        (p := d.tracker.peer_of(record.caller_uniqueid)) is not None
                        and p.uniqueid == record.agent_leg
                    ),
                    what="caller back with the agent",
                )
                assert record.phase is Phase.CONNECTED
            await caller.wait(timeout=30)
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_a_consultation_in_progress_survives_a_daemon_restart(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300),
        sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=15_000) as caller,
    ):
        async with daemon(asterisk, tmp_path) as first:
            first.callpath.agent_login("a01")
            await until(lambda: connected(first), what="connected")
            [before] = list(first.callpath.calls.values())
            await first.callpath.consult("a01", "0698765432")
            await until(
                lambda: before.consult is not None and before.consult["state"] == "talking",
                what="consulted party answered",
            )
            target = before.consult["target"] if before.consult else None
            assert target is not None
        # A new daemon while the agent talks to the consulted party. Before,
        # it took the consulted party for the caller.
        async with daemon(asterisk, tmp_path) as second:
            await until(lambda: second.callpath.calls, what="call adopted")
            [record] = list(second.callpath.calls.values())
            assert record.caller_uniqueid == before.caller_uniqueid
            assert record.consult is not None
            assert record.consult["target"] == target
            await second.callpath.cancel_transfer("a01")
            await until(
                lambda: (
                    (p := second.tracker.peer_of(record.caller_uniqueid)) is not None
                    and p.uniqueid == record.agent_leg
                ),
                what="caller back with the agent",
            )
            assert record.phase is Phase.CONNECTED
            assert second.acd.agent_state("a01") == "on_call"
            await caller.wait(timeout=30)
            await until(lambda: record.phase is Phase.COMPLETED, what="completed")
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_a_three_way_conference_survives_a_daemon_restart(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    joins: list[ConfbridgeJoin] = []
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=9000),
        sipp_agents(asterisk.ports.sip, port=asterisk.ports.trunk, answer_ms=300, talk_ms=12_000),
        sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=14_000) as caller,
    ):
        async with daemon(asterisk, tmp_path) as first:
            first.ami.subscribe(
                lambda item: joins.append(item) if isinstance(item, ConfbridgeJoin) else None
            )
            first.callpath.agent_login("a01")
            await until(lambda: connected(first), what="connected")
            [before] = list(first.callpath.calls.values())
            room = await first.callpath.conference("a01", number="0698765432")
            await until(lambda: len(joins) >= 3, what="three in the room")
        # A new daemon while the three talk. Before, it hung up the agent's
        # leg as stale: nobody is bridged one-to-one with it in the room.
        async with daemon(asterisk, tmp_path) as second:
            await until(lambda: second.callpath.calls, what="call adopted")
            [record] = list(second.callpath.calls.values())
            assert record.interaction_id == before.interaction_id
            assert record.caller_uniqueid == before.caller_uniqueid
            # The same context as before the restart, read back from the agent's leg.
            assert record.context["conference"] == {"room": room, "with": "0698765432"}
            assert second.acd.agent_state("a01") == "on_call"
            in_room = second.tracker.channel(record.caller_uniqueid)
            assert in_room is not None
            assert in_room.bridge_id is not None
            bridge = second.tracker.bridge(in_room.bridge_id)
            assert bridge is not None
            assert len(bridge.members) == 3  # all three still in the room
            # The agent leaves the room (their phone hangs up): completed.
            await until(lambda: record.phase is Phase.COMPLETED, timeout=20, what="completed")
            await caller.wait(timeout=30)
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_waiting_callers_survive_a_daemon_restart_in_their_place(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    """The daemon stops with callers in queue: Asterisk keeps them on hold
    and brings them back; the new daemon gives them their place again."""
    async with sipp_caller(asterisk.ports.sip, "3901", calls=3, rate=5) as callers:
        async with daemon(asterisk, tmp_path) as first:
            await until(lambda: len(first.callpath.calls) == 3, what="3 callers waiting")
            await asyncio.sleep(1.0)  # their place is written on their channels
            before = {
                r.caller_uniqueid: (r.interaction_id, r.arrived_wall)
                for r in first.callpath.calls.values()
            }
        await asyncio.sleep(3)  # no daemon at all for a while
        async with (
            daemon(asterisk, tmp_path) as second,
            sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=800),
        ):
            await until(lambda: len(second.callpath.calls) == 3, what="3 callers back")
            after = {
                r.caller_uniqueid: (r.interaction_id, r.arrived_wall)
                for r in second.callpath.calls.values()
            }
            # Same ids, same enqueue times (kept on the channel to the ms).
            assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
            assert all(abs(after[k][1] - before[k][1]) < 0.001 for k in before)
            order = sorted(before.values(), key=lambda v: v[1])
            second.callpath.agent_login("a01")
            await until(lambda: len(second.callpath.history) == 3, timeout=40, what="3 served")
            served = [r.interaction_id for r in second.callpath.history]
            assert served == [i for i, _ in order]  # oldest first
            assert all(r.phase is Phase.COMPLETED for r in second.callpath.history)
            assert all(r.offers == 1 for r in second.callpath.history)
            result = await callers.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_connected_call_and_agent_states_survive_a_daemon_restart(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str
) -> None:
    url = await fresh_database(database_url)
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=6000),
        sipp_caller(asterisk.ports.sip, "3901") as caller,
    ):
        async with daemon(asterisk, tmp_path, url) as first:
            first.callpath.agent_login("a02")
            first.callpath.agent_pause("a02", "lunch")
            first.callpath.agent_login("a01")
            await until(lambda: connected(first), what="connected")
            [before] = list(first.callpath.calls.values())
        # A new daemon while the call goes on: it finds the call and the agents.
        async with daemon(asterisk, tmp_path, url) as second:
            await until(lambda: second.callpath.calls, what="call adopted")
            [adopted] = list(second.callpath.calls.values())
            assert adopted.interaction_id == before.interaction_id
            assert adopted.agent_id == "a01"
            assert adopted.caller_uniqueid == before.caller_uniqueid
            assert second.acd.agent_state("a01") == "on_call"
            assert second.acd.agent_state("a02") == "paused"
            assert second.acd.agents["a02"].pause_reason == "lunch"
            await until(lambda: second.callpath.history, timeout=20, what="completed")
            assert second.callpath.history[0].phase is Phase.COMPLETED
            assert (await caller.wait(timeout=30)).ok
            assert second.writer is not None
            await second.writer.flush()
            assert second.pool is not None
            kinds = {r["kind"] for r in await second.pool.fetch("SELECT kind FROM acd_decisions")}
            open_states = await second.pool.fetch(
                "SELECT agent_id, state FROM agent_states WHERE until IS NULL ORDER BY agent_id"
            )
    assert {"offer", "answered", "adopted", "ended"} <= kinds
    states = {r["agent_id"]: r["state"] for r in open_states}
    assert states["a02"] == "paused"
    assert states["a01"] in ("wrap_up", "ready")  # wrap-up lasts 1 s
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


MIXED_SITE = """
queues:
  ventes: {skills: {ventes: 1}, wrapup: 0.5, first_announce_after: 60}
  support: {skills: {support: 1}, wrapup: 0.5, first_announce_after: 60}
  anglais: {skills: {support: 1, english: 1}, language: en, wrapup: 0.5, first_announce_after: 60}
routes:
  '3900': {queue: ventes}
  '3901': {queue: support}
  '4400': {queue: anglais}
agents:
  v1: {name: Vente 1, endpoint: agent11, skills: {ventes: 7}}
  v2: {name: Vente 2, endpoint: agent12, skills: {ventes: 4}}
  s1: {name: Support 1, endpoint: agent13, skills: {support: 8}}
  s2: {name: Support 2, endpoint: agent14, skills: {support: 5, ventes: 2}}
  e1: {name: English 1, endpoint: agent15, skills: {support: 6, english: 9}, languages: [en, fr]}
"""


async def test_twenty_callers_five_agents_each_call_reaches_a_skilled_agent(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path, site_text=MIXED_SITE) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=1500),
    ):
        for agent in ("v1", "v2", "s1", "s2", "e1"):
            d.callpath.agent_login(agent)
        async with (
            sipp_caller(asterisk.ports.sip, "3900", calls=8, rate=4) as sales,
            sipp_caller(asterisk.ports.sip, "3901", calls=8, rate=4) as support,
            sipp_caller(asterisk.ports.sip, "4400", calls=4, rate=2) as english,
        ):
            await until(lambda: len(d.callpath.history) == 20, timeout=90, what="20 calls served")
            for sipp in (sales, support, english):
                result = await sipp.wait(timeout=60)
                assert result.ok, result.errors or result.stderr
        records = list(d.callpath.history)
        assert all(r.phase is Phase.COMPLETED for r in records)
        assert len({r.caller_uniqueid for r in records}) == 20  # none twice
        site = d.site
        for r in records:
            assert r.agent_id is not None
            skills = site.agents[r.agent_id].skills
            needed = site.queues[r.queue].skills
            assert all(skills.get(k, 0) >= v for k, v in needed.items()), (r.queue, r.agent_id)
            assert r.language in site.agents[r.agent_id].languages
        await until(
            lambda: d.recordings is not None and len(d.recordings.done) == 20,
            timeout=60,
            what="20 recordings processed",
        )
    for r in records:
        audio = AudioSegment.from_wav(asterisk.sandbox.recordings / f"{r.interaction_id}.wav")
        assert r.answered_at is not None
        assert r.ended_at is not None
        talk = r.ended_at - r.answered_at  # the right length: the conversation's
        assert abs(audio.duration_seconds - talk) < 0.5, (r.interaction_id, audio, talk)
        assert 0.8 < audio.duration_seconds < 3.0, (r.interaction_id, audio.duration_seconds)
        assert audio.rms > 0  # real audio from the agent's phone, not silence
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_blind_transfer_to_a_named_agent_goes_to_that_agent_only(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", hangup_after_ms=8000) as caller:
            await until(lambda: connected(d), what="connected to a01")
            # a02 is paused: the transferred caller waits for them, nobody else.
            d.callpath.agent_login("a02")
            d.callpath.agent_pause("a02", "break")
            status, body = await rest(d, "POST", "/api/agents/a01/transfer", {"agent": "a02"})
            assert status == 200, body
            await until(
                lambda: any(r.phase is Phase.WAITING for r in d.callpath.calls.values()),
                what="waiting for a02",
            )
            await until(lambda: d.acd.agent_state("a01") == "ready", what="a01 free again")
            [waiting] = [r for r in d.callpath.calls.values() if r.phase is Phase.WAITING]
            assert waiting.agent_id is None  # a01 is ready but not offered this call
            d.callpath.agent_ready("a02")
            await until(
                lambda: any(
                    r.agent_id == "a02" and r.phase is Phase.CONNECTED
                    for r in d.callpath.calls.values()
                ),
                what="connected to a02",
            )
            await caller.wait(timeout=30)
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


IVR_SITE = """
queues:
  support: {skills: {support: 1}, wrapup: 0.5, first_announce_after: 60,
            survey: enquete_satisfaction}
  ventes: {skills: {ventes: 1}, wrapup: 0.5, first_announce_after: 60}
routes:
  '3905': {queue: ventes, ivr: test_menu}
agents:
  a01: {name: Agent 1, endpoint: agent11, skills: {support: 5}}
"""


async def test_ivr_routes_the_caller_then_the_survey_scores_the_agent(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    scripts = ivr_test_scripts(tmp_path / "scripts")
    async with (
        daemon(asterisk, tmp_path, site_text=IVR_SITE, scripts_dir=scripts) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=1500),
    ):
        d.callpath.agent_login("a01")
        # 2 in the menu (support); after the agent hangs up: 4 to the survey,
        # then # to end the spoken comment, once the comment prompt (4 s, built
        # by `callcenter prompts build`) and its beep are over.
        async with sipp_caller(
            asterisk.ports.sip, "3905", digits="2,,,,4,,,,,,#", first_delay_ms=1500, gap_ms=1000
        ) as caller:
            await until(lambda: d.callpath.history, timeout=30, what="call answered and ended")
            [record] = list(d.callpath.history)
            assert record.queue == "support"  # the IVR chose it, not the route's ventes
            assert record.agent_id == "a01"
            ivr = record.context["ivr"]
            assert isinstance(ivr, dict)
            assert ivr["path"] == ["menu", "support"]
            assert record.priority == 1
            await until(lambda: "survey" in record.context, timeout=30, what="survey answered")
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        answer = record.context["survey"]
        assert isinstance(answer, dict)
        assert answer["score"] == 4
        assert answer["agent"] == "a01"
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_metrics_follow_real_calls(asterisk: AsteriskInstance, tmp_path: Path) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=800),
    ):
        d.callpath.agent_login("a01")
        async with sipp_caller(asterisk.ports.sip, "3901", calls=2, rate=2) as callers:
            await until(lambda: len(d.callpath.history) == 2, timeout=30, what="2 calls served")
            assert (await callers.wait(timeout=30)).ok
        url = f"http://127.0.0.1:{d.http.port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            assert reply.status == 200
            text = await reply.text()
    offered = [
        line for line in text.splitlines() if line.startswith("callcenter_queue_offered_total")
    ]
    answered = [
        line for line in text.splitlines() if line.startswith("callcenter_queue_answered_total")
    ]
    assert any('queue="support"' in line and line.endswith(" 2.0") for line in offered), offered
    assert any('queue="support"' in line and line.endswith(" 2.0") for line in answered), answered
    assert "0612345678" not in text  # no caller numbers in labels
