"""Tier 3: the call-control actions on the real Asterisk.

A sipp caller waits in our FastAGI server; we ring an agent (sipp UAS) with
the agent-first Originate, record the call with MixMonitor, put a supervisor
on it with ChanSpy, and hang up by Uniqueid.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from callcenter.adapters.ami import AmiClient, StreamItem
from callcenter.adapters.fastagi import AgiSession, FastAgiServer
from callcenter.adapters.telephony import SpyMode, Telephony, TelephonyConfig
from callcenter.config import AmiConfig
from callcenter.errors import AsteriskError
from callcenter.protocol.ami_events import ChanSpyStart, Hangup, OriginateResponse
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller

pytestmark = pytest.mark.asterisk


@dataclass
class Rig:
    telephony: Telephony
    events: list[StreamItem]
    caller: asyncio.Future[tuple[str, str]]
    after_agent: asyncio.Event

    async def wait_event(self, predicate: object, timeout: float = 15.0) -> StreamItem:
        assert callable(predicate)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for item in self.events:
                if predicate(item):
                    return item
            if asyncio.get_running_loop().time() > deadline:
                names = [type(e).__name__ for e in self.events[-30:]]
                raise AssertionError(f"event not seen; last: {names}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def rig(asterisk: AsteriskInstance) -> AsyncIterator[Rig]:
    client = AmiClient(AmiConfig(port=asterisk.ports.ami), SecretStr(asterisk.ami.secret))
    events: list[StreamItem] = []
    client.subscribe(events.append)
    caller: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
    after_agent = asyncio.Event()

    async def hold(session: AgiSession) -> None:
        await session.answer()
        await session.set_music(True)
        if not caller.done():
            caller.set_result((session.request.channel, session.request.uniqueid))
        await session.wait_hangup()

    async def after(session: AgiSession) -> None:
        after_agent.set()
        await session.hangup()

    agi = FastAgiServer("127.0.0.1", asterisk.ports.agi, {"selftest": hold, "after-agent": after})
    await agi.start()
    await client.start()
    try:
        await client.wait_connected(10)
        config = TelephonyConfig(recordings_dir=str(asterisk.sandbox.recordings_in_asterisk))
        yield Rig(Telephony(client, config), events, caller, after_agent)
    finally:
        await client.stop()
        await agi.stop()


async def test_agent_first_connect_records_and_sends_caller_to_after_agent(
    asterisk: AsteriskInstance,
) -> None:
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=2500),
        rig(asterisk) as r,
        sipp_caller(asterisk.ports.sip, "9999") as caller,
    ):
        _channel, uniqueid = await asyncio.wait_for(r.caller, 15)
        leg = await r.telephony.ring_agent(
            "agent3", uniqueid, channel_id=r.telephony.new_channel_id(), ring_timeout=10
        )
        # As the call path does: the caller waits for the agent in its
        # holding bridge (the agent's leg waits for it there before Bridge()).
        await r.telephony.hold_for_agent(uniqueid)
        answered = await r.wait_event(
            lambda e: isinstance(e, OriginateResponse) and e.uniqueid == leg
        )
        assert isinstance(answered, OriginateResponse)
        assert answered.response == "Success"
        path = await r.telephony.record(uniqueid, "itest-0001")
        # The agent hangs up after 2.5 s: the caller goes to the after-agent
        # dialplan (our AGI), not back after AGI() in from-trunk.
        await asyncio.wait_for(r.after_agent.wait(), 15)
        result = await caller.wait(timeout=30)
        assert result.ok, result.errors or result.stderr
    assert path.endswith("/itest-0001.wav")
    recorded = asterisk.sandbox.recordings / "itest-0001.wav"
    assert recorded.exists()
    assert recorded.stat().st_size > 44 + 8000  # a WAV header and over 0.5 s of 8 kHz audio


async def test_ring_no_answer_reports_failure_and_hangup_by_uniqueid(
    asterisk: AsteriskInstance,
) -> None:
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=60_000),
        rig(asterisk) as r,
        sipp_caller(asterisk.ports.sip, "9999", hangup_after_ms=8000) as caller,
    ):
        _channel, uniqueid = await asyncio.wait_for(r.caller, 15)
        leg = await r.telephony.ring_agent(
            "agent4", uniqueid, channel_id=r.telephony.new_channel_id(), ring_timeout=1.5
        )
        failed = await r.wait_event(
            lambda e: isinstance(e, OriginateResponse) and e.uniqueid == leg
        )
        assert isinstance(failed, OriginateResponse)
        assert failed.response == "Failure"
        # The caller is still ours: hang them up by Uniqueid.
        await r.telephony.hangup(uniqueid)
        gone = await r.wait_event(lambda e: isinstance(e, Hangup) and e.uniqueid == uniqueid)
        assert isinstance(gone, Hangup)
        await caller.wait(timeout=30)


async def test_supervisor_spies_on_the_agent_leg(asterisk: AsteriskInstance) -> None:
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=200, talk_ms=6000),
        rig(asterisk) as r,
        sipp_caller(asterisk.ports.sip, "9999") as caller,
    ):
        _channel, uniqueid = await asyncio.wait_for(r.caller, 15)
        leg = await r.telephony.ring_agent(
            "agent5", uniqueid, channel_id=r.telephony.new_channel_id(), ring_timeout=10
        )
        await r.wait_event(lambda e: isinstance(e, OriginateResponse) and e.uniqueid == leg)
        spy = await r.telephony.spy("supervisor1", leg, SpyMode.WHISPER)
        start = await r.wait_event(lambda e: isinstance(e, ChanSpyStart))
        assert isinstance(start, ChanSpyStart)
        assert start.spyee.uniqueid == leg
        assert start.spyer.uniqueid == spy
        await caller.wait(timeout=30)


async def test_values_that_would_inject_application_options_are_refused(
    asterisk: AsteriskInstance,
) -> None:
    async with rig(asterisk) as r:
        with pytest.raises(AsteriskError, match="refusing"):
            await r.telephony.ring_agent("agent1,x", "c", channel_id="x", ring_timeout=1)
        with pytest.raises(AsteriskError, match="refusing"):
            await r.telephony.record("chan", "../etc/passwd")
        with pytest.raises(AsteriskError, match="refusing"):
            await r.telephony.spy("supervisor1", "chan,B", SpyMode.LISTEN)
