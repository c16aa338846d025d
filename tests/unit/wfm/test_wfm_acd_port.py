"""The simulator driving the real ACD core through callcenter.wfm.acd_port.

Two claims beyond the anchor tests (which already run every layer with the
real ACD too):

* on a single-skill M/M/c queue the real ACD reproduces Erlang C within
  +-5 % for ASA and service level, directly, with enough calls for +-5 % to
  be about 3 standard deviations (measured over 12 seeds of the same
  process: ASA relative SD 1.6 % at 150 000 calls for M/M/2 at rho = 0.5);
* on a skills-based centre the real ACD beats FIFO (the app_queue-like
  reference) measurably: a premium team that also backs up the general
  queue is protected by a relaxation step instead of being drained by
  longest-idle routing.
"""

from __future__ import annotations

import numpy as np
import pytest

from callcenter.acd import QueueRules, Relaxation
from callcenter.cli import main as cli_main
from callcenter.wfm.acd_port import AcdDispatcher
from callcenter.wfm.dispatch import FifoDispatcher, OfferCall
from callcenter.wfm.distributions import Exponential
from callcenter.wfm.erlang import erlang_c_metrics
from callcenter.wfm.report import build_report
from callcenter.wfm.scenario import AgentGroup, QueueSpec, Scenario
from callcenter.wfm.simulator import simulate

AHT = 180.0
TARGET = 20.0


def test_real_acd_matches_erlang_c_within_5_percent_on_mmc() -> None:
    agents, rho, calls = 2, 0.5, 150_000
    lam = rho * agents / AHT
    day = calls / lam  # one forecast interval: the report stays cheap
    scenario = Scenario(
        queues=(QueueSpec("q", "s", (float(calls),), Exponential(AHT)),),
        agents=(AgentGroup("agents", agents, {"s": 1}, ()),),
        interval=day,
        seed=21,
        sample_step=day,
    )
    result = simulate(scenario, AcdDispatcher())
    expected = erlang_c_metrics(agents, lam, AHT, TARGET)
    waits = (result.answered - result.arrival)[1000:]  # warm-up from an empty centre
    assert not np.isnan(waits).any()
    asa = float(waits.mean())
    sl = float((waits <= TARGET).mean())
    print(
        f"real ACD M/M/{agents} rho={rho}, {waits.size} calls: ASA {asa:.2f}s vs Erlang C "
        f"{expected.asa:.2f}s ({100 * (asa / expected.asa - 1):+.1f} %); SL {sl:.4f} vs "
        f"{expected.service_level:.4f} ({100 * (sl / expected.service_level - 1):+.1f} %)"
    )
    assert asa == pytest.approx(expected.asa, rel=0.05)
    assert sl == pytest.approx(expected.service_level, rel=0.05)
    assert build_report(result).occupancy == pytest.approx(rho, abs=0.01)


def _two_teams(seed: int) -> Scenario:
    """A big general queue and a small premium one (80/20 each). The premium
    team also holds the general skill, at a low level: a backup."""
    return Scenario(
        queues=(
            QueueSpec("general", "general", (400.0,) * 30, Exponential(AHT), Exponential(180.0)),
            QueueSpec("premium", "premium", (100.0,) * 30, Exponential(AHT), Exponential(180.0)),
        ),
        agents=(
            AgentGroup("general team", 21, {"general": 5}, ()),
            AgentGroup("premium team", 8, {"premium": 5, "general": 1}, ()),
        ),
        interval=3600.0,
        seed=seed,
        warmup=3600.0,
    )


def _skills_acd() -> AcdDispatcher:
    # General calls want level 5 (the general team); after 20 s any level
    # will do, so the premium team only helps once a general call is late.
    return AcdDispatcher(
        {"general": QueueRules("general", relaxations=(Relaxation(20.0, min_level=1),))},
        skills={"general": {"general": 5}},
    )


def test_skills_based_acd_beats_fifo_on_a_backup_team() -> None:
    fifo = build_report(simulate(_two_teams(1), FifoDispatcher()))
    acd = build_report(simulate(_two_teams(1), _skills_acd()))
    for name, report in (("fifo", fifo), ("acd", acd)):
        figures = {q: (f.service_level, f.abandon_rate) for q, f in report.by_queue.items()}
        print(name, "SL, abandons per queue", figures, "total SL", report.total.service_level)
    # FIFO lets longest-idle premium agents take general calls: premium misses 80/20.
    assert fifo.by_queue["premium"].service_level < 0.70
    assert acd.by_queue["premium"].service_level >= 0.80
    assert acd.by_queue["premium"].service_level >= fifo.by_queue["premium"].service_level + 0.10
    assert acd.by_queue["premium"].abandon_rate < 0.7 * fifo.by_queue["premium"].abandon_rate
    # ... and not by sacrificing the centre: the general queue still meets 80/20
    # and the overall service level is no worse.
    assert acd.by_queue["general"].service_level >= 0.80
    assert acd.total.service_level >= fifo.total.service_level - 0.005


def test_port_owns_no_timer_of_its_own_and_rona_brings_the_agent_back() -> None:
    port = AcdDispatcher()
    port.add_queue(0, "q", "s", target_time=30.0)
    assert port.engine.queues["q"].sl_threshold == 30.0
    assert port.login(0.0, 0, {"s": 1}) == ()
    assert port.login(0.0, 1, {"s": 1}) == ()
    assert list(port.call_arrived(1.0, 0, 0)) == [OfferCall(0, 0)]
    # not answered: re-offered to the other agent; agent 0 is ready again
    assert list(port.offer_not_answered(21.0, 0, 0)) == [OfferCall(0, 1)]
    assert port.engine.agent_state("0") == "ready"
    assert port.offer_answered(22.0, 0, 1) == ()
    assert port.call_ended(100.0, 0, 1) == ()
    assert port.next_deadline() is None  # wrap-up ends when the simulator says so
    assert port.engine.agent_state("1") == "wrap_up"
    assert list(port.call_arrived(101.0, 1, 0)) == [OfferCall(1, 0)]
    assert port.wrapup_ended(110.0, 1) == ()
    assert port.logout(111.0, 1) == ()


def test_simulate_command_uses_the_real_acd_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    flags = "--agents 5 --calls-per-hour 60 --aht 180 --hours 1 --no-progress --no-intervals"
    code = cli_main(["simulate", *flags.split()])
    assert code == 0
    assert "dispatcher acd" in capsys.readouterr().out
