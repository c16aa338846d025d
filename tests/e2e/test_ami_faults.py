"""Tier 3: AMI fault injection against the real Asterisk.

A TCP proxy sits between the adapter and Asterisk's AMI. Mid-call, the link is
cut, then made half-open (silent); the adapter must notice, reconnect, resync
the live channels into the tracker, and an Originate sent just before a cut
must not ring twice. A whole daemon whose Originate reached Asterisk while its
answer was lost in a long outage connects the caller to that one agent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from callcenter.adapters.ami import AmiClient, Connected, Disconnected, Resync, StreamItem
from callcenter.callpath.service import Phase
from callcenter.config import AmiConfig
from callcenter.protocol.channels import ChannelTracker
from callcenter.testing.daemons import running_daemon
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.tcp_proxy import TcpProxy
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk


@contextlib.asynccontextmanager
async def proxied_client(
    asterisk: AsteriskInstance,
) -> AsyncIterator[tuple[AmiClient, TcpProxy, ChannelTracker, list[StreamItem]]]:
    proxy = TcpProxy("127.0.0.1", asterisk.ports.ami)
    await proxy.start()
    config = AmiConfig(
        port=proxy.port, ping_interval=0.5, ping_timeout=0.5, reconnect_min=0.1, reconnect_max=0.5
    )
    client = AmiClient(config, SecretStr(asterisk.ami.secret))
    tracker = ChannelTracker(node="node1")
    received: list[StreamItem] = []

    def feed(item: StreamItem) -> None:
        received.append(item)
        if isinstance(item, Resync):
            tracker.resync(list(item.channels), list(item.bridges))
        elif not isinstance(item, Connected | Disconnected):
            tracker.apply(item)

    client.subscribe(feed)
    await client.start()
    try:
        await client.wait_connected(10)
        yield client, proxy, tracker, received
    finally:
        await client.stop()
        await proxy.stop()


def agent_channels(asterisk: AsteriskInstance, endpoint: str) -> list[str]:
    output = asterisk.cli("core show channels concise")
    return [line for line in output.splitlines() if line.startswith(f"PJSIP/{endpoint}-")]


async def test_cut_and_half_open_link_reconnect_and_resync_live_call(
    asterisk: AsteriskInstance,
) -> None:
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=100),
        proxied_client(asterisk) as (client, proxy, tracker, received),
    ):
        # A live call: agent1's phone answers and the channel waits 30 s.
        uniqueid = await client.originate(
            "PJSIP/agent1", application="Wait", data="30", timeout_ms=5000
        )
        await until(lambda: tracker.channel(uniqueid) is not None)
        resyncs_before = sum(isinstance(i, Resync) for i in received)

        proxy.cut()
        await until(lambda: client.stats.reconnects >= 1)
        await until(lambda: sum(isinstance(i, Resync) for i in received) > resyncs_before)
        latest = [i for i in received if isinstance(i, Resync)][-1]
        assert uniqueid in {c.uniqueid for c in latest.channels}
        assert tracker.channel(uniqueid) is not None

        # Half-open: the TCP link stays up but nothing flows any more.
        proxy.blackhole()
        await until(lambda: client.stats.ping_timeouts >= 1, timeout=5)
        proxy.heal()
        await until(lambda: client.stats.reconnects >= 2)
        await client.wait_connected(5)
        assert tracker.channel(uniqueid) is not None

        await client.send("Hangup", {"Channel": "/^PJSIP/agent1-.*$/"})
        await until(lambda: tracker.channel(uniqueid) is None)


async def test_originate_sent_just_before_a_cut_rings_once(asterisk: AsteriskInstance) -> None:
    async with (
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=100),
        proxied_client(asterisk) as (client, proxy, _tracker, _received),
    ):
        task = asyncio.create_task(
            client.originate("PJSIP/agent2", application="Wait", data="20", timeout_ms=5000)
        )
        await asyncio.sleep(0.002)  # the action is on the wire, its answer is not read yet
        proxy.cut()
        uniqueid = await asyncio.wait_for(task, 15)
        await until(lambda: len(agent_channels(asterisk, "agent2")) >= 1)
        await asyncio.sleep(1.0)  # a duplicate would have appeared by now
        assert len(agent_channels(asterisk, "agent2")) == 1
        channels, _bridges = await client.snapshot()
        assert [c.uniqueid for c in channels if c.channel.startswith("PJSIP/agent2-")] == [uniqueid]
        await client.send("Hangup", {"Channel": "/^PJSIP/agent2-.*$/"})
        await until(lambda: not agent_channels(asterisk, "agent2"))


SITE = """
queues:
  support: {skills: {support: 1}, wrapup: 1, first_announce_after: 60, ring_timeout: 15}
routes:
  default: {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent18, skills: {support: 5}}
  a02: {name: Agent 2, endpoint: agent19, skills: {support: 5}}
"""


def concise_channels(asterisk: AsteriskInstance) -> list[list[str]]:
    """``core show channels concise``: Channel!Context!...!BridgeID!Uniqueid."""
    lines = asterisk.cli("core show channels concise").splitlines()
    return [line.split("!") for line in lines if line.count("!") >= 13]


async def test_originate_answer_lost_in_a_long_outage_connects_the_caller_to_one_agent(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    """Issue 4, recovery: the daemon's Originate reaches Asterisk, its answer
    (and every event after it) is lost, and the AMI link stays down longer
    than originate's 5 s retry window. a01's phone rings and answers; the
    offer must stand, no second agent be rung, and once the link is back the
    call is a01's, one agent leg bridged with the caller, to its end."""
    proxy = TcpProxy("127.0.0.1", asterisk.ports.ami)
    await proxy.start()
    ami = {
        "port": proxy.port,
        "secret": asterisk.ami.secret,
        "ping_interval": 1.0,
        "ping_timeout": 1.0,
        "reconnect_max": 0.5,
    }
    try:
        async with (
            running_daemon(asterisk, tmp_path, SITE, extra={"ami": ami}) as d,
            sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300),
            sipp_caller(asterisk.ports.sip, "3901") as caller,
        ):
            await until(lambda: d.callpath.calls, what="caller in queue")
            [record] = list(d.callpath.calls.values())
            proxy.blackhole_after(b"Action: Originate")
            proxy.refuse()  # and no reconnection until heal()
            d.callpath.agent_login("a01")  # offered at once: the Originate goes out
            await until(lambda: proxy.tripped, what="Originate sent, its answer lost")
            d.callpath.agent_login("a02")  # free during the outage
            await until(lambda: not d.ami.connected, what="the watchdog drops the silent link")
            await asyncio.sleep(7.0)  # the outage outlasts originate's retry window (5 s)
            assert not [e for e in d.acd.audit if e.kind == "cancelled"]
            assert (record.phase, record.agent_id) == (Phase.RINGING, "a01")
            assert d.acd.agent_state("a02") == "ready"
            proxy.heal()
            await until(
                lambda: record.phase is Phase.CONNECTED, timeout=20, what="answer found on resync"
            )
            channels = concise_channels(asterisk)
            agent_legs = [c for c in channels if c[0].startswith("PJSIP/agent")]
            [caller_leg] = [c for c in channels if c[-1] == record.caller_uniqueid]
            assert [(c[0].rsplit("-", 1)[0], c[-1]) for c in agent_legs] == [
                ("PJSIP/agent18", record.agent_leg)
            ]
            bridge = agent_legs[0][12]
            assert bridge, "the agent leg is in no bridge"
            assert caller_leg[12] == bridge  # bridged with the caller
            assert [(e.kind, e.agent_id) for e in d.acd.audit if e.kind == "offer"] == [
                ("offer", "a01")
            ]
            await d.callpath.hangup("a01")  # the agent ends the call from the desktop
            await until(lambda: d.callpath.history, what="call completed")
            [done] = list(d.callpath.history)
            assert (done.phase, done.offers, done.legs) == (
                Phase.COMPLETED,
                1,
                [("a01", record.agent_leg)],
            )
            assert d.acd.agent_state("a01") in ("wrap_up", "ready")  # not stuck ringing
            await until(lambda: d.acd.agent_state("a01") == "ready", what="wrap-up over")
            assert d.acd.agent_state("a02") == "ready"
            result = await caller.wait(timeout=30)
            assert result.ok, result.errors or result.stderr
    finally:
        await proxy.stop()
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")
