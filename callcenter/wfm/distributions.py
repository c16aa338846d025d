"""Random durations for the simulator: exponential, lognormal, constant, uniform.

Draws come from a :class:`RandomStream`, a seeded numpy generator that hands
out pre-drawn standard variates in blocks (one numpy call per few thousand
draws instead of one per call). Every stream is derived from the scenario seed
with ``numpy.random.SeedSequence``, so runs are reproducible and two scenarios
that differ only in staffing see the same calls (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from callcenter.errors import ConfigError

__all__ = [
    "Constant",
    "Distribution",
    "Exponential",
    "LogNormal",
    "PoissonArrivals",
    "RandomStream",
    "Uniform",
    "parse_distribution",
]

_BLOCK = 4096


class RandomStream:
    """Standard exponential, normal and uniform variates from one seed."""

    __slots__ = ("_exp", "_exp_i", "_norm", "_norm_i", "_rng", "_unif", "_unif_i")

    def __init__(self, seed: int | np.random.SeedSequence) -> None:
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._exp: list[float] = []
        self._norm: list[float] = []
        self._unif: list[float] = []
        self._exp_i = self._norm_i = self._unif_i = 0

    def exponential(self) -> float:
        """One Exp(1) variate."""
        if self._exp_i >= len(self._exp):
            self._exp = self._rng.standard_exponential(_BLOCK).tolist()
            self._exp_i = 0
        value = self._exp[self._exp_i]
        self._exp_i += 1
        return value

    def normal(self) -> float:
        """One N(0, 1) variate."""
        if self._norm_i >= len(self._norm):
            self._norm = self._rng.standard_normal(_BLOCK).tolist()
            self._norm_i = 0
        value = self._norm[self._norm_i]
        self._norm_i += 1
        return value

    def uniform(self) -> float:
        """One U[0, 1) variate."""
        if self._unif_i >= len(self._unif):
            self._unif = self._rng.random(_BLOCK).tolist()
            self._unif_i = 0
        value = self._unif[self._unif_i]
        self._unif_i += 1
        return value


class Distribution(Protocol):
    """A non-negative duration distribution, in seconds."""

    @property
    def mean(self) -> float: ...

    def sample(self, stream: RandomStream) -> float: ...


@dataclass(frozen=True, slots=True)
class Constant:
    value: float

    def __post_init__(self) -> None:
        if not (self.value >= 0 and math.isfinite(self.value)):
            raise ConfigError(f"constant duration must be >= 0, got {self.value!r}")

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, stream: RandomStream) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Exponential:
    mean_value: float

    def __post_init__(self) -> None:
        if not (self.mean_value > 0 and math.isfinite(self.mean_value)):
            raise ConfigError(f"exponential mean must be > 0, got {self.mean_value!r}")

    @property
    def mean(self) -> float:
        return self.mean_value

    def sample(self, stream: RandomStream) -> float:
        return self.mean_value * stream.exponential()


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Lognormal given by its own mean and standard deviation (not mu/sigma)."""

    mean_value: float
    sd: float

    def __post_init__(self) -> None:
        if not (self.mean_value > 0 and math.isfinite(self.mean_value)):
            raise ConfigError(f"lognormal mean must be > 0, got {self.mean_value!r}")
        if not (self.sd > 0 and math.isfinite(self.sd)):
            raise ConfigError(f"lognormal sd must be > 0, got {self.sd!r}")

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def sigma(self) -> float:
        return math.sqrt(math.log1p((self.sd / self.mean_value) ** 2))

    @property
    def mu(self) -> float:
        return math.log(self.mean_value) - self.sigma**2 / 2.0

    def sample(self, stream: RandomStream) -> float:
        return math.exp(self.mu + self.sigma * stream.normal())


@dataclass(frozen=True, slots=True)
class Uniform:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 <= self.low <= self.high and math.isfinite(self.high)):
            raise ConfigError(f"uniform needs 0 <= low <= high, got {self.low!r}, {self.high!r}")

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2.0

    def sample(self, stream: RandomStream) -> float:
        return self.low + (self.high - self.low) * stream.uniform()


def _number(spec: Mapping[str, object], key: str, where: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}.{key}: a number is required")
    return float(value)


def parse_distribution(spec: object, where: str) -> Distribution:
    """A distribution from a scenario value.

    Accepted: a number (constant), ``"exp:180"``, ``"lognormal:180:90"``,
    ``"const:5"``, ``"uniform:2:8"``, or a table such as
    ``{dist = "lognormal", mean = 180, sd = 90}``. ``where`` names the key in
    error messages.
    """
    if isinstance(spec, bool):
        raise ConfigError(f"{where}: a duration or distribution is required")
    if isinstance(spec, int | float):
        return Constant(float(spec))
    if isinstance(spec, str):
        kind, *args = spec.split(":")
        try:
            numbers = [float(arg) for arg in args]
        except ValueError as exc:
            raise ConfigError(f"{where}: bad distribution {spec!r}") from exc
        table: dict[str, object] = {"dist": kind}
        names = {"uniform": ("low", "high"), "lognormal": ("mean", "sd")}.get(kind, ("mean",))
        if kind in ("const", "constant"):
            names = ("value",)
        if len(numbers) != len(names):
            raise ConfigError(f"{where}: {kind} needs {len(names)} number(s): {spec!r}")
        table.update(zip(names, numbers, strict=True))
        spec = table
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: a duration or distribution is required")
    kind = spec.get("dist", spec.get("type"))
    try:
        if kind in ("exp", "exponential"):
            return Exponential(_number(spec, "mean", where))
        if kind == "lognormal":
            return LogNormal(_number(spec, "mean", where), _number(spec, "sd", where))
        if kind in ("const", "constant"):
            return Constant(_number(spec, "value", where))
        if kind == "uniform":
            return Uniform(_number(spec, "low", where), _number(spec, "high", where))
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from exc
    raise ConfigError(
        f"{where}.dist: unknown distribution {kind!r} (exp, lognormal, const, uniform)"
    )


class PoissonArrivals:
    """A Poisson process whose rate is constant within each forecast interval.

    ``calls[k]`` is the expected number of calls in ``[k * interval, (k + 1) *
    interval)``. Exact (no thinning): an Exp(1) budget is spent against the
    integrated rate, crossing interval edges as needed.
    """

    __slots__ = ("_interval", "_rates", "_stream", "end")

    def __init__(self, calls: Sequence[float], interval: float, stream: RandomStream) -> None:
        if not interval > 0:
            raise ConfigError(f"interval must be > 0 seconds, got {interval!r}")
        self._rates = [c / interval for c in calls]
        self._interval = interval
        self._stream = stream
        self.end = len(calls) * interval

    def next_after(self, t: float) -> float:
        """The next arrival time after ``t``; ``math.inf`` when the profile is over."""
        budget = self._stream.exponential()
        interval, rates = self._interval, self._rates
        while True:
            index = int(t / interval)
            if index >= len(rates):
                return math.inf
            edge = (index + 1) * interval
            rate = rates[index]
            if rate > 0:
                needed = budget / rate
                if t + needed < edge:
                    return t + needed
                budget -= (edge - t) * rate
            t = edge
