"""Tier 3: AMI fault injection against the real Asterisk.

A TCP proxy sits between the adapter and Asterisk's AMI. Mid-call, the link is
cut, then made half-open (silent); the adapter must notice, reconnect, resync
the live channels into the tracker, and an Originate sent just before a cut
must not ring twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from callcenter.adapters.ami import AmiClient, Connected, Disconnected, Resync, StreamItem
from callcenter.config import AmiConfig
from callcenter.protocol.channels import ChannelTracker
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents
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
