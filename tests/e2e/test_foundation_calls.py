"""Tier 3: real SIP calls through the sandbox Asterisk into our FastAGI server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from callcenter.adapters.ami import StreamItem
from callcenter.adapters.fastagi import AgiSession, FastAgiServer
from callcenter.config import Settings
from callcenter.daemon import Daemon
from callcenter.errors import AGIHangup
from callcenter.flows.selftest import VARIABLE
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_caller

pytestmark = pytest.mark.asterisk


def daemon_settings(asterisk: AsteriskInstance) -> Settings:
    return Settings.model_validate(
        {
            "ami": {
                "port": asterisk.ports.ami,
                "secret": asterisk.ami.secret,
                "ping_interval": 1.0,
                "ping_timeout": 1.0,
            },
            "agi": {"port": asterisk.ports.agi},
            "http": {"port": 0, "auth": "off"},
        }
    )


@contextlib.asynccontextmanager
async def running_daemon(asterisk: AsteriskInstance) -> AsyncIterator[Daemon]:
    daemon = Daemon(daemon_settings(asterisk))
    await daemon.start()
    try:
        await daemon.ami.wait_connected(10)
        yield daemon
    finally:
        await daemon.stop()


async def test_selftest_reads_real_dtmf_and_sets_a_variable(asterisk: AsteriskInstance) -> None:
    async with running_daemon(asterisk) as daemon:
        seen: list[StreamItem] = []
        daemon.ami.subscribe(seen.append)
        async with sipp_caller(
            asterisk.ports.sip, "9999", digits="123", first_delay_ms=1500
        ) as sipp:
            result = await sipp.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        await daemon.ami.drain()
        dtmf = [getattr(e, "digit", None) for e in seen if type(e).__name__ == "DTMFEnd"]
        varsets = [
            e
            for e in seen
            if type(e).__name__ == "VarSet" and getattr(e, "variable", None) == VARIABLE
        ]
        assert [d for d in dtmf if d] == ["1", "2", "3"]
        assert [getattr(v, "value", None) for v in varsets] == ["123"]


async def test_caller_hangup_during_agi_command_ends_handler_cleanly(
    asterisk: AsteriskInstance,
) -> None:
    outcomes: list[str] = []
    done = asyncio.Event()

    async def long_prompt(session: AgiSession) -> None:
        try:
            await session.answer()
            # Far longer than the caller stays: the hang-up arrives mid-command.
            await session.get_data("beep", timeout_ms=20_000, max_digits=10)
            outcomes.append("returned")
        except AGIHangup:
            outcomes.append("hangup")
        finally:
            done.set()

    server = FastAgiServer(
        "127.0.0.1", asterisk.ports.agi, {"selftest": long_prompt}, idle_timeout=30
    )
    await server.start()
    try:
        async with sipp_caller(asterisk.ports.sip, "9999", hangup_after_ms=1500) as sipp:
            result = await sipp.wait(timeout=30)
        assert result.ok, result.errors or result.stderr
        await asyncio.wait_for(done.wait(), 10)
        assert outcomes == ["hangup"]
        # The next call works on the same server.
        done.clear()
        async with sipp_caller(asterisk.ports.sip, "9999", hangup_after_ms=1000) as sipp:
            await sipp.wait(timeout=30)
        await asyncio.wait_for(done.wait(), 10)
        assert outcomes == ["hangup", "hangup"]
    finally:
        await server.stop()
    await wait_no_channels(asterisk)


async def wait_no_channels(asterisk: AsteriskInstance, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asterisk.active_channels():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"channels left in Asterisk: {asterisk.cli('core show channels')}")
        await asyncio.sleep(0.2)
