"""Erlang B / C / A calculators.

Reference values:

* Erlang C: the worked example of the classic "Erlang C formula for call
  centres" page (360 calls per half hour = 0.2 call/s, AHT 240 s, 55 agents:
  P(wait) = 0.2387, ASA = 8.184 s, P(wait <= 15 s) = 0.8459), as reproduced in
  the Maxima "erlang.mac" worked example.
* Erlang B: textbook table values (e.g. B(10, 5 E) = 0.01838).
* Erlang A has no closed form we could quote from a published table, so it is
  checked against (1) the exact special case patience = AHT, where the number in
  system is Poisson(a) (an M/M/inf chain), (2) a brute-force truncated
  birth-death chain with a uniformised tagged-customer chain for the waiting
  time, computed with numpy independently of the closed forms, (3) convergence
  to Erlang C as patience -> inf, (4) the fluid limit P(abandon) -> 1 - N/a in
  heavy overload, and (5) the simulator (test_wfm_simulator_anchor.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from callcenter.errors import ConfigError
from callcenter.wfm.erlang import (
    erlang_a,
    erlang_a_required_agents,
    erlang_b,
    erlang_c,
    erlang_c_asa,
    erlang_c_metrics,
    erlang_c_required_agents,
    erlang_c_service_level,
)


def test_erlang_b_table_values() -> None:
    assert erlang_b(10, 5.0) == pytest.approx(0.018384, abs=1e-6)
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_b(5, 0.0) == 0.0


def test_erlang_c_published_example() -> None:
    r = erlang_c_metrics(55, 0.2, 240.0, target_time=15.0)
    assert r.traffic == pytest.approx(48.0)
    assert r.p_wait == pytest.approx(0.2387, abs=5e-5)
    assert r.asa == pytest.approx(8.184, abs=5e-4)
    assert r.service_level == pytest.approx(0.8459, abs=5e-5)
    assert r.occupancy == pytest.approx(48 / 55)
    assert erlang_c(55, 48.0) == pytest.approx(r.p_wait)
    assert erlang_c_asa(55, 0.2, 240.0) == pytest.approx(r.asa)
    assert erlang_c_service_level(55, 0.2, 240.0, 15.0) == pytest.approx(r.service_level)


def test_erlang_c_single_server_is_mm1() -> None:
    # M/M/1: P(wait) = rho, ASA = rho/(mu - lambda)
    r = erlang_c_metrics(1, 0.5, 1.0, target_time=2.0)
    assert r.p_wait == pytest.approx(0.5)
    assert r.asa == pytest.approx(1.0)
    assert r.service_level == pytest.approx(1 - 0.5 * math.exp(-0.5 * 2.0))


def test_erlang_c_unstable_and_empty() -> None:
    r = erlang_c_metrics(10, 1.0, 10.0)
    assert r.p_wait == 1.0
    assert math.isinf(r.asa)
    assert r.service_level == 0.0
    empty = erlang_c_metrics(3, 0.0, 100.0)
    assert empty.p_wait == 0.0
    assert empty.service_level == 1.0
    assert empty.asa == 0.0


def test_erlang_c_large_n_is_stable() -> None:
    # 10 000 agents at 0.99 load: factorials would overflow; the recursion does not.
    r = erlang_c_metrics(10_000, 9_900 / 300.0, 300.0, target_time=20.0)
    assert 0.0 < r.p_wait < 1.0
    assert math.isfinite(r.asa)
    # very lightly loaded: P(wait) underflows to 0 cleanly
    light = erlang_c_metrics(5_000, 1.0 / 300.0, 300.0)
    assert light.p_wait == 0.0
    assert light.service_level == 1.0


def test_required_agents_is_minimal() -> None:
    r = erlang_c_required_agents(0.2, 240.0, target_sl=0.8, target_time=20.0)
    assert r.service_level >= 0.8
    assert erlang_c_metrics(r.agents - 1, 0.2, 240.0, 20.0).service_level < 0.8
    assert r.agents == 54
    by_asa = erlang_c_required_agents(0.2, 240.0, target_sl=None, target_asa=10.0)
    assert by_asa.asa <= 10.0
    assert erlang_c_asa(by_asa.agents - 1, 0.2, 240.0) > 10.0
    both = erlang_c_required_agents(0.2, 240.0, target_sl=0.8, target_asa=5.0)
    assert both.agents == max(
        r.agents, erlang_c_required_agents(0.2, 240.0, target_sl=None, target_asa=5.0).agents
    )
    occ = erlang_c_required_agents(0.2, 240.0, target_sl=None, max_occupancy=0.85)
    assert occ.agents == math.ceil(48 / 0.85)
    assert erlang_c_required_agents(0.0, 240.0).agents == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_sl": 1.0},
        {"target_sl": -0.1},
        {"target_asa": 0.0},
        {"max_occupancy": 0.0},
        {"target_time": -1.0},
    ],
)
def test_required_agents_rejects_bad_targets(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        erlang_c_required_agents(0.2, 240.0, **kwargs)


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError):
        erlang_c_metrics(0, 0.2, 240.0)
    with pytest.raises(ConfigError):
        erlang_c_metrics(5, 0.2, 0.0)
    with pytest.raises(ConfigError):
        erlang_a(5, 0.2, 240.0, 0.0)
    with pytest.raises(ConfigError):
        erlang_b(-1, 1.0)


# --------------------------------------------------------------------- Erlang A


def _poisson_pmf(a: float, k: int) -> float:
    return math.exp(-a + k * math.log(a) - math.lgamma(k + 1))


def test_erlang_a_patience_equal_to_aht_is_poisson() -> None:
    # theta = mu: death rate in state k is k*mu for every k, so L ~ Poisson(a).
    lam, aht, n = 0.2, 240.0, 50
    a = lam * aht
    r = erlang_a(n, lam, aht, aht, 20.0)
    p_wait = 1.0 - sum(_poisson_pmf(a, k) for k in range(n))
    queue = sum((k - n) * _poisson_pmf(a, k) for k in range(n, 600))
    assert r.p_wait == pytest.approx(p_wait, rel=1e-9)
    assert r.p_abandon == pytest.approx(queue / a, rel=1e-9)  # theta E[Q] / lambda
    assert r.mean_wait == pytest.approx(queue / lam, rel=1e-9)  # Little


def _brute_force_erlang_a(
    n: int, lam: float, aht: float, patience: float, t: float
) -> tuple[float, float, float, float]:
    """(p_wait, p_abandon, asa, P(answered within t)) from a truncated chain."""
    mu, theta = 1.0 / aht, 1.0 / patience
    size = n + 4000
    logp = np.zeros(size)
    for k in range(1, size):
        death = min(k, n) * mu + max(k - n, 0) * theta
        logp[k] = logp[k - 1] + math.log(lam / death)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    p_wait = float(p[n:].sum())
    queue = float(np.sum(np.arange(size - n) * p[n:]))
    p_abandon = theta * queue / lam
    # Tagged customer finding j ahead: states 0..J (number ahead), + served,
    # + abandoned. Uniformisation for P(served by t); mean wait of served by
    # the expected-time recursion.
    ahead = p[n:]
    jmax = int(np.nonzero(ahead > 1e-18)[0].max()) + 1
    ahead = ahead[:jmax]
    n_mu = n * mu
    out = n_mu + (np.arange(jmax) + 1) * theta  # total exit rate of state k
    big = float(out.max())
    steps = int(big * t + 10 * math.sqrt(big * t) + 50)
    state = ahead.copy()
    served = 0.0
    poisson = math.exp(-big * t)
    served_by_t = 0.0
    for m in range(steps):
        # served mass after m jumps, weighted by P(m uniformised jumps by t)
        served_by_t += poisson * served
        moved_down = state * (n_mu + np.arange(jmax) * theta) / big
        stay = state * (1.0 - out / big)
        served = served + float(moved_down[0])
        new = stay.copy()
        new[:-1] += moved_down[1:]
        state = new
        poisson *= big * t / (m + 1)
    # Mean wait of served: E[W; served | j] = P(served|j) * sum_{k<=j} 1/out_k
    p_served_given = n_mu / out
    mean_hold = np.cumsum(1.0 / out)
    asa = (
        p_wait * float(np.sum(ahead / ahead.sum() * p_served_given * mean_hold)) / (1.0 - p_abandon)
    )
    return p_wait, p_abandon, asa, (1.0 - p_wait) + served_by_t


@pytest.mark.parametrize(
    ("n", "lam", "aht", "patience"),
    [
        (10, 0.05, 180.0, 60.0),  # rho 0.9, impatient callers
        (20, 0.15, 180.0, 300.0),  # overloaded (rho 1.35)
        (50, 0.25, 180.0, 120.0),  # rho 0.9, 50 agents
    ],
)
def test_erlang_a_matches_brute_force_chain(
    n: int, lam: float, aht: float, patience: float
) -> None:
    r = erlang_a(n, lam, aht, patience, target_time=20.0)
    p_wait, p_abandon, asa, sl = _brute_force_erlang_a(n, lam, aht, patience, 20.0)
    assert r.p_wait == pytest.approx(p_wait, rel=1e-6)
    assert r.p_abandon == pytest.approx(p_abandon, rel=1e-6)
    assert r.asa == pytest.approx(asa, rel=1e-6)
    assert r.service_level == pytest.approx(sl, abs=1e-5)


def test_erlang_a_converges_to_erlang_c() -> None:
    c = erlang_c_metrics(55, 0.2, 240.0, 15.0)
    previous = math.inf
    for patience in (1e3, 1e4, 1e5, 1e7):
        a = erlang_a(55, 0.2, 240.0, patience, 15.0)
        gap = abs(a.asa - c.asa)
        assert gap < previous
        previous = gap
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-4)
    assert a.asa == pytest.approx(c.asa, rel=1e-4)
    assert a.service_level == pytest.approx(c.service_level, rel=1e-5)
    assert a.p_abandon < 1e-5
    inf = erlang_a(55, 0.2, 240.0, math.inf, 15.0)
    assert inf.asa == pytest.approx(c.asa)
    assert inf.p_abandon == 0.0


def test_erlang_a_heavy_overload_fluid_limit() -> None:
    # 10 agents for 48 Erlangs: nearly all agents busy, the rest abandons.
    r = erlang_a(10, 0.2, 240.0, 120.0, 20.0)
    assert r.p_abandon == pytest.approx(1 - 10 / 48, rel=1e-4)
    assert r.occupancy == pytest.approx(1.0, abs=1e-4)
    assert r.service_level < 1e-3
    # Little on abandons: P(abandon) = theta * E[W]
    assert r.mean_wait == pytest.approx(r.p_abandon * 120.0)


def test_erlang_a_large_n_overloaded_is_finite() -> None:
    r = erlang_a(2000, 12.0, 300.0, 60.0, 20.0)  # 3600 Erlangs on 2000 agents
    assert r.p_abandon == pytest.approx(1 - 2000 / 3600, rel=1e-3)
    assert math.isfinite(r.asa)


def test_erlang_a_required_agents() -> None:
    r = erlang_a_required_agents(0.2, 240.0, 120.0, target_sl=0.8, target_time=20.0)
    assert r.service_level >= 0.8
    assert erlang_a(r.agents - 1, 0.2, 240.0, 120.0, 20.0).service_level < 0.8
    # abandonment helps: never more agents than Erlang C
    assert r.agents <= erlang_c_required_agents(0.2, 240.0).agents
    ab = erlang_a_required_agents(0.2, 240.0, 120.0, target_sl=None, max_abandon=0.02)
    assert ab.p_abandon <= 0.02
    assert erlang_a(ab.agents - 1, 0.2, 240.0, 120.0).p_abandon > 0.02
    # start guess above the answer: walks down
    # very impatient callers: the answer lies below the search's start guess (a/2)
    low = erlang_a_required_agents(1.0, 100.0, 1.0, target_sl=None, max_abandon=0.9)
    linear = next(n for n in range(1, 200) if erlang_a(n, 1.0, 100.0, 1.0).p_abandon <= 0.9)
    assert low.agents == linear < 50
