"""Random durations, the piecewise Poisson arrival process and their parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from callcenter.errors import ConfigError
from callcenter.wfm.distributions import (
    Constant,
    Exponential,
    LogNormal,
    PoissonArrivals,
    RandomStream,
    Uniform,
    parse_distribution,
)


def _draw(dist: Exponential | LogNormal | Uniform | Constant, n: int, seed: int = 1) -> np.ndarray:
    stream = RandomStream(seed)
    return np.array([dist.sample(stream) for _ in range(n)])


def test_exponential_moments() -> None:
    x = _draw(Exponential(180.0), 200_000)
    # mean within 4 standard errors (sd = mean for the exponential)
    assert abs(x.mean() - 180.0) < 4 * 180.0 / math.sqrt(x.size)
    assert x.std() == pytest.approx(180.0, rel=0.02)
    # memorylessness, roughly: P(X > 180) = e^-1
    assert np.mean(x > 180.0) == pytest.approx(math.exp(-1), abs=0.005)


def test_lognormal_is_given_by_its_mean_and_sd() -> None:
    dist = LogNormal(240.0, 120.0)
    x = _draw(dist, 200_000)
    assert abs(x.mean() - 240.0) < 4 * 120.0 / math.sqrt(x.size)
    assert x.std() == pytest.approx(120.0, rel=0.03)
    assert dist.mean == 240.0
    assert np.log(x).std() == pytest.approx(dist.sigma, rel=0.01)


def test_uniform_and_constant() -> None:
    x = _draw(Uniform(2.0, 6.0), 50_000)
    assert x.min() >= 2.0
    assert x.max() < 6.0
    assert x.mean() == pytest.approx(4.0, abs=0.03)
    assert set(_draw(Constant(5.0), 10).tolist()) == {5.0}


def test_streams_are_reproducible() -> None:
    a, b = RandomStream(7), RandomStream(7)
    assert [a.exponential() for _ in range(5000)] == [b.exponential() for _ in range(5000)]
    c = RandomStream(8)
    assert a.normal() != c.normal()


def test_poisson_arrivals_follow_the_profile() -> None:
    """Counts per interval: mean = profile, variance = mean (Poisson), over 400 days."""
    profile = [0.0, 50.0, 200.0, 10.0]
    interval = 900.0
    counts = np.zeros((400, len(profile)))
    stream = RandomStream(3)
    for day in range(400):
        process = PoissonArrivals(profile, interval, stream)
        t = process.next_after(0.0)
        while t < process.end:
            counts[day, int(t // interval)] += 1
            t = process.next_after(t)
    assert counts[:, 0].sum() == 0
    for k in (1, 2, 3):
        assert abs(counts[:, k].mean() - profile[k]) < 4 * math.sqrt(profile[k] / 400)
        assert counts[:, k].var(ddof=1) == pytest.approx(profile[k], rel=0.25)
    assert math.isinf(PoissonArrivals([1.0], 10.0, stream).next_after(10.0))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (5, Constant(5.0)),
        (2.5, Constant(2.5)),
        ("exp:180", Exponential(180.0)),
        ("lognormal:240:120", LogNormal(240.0, 120.0)),
        ("const:3", Constant(3.0)),
        ("uniform:2:8", Uniform(2.0, 8.0)),
        ({"dist": "exponential", "mean": 60}, Exponential(60.0)),
        ({"dist": "lognormal", "mean": 240, "sd": 90}, LogNormal(240.0, 90.0)),
        ({"type": "uniform", "low": 1, "high": 2}, Uniform(1.0, 2.0)),
    ],
)
def test_parse_distribution(spec: object, expected: object) -> None:
    assert parse_distribution(spec, "handle") == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gamma:1", "unknown distribution"),
        ("exp", "needs 1 number"),
        ("exp:x", "bad distribution"),
        ({"dist": "lognormal", "mean": 10}, r"handle\.sd"),
        ({"dist": "exp", "mean": -1}, "handle: exponential mean"),
        (True, "handle"),
        ([1, 2], "handle"),
        (-3, "constant"),
    ],
)
def test_parse_distribution_errors(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_distribution(spec, "handle")
