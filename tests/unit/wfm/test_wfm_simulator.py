"""Simulator behaviour: shifts, abandons, ringing, no-answer, wrap-up, skills,
reproducibility, time series and report invariants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from callcenter.errors import ConfigError, StateError
from callcenter.wfm.dispatch import FifoDispatcher, OfferCall
from callcenter.wfm.distributions import Constant, Exponential, Uniform
from callcenter.wfm.report import build_report, format_report
from callcenter.wfm.scenario import AgentGroup, QueueSpec, Scenario
from callcenter.wfm.simulator import simulate


def _queue(
    name: str = "q", skill: str = "s", calls: float = 60.0, hours: int = 2, **kw: object
) -> QueueSpec:
    return QueueSpec(
        name=name,
        skill=skill,
        calls=(calls,) * hours,
        handle=kw.pop("handle", Exponential(120.0)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _group(count: int = 3, skills: Mapping[str, int] | None = None, **kw: object) -> AgentGroup:
    return AgentGroup(
        name=str(kw.pop("name", "g")),
        count=count,
        skills=skills or {"s": 1},
        shifts=kw.pop("shifts", ()),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _scenario(queues: Sequence[QueueSpec], groups: Sequence[AgentGroup], **kw: object) -> Scenario:
    return Scenario(queues=tuple(queues), agents=tuple(groups), interval=3600.0, **kw)  # type: ignore[arg-type]


def test_same_seed_same_run_other_seed_other_run() -> None:
    scenario = _scenario([_queue(patience=Exponential(60.0))], [_group(2)], seed=4)
    a, b = simulate(scenario), simulate(scenario)
    np.testing.assert_array_equal(a.arrival, b.arrival)
    np.testing.assert_array_equal(a.answered, b.answered)
    np.testing.assert_array_equal(a.abandoned, b.abandoned)
    c = simulate(_scenario([_queue(patience=Exponential(60.0))], [_group(2)], seed=5))
    assert a.arrival.size != c.arrival.size or not np.array_equal(a.arrival, c.arrival)


def test_every_call_is_answered_or_abandoned_once() -> None:
    scenario = _scenario([_queue(calls=100.0, patience=Exponential(90.0))], [_group(3)], seed=1)
    result = simulate(scenario)
    answered = ~np.isnan(result.answered)
    abandoned = ~np.isnan(result.abandoned)
    assert np.all(answered ^ abandoned)
    assert np.all(result.answered[answered] >= result.arrival[answered])
    assert np.all(result.ended[answered] >= result.answered[answered])
    assert abandoned.sum() > 0
    # an abandoned call never reached an agent
    assert np.all(result.agent[abandoned] == -1)


def test_no_patience_no_abandon_and_little_law_on_waiting_series() -> None:
    scenario = _scenario([_queue(calls=80.0)], [_group(3)], seed=2, sample_step=60.0)
    result = simulate(scenario)
    assert np.all(np.isnan(result.abandoned))
    # integral of the waiting-calls step function = sum of waits
    waits = result.answered - result.arrival
    assert result.waiting_area.sum() == pytest.approx(waits.sum(), rel=1e-9)
    report = build_report(result)
    assert report.waiting_series.sum() * 60.0 == pytest.approx(waits.sum(), rel=1e-9)
    assert max(iv.waiting_max for iv in report.intervals) == result.waiting_max.max()


def test_shifts_bound_the_work() -> None:
    # one agent on 00:30-01:00 only; calls all day; nobody answers outside the shift
    group = _group(1, shifts=((1800.0, 3600.0),))
    scenario = _scenario([_queue(calls=200.0, patience=Constant(30.0))], [group], seed=3)
    result = simulate(scenario)
    answered = ~np.isnan(result.answered)
    assert answered.any()
    assert result.answered[answered].min() >= 1800.0
    assert result.answered[answered].max() <= 3600.0
    # the last call may run past the shift end: logged time is at least the shift
    assert (
        1800.0 <= result.logged_seconds[0] <= 1800.0 + result.ended[answered].max() - 3600.0 + 1e-6
    )


def test_logout_waits_for_the_call_to_end() -> None:
    group = _group(1, shifts=((0.0, 600.0), (1200.0, 1800.0)))
    scenario = _scenario([_queue(calls=300.0, hours=1, handle=Constant(500.0))], [group], seed=1)
    result = simulate(scenario)
    answered = np.sort(result.answered[~np.isnan(result.answered)])
    # calls answered at 0+, 500+; the second ends after the 600 s shift end,
    # and nothing is answered again before the second shift at 1200
    assert not np.any((answered > 600.0) & (answered < 1200.0))
    assert np.any(answered >= 1200.0)


def test_answer_delay_counts_in_the_wait() -> None:
    group = _group(20, answer_delay=Constant(4.0))
    scenario = _scenario([_queue(calls=30.0)], [group], seed=1)
    result = simulate(scenario)
    waits = result.answered - result.arrival
    assert np.all(waits >= 4.0 - 1e-9)
    np.testing.assert_allclose(result.answered - result.first_offer, 4.0)
    assert build_report(result).total.asa == pytest.approx(4.0, abs=1e-6)


def test_caller_hanging_up_while_it_rings_frees_the_agent() -> None:
    group = _group(1, answer_delay=Constant(10.0))
    queue = _queue(calls=200.0, hours=1, patience=Uniform(0.0, 20.0), handle=Constant(5.0))
    result = simulate(_scenario([queue], [group], seed=6))
    abandoned = ~np.isnan(result.abandoned)
    rang_then_abandoned = abandoned & ~np.isnan(result.first_offer)
    assert rang_then_abandoned.any()
    assert (~np.isnan(result.answered)).any()


def test_unanswered_offers_are_reoffered() -> None:
    group = _group(4, no_answer=0.3, ring_timeout=15.0)
    result = simulate(_scenario([_queue(calls=60.0)], [group], seed=9))
    assert result.unanswered_offers > 0
    assert result.offers == result.unanswered_offers + int((~np.isnan(result.answered)).sum())
    assert np.all(~np.isnan(result.answered))


def test_wrapup_keeps_the_agent_busy() -> None:
    queue = _queue(calls=20.0, hours=4, handle=Constant(60.0), wrapup=Constant(30.0))
    result = simulate(_scenario([queue], [_group(1)], seed=2))
    answered = np.argsort(result.answered)
    starts, ends = result.answered[answered], result.ended[answered]
    # the next answer never comes within 30 s of the previous hang-up
    assert np.all(starts[1:] >= ends[:-1] + 30.0 - 1e-9)
    report = build_report(result)
    assert report.total.aht == pytest.approx(90.0)
    assert report.total.wrapup_time == pytest.approx(30.0)
    busy = (60.0 + 30.0) * report.total.answered
    assert report.occupancy == pytest.approx(busy / result.logged_seconds.sum(), rel=0.01)


def test_skills_route_calls_only_to_skilled_agents() -> None:
    queues = [_queue("sales", "sales", 60.0), _queue("support", "support", 60.0)]
    groups = [
        _group(2, {"sales": 1}, name="sellers"),
        _group(2, {"support": 1}, name="helpers"),
        _group(1, {"sales": 1, "support": 1}, name="both"),
    ]
    result = simulate(_scenario(queues, groups, seed=1))
    answered = ~np.isnan(result.answered)
    group_of = result.agent_group[result.agent[answered]]
    queue_of = result.queue[answered]
    assert not np.any((queue_of == 0) & (group_of == 1))  # sales never to helpers
    assert not np.any((queue_of == 1) & (group_of == 0))
    assert np.any(group_of == 2)
    report = build_report(result)
    assert set(report.by_queue) == {"sales", "support"}
    assert set(report.occupancy_by_group) == {"sellers", "helpers", "both"}
    assert sum(f.offered for f in report.by_queue.values()) == report.total.offered
    text = format_report(report)
    assert "sales" in text
    assert "occupancy" in text


def test_warmup_excludes_early_calls() -> None:
    scenario = _scenario([_queue(calls=60.0, hours=2)], [_group(3)], seed=1, warmup=3600.0)
    result = simulate(scenario)
    report = build_report(result)
    assert report.total.offered == int(np.sum(result.arrival >= 3600.0))
    assert report.intervals[0].offered == 0


def test_progress_is_reported() -> None:
    seen: list[float] = []
    simulate(_scenario([_queue()], [_group()], seed=1), on_progress=seen.append)
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    assert len(seen) > 10


class _Rogue(FifoDispatcher):
    """Offers every arriving call to agent 0, busy or not."""

    def call_arrived(self, at: float, call: int, queue: int) -> Sequence[OfferCall]:
        return (OfferCall(call, 0),)

    def offer_answered(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        return ()

    def call_ended(self, at: float, call: int, agent: int) -> Sequence[OfferCall]:
        return ()

    def wrapup_ended(self, at: float, agent: int) -> Sequence[OfferCall]:
        return ()


def test_a_wrong_offer_is_a_state_error() -> None:
    with pytest.raises(StateError, match="not idle"):
        simulate(_scenario([_queue(calls=100.0)], [_group(2)], seed=1), _Rogue())


def test_scenario_validation() -> None:
    with pytest.raises(ConfigError, match="no agent group has skill"):
        _scenario([_queue(skill="x")], [_group()])
    with pytest.raises(ConfigError, match="unique"):
        _scenario([_queue(), _queue()], [_group()])
    with pytest.raises(ConfigError, match="at least one queue"):
        _scenario([], [_group()])
