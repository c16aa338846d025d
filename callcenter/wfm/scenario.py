"""Simulation scenarios: queues with interval forecasts, agent groups with shifts.

A scenario is built from a mapping (parsed TOML or YAML); every error names
the offending key. Times inside a day are seconds from the scenario start, or
``"HH:MM"`` strings read against ``start`` (default ``"00:00"``). Example
(TOML)::

    seed = 7
    start = "08:00"
    interval = 1800              # seconds per forecast interval
    target_time = 20             # service level threshold, seconds

    [[queues]]
    name = "sales"
    skill = "sales"
    calls = [120, 260, 420, 510]  # calls per interval
    handle = {dist = "lognormal", mean = 240, sd = 120}
    patience = "exp:180"
    wrapup = 15

    [[agents]]
    name = "sales team"
    count = 60
    skills = {sales = 5}
    shifts = [["08:00", "12:00"], ["13:00", "17:00"]]
    answer_delay = "uniform:2:6"
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from callcenter.errors import ConfigError
from callcenter.wfm.distributions import Constant, Distribution, parse_distribution

__all__ = [
    "AgentGroup",
    "QueueSpec",
    "Scenario",
    "parse_clock",
    "scenario_from_mapping",
    "scenario_from_text",
]


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    skill: str
    calls: tuple[float, ...]  # expected calls per interval
    handle: Distribution
    patience: Distribution | None = None  # None: callers never abandon
    wrapup: Distribution = field(default_factory=lambda: Constant(0.0))
    target_time: float = 20.0


@dataclass(frozen=True, slots=True)
class AgentGroup:
    name: str
    count: int
    skills: Mapping[str, int]  # skill -> level (1 = lowest)
    shifts: tuple[tuple[float, float], ...]  # (start, end) seconds; () = whole run
    answer_delay: Distribution = field(default_factory=lambda: Constant(0.0))
    no_answer: float = 0.0  # probability that an offer is not answered
    ring_timeout: float = 20.0  # seconds before an unanswered offer is given up


@dataclass(frozen=True, slots=True)
class Scenario:
    queues: tuple[QueueSpec, ...]
    agents: tuple[AgentGroup, ...]
    interval: float = 1800.0
    seed: int = 0
    start: str = "00:00"  # clock label of time 0, for display
    warmup: float = 0.0  # calls arriving before this are left out of the figures
    sample_step: float = 300.0  # resolution of the waiting-calls time series
    drain: float = 4 * 3600.0  # how long after the last arrival the run may go on

    @property
    def day_length(self) -> float:
        return max(len(q.calls) for q in self.queues) * self.interval

    @property
    def skills(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q.skill for q in self.queues))

    def __post_init__(self) -> None:
        if not self.queues:
            raise ConfigError("queues: at least one queue is required")
        if not self.agents:
            raise ConfigError("agents: at least one agent group is required")
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise ConfigError("queues: queue names must be unique")
        if not (self.interval > 0 and math.isfinite(self.interval)):
            raise ConfigError("interval: must be > 0 seconds")
        if not (self.sample_step > 0 and math.isfinite(self.sample_step)):
            raise ConfigError("sample_step: must be > 0 seconds")
        if self.warmup < 0 or not 0 <= self.drain < math.inf:
            raise ConfigError("warmup, drain: must be >= 0 seconds")
        for i, queue in enumerate(self.queues):
            if not any(queue.skill in group.skills for group in self.agents):
                raise ConfigError(f"queues[{i}].skill: no agent group has skill {queue.skill!r}")


def parse_clock(value: object, origin: float, where: str) -> float:
    """Seconds from the scenario start: a number, or ``"HH:MM"`` minus ``origin``."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: a time is required")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        hours, sep, minutes = value.strip().partition(":")
        if sep and hours.isdigit() and minutes.isdigit() and int(minutes) < 60:
            return (int(hours) * 60 + int(minutes)) * 60.0 - origin
    raise ConfigError(f"{where}: expected seconds or 'HH:MM', got {value!r}")


def _get(data: Mapping[str, Any], key: str, where: str, default: Any = ...) -> Any:
    if key in data:
        return data[key]
    if default is ...:
        raise ConfigError(f"{where}.{key}: required")
    return default


def _float(value: object, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: a number is required, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}: must be >= {minimum:g}, got {value!r}")
    return float(value)


def _queue(data: object, where: str, interval: float, target_time: float) -> QueueSpec:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a table is required")
    name = str(_get(data, "name", where))
    calls_raw = _get(data, "calls", where, None)
    if calls_raw is None:
        # a constant rate: calls_per_hour over `hours`
        per_hour = _float(_get(data, "calls_per_hour", where), f"{where}.calls_per_hour")
        hours = _float(_get(data, "hours", where), f"{where}.hours", 1e-9)
        count = max(1, math.ceil(hours * 3600.0 / interval - 1e-9))
        calls_raw = [per_hour * interval / 3600.0] * count
    if isinstance(calls_raw, str | bytes) or not isinstance(calls_raw, Sequence) or not calls_raw:
        raise ConfigError(f"{where}.calls: a non-empty list of calls per interval is required")
    calls = tuple(_float(c, f"{where}.calls[{j}]") for j, c in enumerate(calls_raw))
    patience_raw = _get(data, "patience", where, None)
    return QueueSpec(
        name=name,
        skill=str(_get(data, "skill", where, name)),
        calls=calls,
        handle=parse_distribution(_get(data, "handle", where), f"{where}.handle"),
        patience=None
        if patience_raw is None
        else parse_distribution(patience_raw, f"{where}.patience"),
        wrapup=parse_distribution(_get(data, "wrapup", where, 0.0), f"{where}.wrapup"),
        target_time=_float(_get(data, "target_time", where, target_time), f"{where}.target_time"),
    )


def _skills(raw: object, where: str) -> dict[str, int]:
    if isinstance(raw, str):
        return {raw: 1}
    if isinstance(raw, Mapping):
        out: dict[str, int] = {}
        for skill, level in raw.items():
            if isinstance(level, bool) or not isinstance(level, int) or level < 1:
                raise ConfigError(f"{where}.{skill}: skill level must be an integer >= 1")
            out[str(skill)] = level
        return out
    if isinstance(raw, Sequence) and raw:
        return {str(skill): 1 for skill in raw}
    raise ConfigError(f"{where}: a skill, a list of skills or a table skill = level is required")


def _agents(data: object, where: str, origin: float) -> AgentGroup:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a table is required")
    count = _get(data, "count", where)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"{where}.count: a non-negative integer is required")
    shifts: list[tuple[float, float]] = []
    raw_shifts = _get(data, "shifts", where, [])
    if not isinstance(raw_shifts, Sequence) or isinstance(raw_shifts, str):
        raise ConfigError(f"{where}.shifts: a list of [start, end] pairs is required")
    for j, shift in enumerate(raw_shifts):
        key = f"{where}.shifts[{j}]"
        if not isinstance(shift, Sequence) or isinstance(shift, str) or len(shift) != 2:
            raise ConfigError(f"{key}: a [start, end] pair is required")
        begin, end = parse_clock(shift[0], origin, key), parse_clock(shift[1], origin, key)
        if end <= begin:
            raise ConfigError(f"{key}: the shift must end after it starts")
        if shifts and begin < shifts[-1][1]:
            raise ConfigError(f"{key}: shifts must be in order and must not overlap")
        shifts.append((begin, end))
    no_answer = _float(_get(data, "no_answer", where, 0.0), f"{where}.no_answer")
    if no_answer >= 1.0:
        raise ConfigError(f"{where}.no_answer: must be < 1")
    return AgentGroup(
        name=str(_get(data, "name", where, where)),
        count=count,
        skills=_skills(_get(data, "skills", where), f"{where}.skills"),
        shifts=tuple(shifts),
        answer_delay=parse_distribution(
            _get(data, "answer_delay", where, 0.0), f"{where}.answer_delay"
        ),
        no_answer=no_answer,
        ring_timeout=_float(_get(data, "ring_timeout", where, 20.0), f"{where}.ring_timeout", 1e-9),
    )


def scenario_from_mapping(data: Mapping[str, Any]) -> Scenario:
    """A scenario from parsed TOML/YAML; see the module docstring."""
    if not isinstance(data, Mapping):
        raise ConfigError("scenario: a table is required at the top level")
    start = str(_get(data, "start", "scenario", "00:00"))
    origin = parse_clock(start, 0.0, "start")
    interval = _float(_get(data, "interval", "scenario", 1800.0), "interval", 1e-9)
    target_time = _float(_get(data, "target_time", "scenario", 20.0), "target_time")
    queues = _get(data, "queues", "scenario")
    agents = _get(data, "agents", "scenario")
    if not isinstance(queues, Sequence) or isinstance(queues, str):
        raise ConfigError("queues: a list of tables is required")
    if not isinstance(agents, Sequence) or isinstance(agents, str):
        raise ConfigError("agents: a list of tables is required")
    seed = _get(data, "seed", "scenario", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed: a non-negative integer is required")
    return Scenario(
        queues=tuple(
            _queue(q, f"queues[{i}]", interval, target_time) for i, q in enumerate(queues)
        ),
        agents=tuple(_agents(a, f"agents[{i}]", origin) for i, a in enumerate(agents)),
        interval=interval,
        seed=seed,
        start=start,
        warmup=_float(_get(data, "warmup", "scenario", 0.0), "warmup"),
        sample_step=_float(_get(data, "sample_step", "scenario", 300.0), "sample_step", 1e-9),
        drain=_float(_get(data, "drain", "scenario", 4 * 3600.0), "drain"),
    )


def scenario_from_text(text: str, fmt: str, source: str = "scenario") -> Scenario:
    """Parse TOML (``fmt="toml"``) or YAML (``fmt="yaml"``) text into a scenario."""
    data: object
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        elif fmt in ("yaml", "yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{source}: unknown scenario format {fmt!r} (toml or yaml)")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{source}: cannot parse {fmt}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a table is required at the top level")
    try:
        return scenario_from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
