"""Tier 3: the site's routing rules on real calls (sipp -> Asterisk -> daemon).

A queue's relaxation steps from the site file reach the live ACD: a caller
who waits past a step's threshold is answered by an extended agent (within
their monthly cap), or overflows to another queue and its agents. Before
the threshold those agents, ready all along, are not offered the call.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from callcenter.callpath.service import CallRecord, Phase
from callcenter.daemon import Daemon
from callcenter.testing.daemons import running_daemon
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

THRESHOLD = 4.0

SITE = f"""
queues:
  expert:
    skills: {{expert: 6}}
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 60
    relaxations:
      - {{after: {THRESHOLD}, extended: true}}
  premium:
    skills: {{premium: 1}}
    ring_timeout: 8
    wrapup: 1
    first_announce_after: 60
    relaxations:
      - {{after: {THRESHOLD}, overflow_to: backup}}
  backup:
    skills: {{backup: 1}}
    ring_timeout: 8
    wrapup: 1
routes:
  '3901': {{queue: expert}}
  '3902': {{queue: premium}}
agents:
  a01: {{name: Backup agent, endpoint: agent11, skills: {{backup: 5}}}}
  x01:
    name: Branch adviser
    endpoint: agent12
    skills: {{expert: 7}}
    extended: true
    monthly_cap: 1
"""


def daemon(
    asterisk: AsteriskInstance, tmp_path: Path
) -> contextlib.AbstractAsyncContextManager[Daemon]:
    return running_daemon(asterisk, tmp_path, SITE)


def finished(d: Daemon) -> list[CallRecord]:
    return list(d.callpath.history)


def offer_waits(d: Daemon, record: CallRecord) -> list[float]:
    """How long the call had waited at each offer the ACD made for it."""
    return [
        entry.at - record.arrived_at
        for entry in d.acd.audit
        if entry.kind == "offer" and entry.interaction_id == record.interaction_id
    ]


async def test_a_call_past_the_threshold_goes_to_the_extended_agent_within_the_cap(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=2000),
    ):
        d.callpath.agent_login("x01")  # extended, cap 1: the only agent with the skill
        assert d.acd.agents["x01"].profile.monthly_cap == 1
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: d.callpath.calls, what="call enqueued")
            [waiting] = d.callpath.calls.values()
            # Before the threshold the adviser stays ready and the call waits.
            await until(
                lambda: d.clock.now() - waiting.arrived_at >= THRESHOLD - 1.5,
                what="most of the threshold passed",
            )
            assert waiting.phase is Phase.WAITING
            assert d.acd.agent_state("x01") == "ready"
            await until(lambda: d.callpath.history, timeout=30, what="call finished")
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        [record] = finished(d)
        assert record.phase is Phase.COMPLETED
        assert record.agent_id == "x01"
        [waited] = offer_waits(d, record)
        assert waited >= THRESHOLD
        assert record.answered_at is not None
        assert record.answered_at - record.arrived_at >= THRESHOLD
        assert d.acd.stats["expert"].answered_extended == 1
        assert any(
            e.kind == "offer" and "extended agent (overflow)" in e.reason for e in d.acd.audit
        )
        await until(lambda: d.acd.agent_state("x01") == "ready", what="wrap-up ends")

        # The cap (1 a month) is reached: the next caller waits past the
        # threshold, the ready adviser is never rung, the caller gives up.
        async with sipp_caller(
            asterisk.ports.sip, "3901", hangup_after_ms=int(THRESHOLD * 1000) + 3000
        ) as caller:
            await until(lambda: len(d.callpath.history) == 2, timeout=30, what="abandon")
            await caller.wait(timeout=30)
        second = finished(d)[1]
        assert second.phase is Phase.ABANDONED
        assert second.offers == 0
        assert offer_waits(d, second) == []
        assert d.acd.agent_state("x01") == "ready"
        assert d.acd.agents["x01"].month_count == 1
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")


async def test_a_call_past_the_threshold_overflows_to_another_queue(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    async with (
        daemon(asterisk, tmp_path) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=300, talk_ms=2000),
    ):
        d.callpath.agent_login("a01")  # backup skill only: premium calls reach them by overflow
        async with sipp_caller(asterisk.ports.sip, "3902") as caller:
            await until(lambda: d.callpath.history, timeout=30, what="call finished")
            result = await caller.wait(timeout=40)
        assert result.ok, result.errors or result.stderr
        [record] = finished(d)
        assert record.phase is Phase.COMPLETED
        assert record.agent_id == "a01"
        [waited] = offer_waits(d, record)
        assert waited >= THRESHOLD
        assert (d.acd.stats["premium"].overflowed_out, d.acd.stats["backup"].overflowed_in) == (
            1,
            1,
        )
        [moved] = [e for e in d.acd.audit if e.kind == "overflow"]
        assert moved.interaction_id == record.interaction_id
        assert "now in backup, place kept" in moved.reason
    await until(lambda: asterisk.active_channels() == 0, what="no channels left")
