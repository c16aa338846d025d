"""Erlang B, Erlang C (M/M/N) and Erlang A (M/M/N+M) performance measures.

Units: rates are per second, times are in seconds. ``traffic`` (offered load,
in Erlangs) is ``arrival_rate * aht``. Formulas and sources: docs/wfm.md.

Everything is computed in a numerically stable way for large N:

* Erlang B by its recursion, carried in log space as
  ``log(1/B(k)) = log(1 + (k/a) / B(k-1))``: no factorials, no overflow;
* Erlang C from Erlang B: ``1/C = rho + (1 - rho)/B``;
* Erlang A from the birth-death chain of Garnett, Mandelbaum & Reiman (2002)
  written relative to the probability of state N; the queue part is the series
  ``A(x, y) = sum_j y^j / prod_{i<=j}(x + i)`` (Mandelbaum & Zeltyn's
  ``A(x, y) = x e^y y^-x gamma(x, y)``), summed in log space with numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callcenter.errors import ConfigError

__all__ = [
    "ErlangAResult",
    "ErlangCResult",
    "erlang_a",
    "erlang_a_required_agents",
    "erlang_b",
    "erlang_c",
    "erlang_c_asa",
    "erlang_c_metrics",
    "erlang_c_required_agents",
    "erlang_c_service_level",
]

_MAX_AGENTS = 1_000_000
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(64)


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


def _check_agents(agents: int) -> None:
    if agents < 1:
        raise ConfigError(f"agents must be >= 1, got {agents!r}")


def _check_target_time(target_time: float) -> None:
    if not (target_time >= 0 and math.isfinite(target_time)):
        raise ConfigError(f"target_time must be >= 0 seconds, got {target_time!r}")


def _log_inv_erlang_b(agents: int, traffic: float) -> float:
    """``log(1 / B(agents, traffic))`` by the Erlang B recursion in log space."""
    log_inv = 0.0  # B(0) = 1
    log_a = math.log(traffic)
    for k in range(1, agents + 1):
        z = math.log(k) - log_a + log_inv
        # log(1 + e^z), without overflow
        log_inv = z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))
    return log_inv


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of M/M/N/N (Erlang B) for ``traffic`` Erlangs."""
    if agents < 0:
        raise ConfigError(f"agents must be >= 0, got {agents!r}")
    if traffic == 0:
        return 0.0 if agents > 0 else 1.0
    _check_positive("traffic", traffic)
    return math.exp(-_log_inv_erlang_b(agents, traffic))


def _erlang_c_from_log_inv_b(agents: int, traffic: float, log_inv_b: float) -> float:
    rho = traffic / agents
    if rho >= 1.0:
        return 1.0
    # 1/C = rho + (1 - rho)/B
    if log_inv_b > 700.0:
        return 0.0
    return 1.0 / (rho + (1.0 - rho) * math.exp(log_inv_b))


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a call waits (Erlang C); 1.0 when ``traffic >= agents``."""
    _check_agents(agents)
    if traffic == 0:
        return 0.0
    _check_positive("traffic", traffic)
    return _erlang_c_from_log_inv_b(agents, traffic, _log_inv_erlang_b(agents, traffic))


def erlang_c_asa(agents: int, arrival_rate: float, aht: float) -> float:
    """Average speed of answer (mean wait of all calls) of M/M/N; inf if unstable."""
    _check_positive("aht", aht)
    traffic = arrival_rate * aht
    if traffic >= agents:
        return math.inf
    return erlang_c(agents, traffic) * aht / (agents - traffic)


def erlang_c_service_level(
    agents: int, arrival_rate: float, aht: float, target_time: float
) -> float:
    """P(wait <= target_time) of M/M/N: ``1 - C exp(-(N - a) T / AHT)``."""
    _check_positive("aht", aht)
    _check_target_time(target_time)
    traffic = arrival_rate * aht
    if traffic >= agents:
        return 0.0
    c = erlang_c(agents, traffic)
    return 1.0 - c * math.exp(-(agents - traffic) * target_time / aht)


@dataclass(frozen=True, slots=True)
class ErlangCResult:
    """Steady-state figures of one M/M/N queue."""

    agents: int
    arrival_rate: float  # calls per second
    aht: float  # seconds
    traffic: float  # Erlangs
    p_wait: float
    asa: float  # seconds, over all calls (inf if traffic >= agents)
    target_time: float  # seconds
    service_level: float  # P(wait <= target_time)
    occupancy: float  # traffic / agents, capped at 1


def _c_result(
    agents: int, arrival_rate: float, aht: float, target_time: float, log_inv_b: float
) -> ErlangCResult:
    traffic = arrival_rate * aht
    c = 0.0 if traffic == 0 else _erlang_c_from_log_inv_b(agents, traffic, log_inv_b)
    if traffic >= agents:
        asa, sl = math.inf, 0.0
    else:
        asa = c * aht / (agents - traffic)
        sl = 1.0 - c * math.exp(-(agents - traffic) * target_time / aht)
    return ErlangCResult(
        agents=agents,
        arrival_rate=arrival_rate,
        aht=aht,
        traffic=traffic,
        p_wait=c,
        asa=asa,
        target_time=target_time,
        service_level=sl,
        occupancy=min(1.0, traffic / agents),
    )


def erlang_c_metrics(
    agents: int, arrival_rate: float, aht: float, target_time: float = 20.0
) -> ErlangCResult:
    """All Erlang C figures for ``agents`` serving ``arrival_rate`` calls/s of ``aht`` s."""
    _check_agents(agents)
    _check_positive("aht", aht)
    _check_target_time(target_time)
    if arrival_rate < 0 or not math.isfinite(arrival_rate):
        raise ConfigError(f"arrival_rate must be >= 0, got {arrival_rate!r}")
    traffic = arrival_rate * aht
    log_inv_b = _log_inv_erlang_b(agents, traffic) if traffic > 0 else math.inf
    return _c_result(agents, arrival_rate, aht, target_time, log_inv_b)


def erlang_c_required_agents(
    arrival_rate: float,
    aht: float,
    *,
    target_sl: float | None = 0.8,
    target_time: float = 20.0,
    target_asa: float | None = None,
    max_occupancy: float | None = None,
) -> ErlangCResult:
    """The fewest agents meeting every given target, with their Erlang C figures.

    ``target_sl`` is the wanted P(wait <= target_time) (e.g. 0.8 for 80/20);
    ``target_asa`` a maximum mean wait in seconds; ``max_occupancy`` a maximum
    traffic/agents ratio. Targets set to None are ignored; with no traffic the
    answer is one agent (a staffed line) unless every target is None.
    """
    _check_positive("aht", aht)
    _check_target_time(target_time)
    if arrival_rate < 0 or not math.isfinite(arrival_rate):
        raise ConfigError(f"arrival_rate must be >= 0, got {arrival_rate!r}")
    if target_sl is not None and not 0.0 <= target_sl < 1.0:
        raise ConfigError(f"target_sl must be in [0, 1), got {target_sl!r}")
    if target_asa is not None and not target_asa > 0:
        raise ConfigError(f"target_asa must be > 0 seconds, got {target_asa!r}")
    if max_occupancy is not None and not 0.0 < max_occupancy <= 1.0:
        raise ConfigError(f"max_occupancy must be in (0, 1], got {max_occupancy!r}")
    traffic = arrival_rate * aht
    if traffic == 0:
        return erlang_c_metrics(1, arrival_rate, aht, target_time)
    log_a = math.log(traffic)
    log_inv_b = 0.0
    for agents in range(1, _MAX_AGENTS + 1):
        z = math.log(agents) - log_a + log_inv_b
        log_inv_b = z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))
        if agents <= traffic:
            continue
        result = _c_result(agents, arrival_rate, aht, target_time, log_inv_b)
        if target_sl is not None and result.service_level < target_sl:
            continue
        if target_asa is not None and result.asa > target_asa:
            continue
        if max_occupancy is not None and result.occupancy > max_occupancy:
            continue
        return result
    raise ConfigError(f"no staffing up to {_MAX_AGENTS} agents meets the targets")


# --------------------------------------------------------------------- Erlang A


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """Steady-state figures of one M/M/N+M queue (exponential patience).

    Probabilities are over all arriving calls. ``service_level`` counts a call
    as good when it is answered within ``target_time``; calls that abandon
    count against it. ``service_level_excl_short_abandons`` removes the calls
    that abandoned within ``target_time`` from the denominator instead.
    """

    agents: int
    arrival_rate: float
    aht: float
    patience: float  # mean patience, seconds
    traffic: float
    p_wait: float
    p_abandon: float
    asa: float  # mean wait of answered calls
    mean_wait: float  # mean wait of all calls (answered or abandoned)
    target_time: float
    service_level: float  # P(answered and wait <= T)
    p_abandon_within: float  # P(abandoned and wait <= T)
    service_level_excl_short_abandons: float
    occupancy: float  # carried load / agents = traffic * (1 - p_abandon) / N


def _logsumexp(values: npt.NDArray[np.float64]) -> float:
    top = float(np.max(values))
    if not math.isfinite(top):
        return top
    return top + math.log(float(np.sum(np.exp(values - top))))


def _queue_log_terms(x: float, y: float) -> npt.NDArray[np.float64]:
    """``log(y^j / prod_{i=1..j}(x + i))`` for j = 0..J, up to a negligible tail."""
    peak = max(0.0, y - x)
    length = int(peak + 12.0 * math.sqrt(y + 1.0) + 64.0)
    while True:
        j = np.arange(1, length + 1, dtype=np.float64)
        logs = np.empty(length + 1, dtype=np.float64)
        logs[0] = 0.0
        np.cumsum(math.log(y) - np.log(x + j), out=logs[1:])
        if logs[-1] < float(np.max(logs)) - 50.0:
            return logs
        length *= 2


def erlang_a(
    agents: int,
    arrival_rate: float,
    aht: float,
    patience: float,
    target_time: float = 20.0,
) -> ErlangAResult:
    """Erlang A figures (Garnett, Mandelbaum & Reiman 2002; Mandelbaum & Zeltyn).

    ``patience`` is the mean of the exponential patience; ``math.inf`` gives
    Erlang C (if stable).
    """
    _check_agents(agents)
    _check_positive("aht", aht)
    _check_target_time(target_time)
    if arrival_rate < 0 or not math.isfinite(arrival_rate):
        raise ConfigError(f"arrival_rate must be >= 0, got {arrival_rate!r}")
    if not patience > 0:
        raise ConfigError(f"patience must be > 0 seconds, got {patience!r}")
    traffic = arrival_rate * aht
    if math.isinf(patience) or arrival_rate == 0:
        c = erlang_c_metrics(agents, arrival_rate, aht, target_time)
        return ErlangAResult(
            agents=agents,
            arrival_rate=arrival_rate,
            aht=aht,
            patience=patience,
            traffic=traffic,
            p_wait=c.p_wait,
            p_abandon=0.0,
            asa=c.asa,
            mean_wait=c.asa,
            target_time=target_time,
            service_level=c.service_level,
            p_abandon_within=0.0,
            service_level_excl_short_abandons=c.service_level,
            occupancy=c.occupancy,
        )
    lam, mu, theta = arrival_rate, 1.0 / aht, 1.0 / patience
    n_mu = agents * mu
    x, y = n_mu / theta, lam / theta
    logs = _queue_log_terms(x, y)
    log_big_a = _logsumexp(logs)  # log A(x, y)
    # sum_{k<N} pi_k / pi_N = 1/B - 1
    log_inv_b = _log_inv_erlang_b(agents, traffic)
    log_r = log_inv_b + math.log(-math.expm1(-log_inv_b)) if log_inv_b > 0 else -math.inf
    p_wait = 1.0 / (1.0 + math.exp(min(700.0, log_r - log_big_a)))
    rho = y / x
    p_ab_given_wait = max(0.0, 1.0 - 1.0 / rho + math.exp(-log_big_a) / rho)
    p_abandon = p_wait * p_ab_given_wait
    mean_wait = p_abandon / theta
    # Mean wait of answered calls. An arrival finding j in queue is answered
    # with probability N mu / (N mu + (j + 1) theta), after a mean time
    # sum_{k=0..j} 1 / (N mu + (k + 1) theta) (tagged-customer death chain).
    j = np.arange(logs.size, dtype=np.float64)
    weights = np.exp(logs - log_big_a)  # P(j ahead | wait)
    rates = n_mu + (j + 1.0) * theta
    answered = n_mu / rates
    hold = np.cumsum(1.0 / rates)
    p_answered = 1.0 - p_abandon
    wait_answered = p_wait * float(np.sum(weights * answered * hold))
    asa = wait_answered / p_answered if p_answered > 0 else math.inf

    # P(V > t) = P(wait) e^{-N mu t} e^{y(1 - e^{-theta t})} A(x, y e^{-theta t}) / A(x, y)
    def p_offered_wait_exceeds(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        shrink = np.exp(-theta * t)
        log_a_t = np.array([_logsumexp(logs - j * theta * float(s)) for s in t], dtype=np.float64)
        log_p = -n_mu * t + y * (1.0 - shrink) + log_a_t - log_big_a
        return p_wait * np.exp(log_p)

    if target_time > 0:
        half = target_time / 2.0
        nodes = half * (_GAUSS_NODES + 1.0)
        integrand = theta * np.exp(-theta * nodes) * p_offered_wait_exceeds(nodes)
        p_abandon_within = float(half * np.sum(_GAUSS_WEIGHTS * integrand))
    else:
        p_abandon_within = 0.0
    p_wait_beyond = float(p_offered_wait_exceeds(np.array([target_time]))[0]) * math.exp(
        -theta * target_time
    )
    service_level = min(1.0, max(0.0, 1.0 - p_wait_beyond - p_abandon_within))
    sl_excl = service_level / (1.0 - p_abandon_within) if p_abandon_within < 1.0 else 0.0
    return ErlangAResult(
        agents=agents,
        arrival_rate=arrival_rate,
        aht=aht,
        patience=patience,
        traffic=traffic,
        p_wait=p_wait,
        p_abandon=p_abandon,
        asa=asa,
        mean_wait=mean_wait,
        target_time=target_time,
        service_level=service_level,
        p_abandon_within=p_abandon_within,
        service_level_excl_short_abandons=min(1.0, sl_excl),
        occupancy=min(1.0, traffic * (1.0 - p_abandon) / agents),
    )


def erlang_a_required_agents(
    arrival_rate: float,
    aht: float,
    patience: float,
    *,
    target_sl: float | None = 0.8,
    target_time: float = 20.0,
    target_asa: float | None = None,
    max_abandon: float | None = None,
    max_occupancy: float | None = None,
) -> ErlangAResult:
    """The fewest agents meeting every given target under Erlang A.

    ``max_abandon`` is a maximum abandonment probability (e.g. 0.05). The
    figures improve monotonically with N, so the search walks up from 1.
    """
    if target_sl is not None and not 0.0 <= target_sl < 1.0:
        raise ConfigError(f"target_sl must be in [0, 1), got {target_sl!r}")
    if max_abandon is not None and not 0.0 < max_abandon <= 1.0:
        raise ConfigError(f"max_abandon must be in (0, 1], got {max_abandon!r}")
    if max_occupancy is not None and not 0.0 < max_occupancy <= 1.0:
        raise ConfigError(f"max_occupancy must be in (0, 1], got {max_occupancy!r}")
    if target_asa is not None and not target_asa > 0:
        raise ConfigError(f"target_asa must be > 0 seconds, got {target_asa!r}")
    _check_positive("aht", aht)
    # Erlang C staffing is an upper bound when it exists; start well below it.
    start = max(1, int(arrival_rate * aht * 0.5))
    for agents in range(start, _MAX_AGENTS + 1):
        result = erlang_a(agents, arrival_rate, aht, patience, target_time)
        if target_sl is not None and result.service_level < target_sl:
            continue
        if target_asa is not None and result.asa > target_asa:
            continue
        if max_abandon is not None and result.p_abandon > max_abandon:
            continue
        if max_occupancy is not None and result.occupancy > max_occupancy:
            continue
        if agents > 1 and agents == start:
            # the start guess already meets the targets: walk down to the minimum
            while agents > 1:
                lower = erlang_a(agents - 1, arrival_rate, aht, patience, target_time)
                if (
                    (target_sl is not None and lower.service_level < target_sl)
                    or (target_asa is not None and lower.asa > target_asa)
                    or (max_abandon is not None and lower.p_abandon > max_abandon)
                    or (max_occupancy is not None and lower.occupancy > max_occupancy)
                ):
                    break
                agents, result = agents - 1, lower
        return result
    raise ConfigError(f"no staffing up to {_MAX_AGENTS} agents meets the targets")
