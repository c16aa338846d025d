"""The contact centre's own set-up: queues, agents, and dialled-number routes.

A YAML file (``site.yaml``; the packaged ``default_site.yaml`` for the local
sandbox) validated with pydantic; errors name the file and the key. This is
operator data, not daemon configuration: it changes when the centre changes
(a new queue, a new agent), the TOML file when the machines do.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, StringConstraints, ValidationError, model_validator

from callcenter.acd import AgentProfile, Policy, QueueRules, Relaxation
from callcenter.errors import ConfigError

DEFAULT_SITE = Path(__file__).with_name("default_site.yaml")

# Queue, agent and supervisor names travel in dialplan extensions (q<queue>,
# a<agent>), FastAGI URLs and channel variables: plain tokens only.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
# A language is the channel's language and its music-on-hold class, set with
# the queue in one MSet (no commas): a plain token too.
Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")]


class RelaxationSetup(BaseModel, extra="forbid"):
    """One step of a queue's relaxation over the wait (see docs/acd.md):
    from ``after`` seconds since the call entered (a callback or a transfer
    keeps its original time), the call also accepts what the step says.
    Steps accumulate."""

    after: float = Field(ge=0)
    min_level: int | None = Field(default=None, ge=1, le=10)
    """Every required level lowered to at most this (1: anyone with the skill)."""
    overflow_to: str | None = None
    """Another queue of the site: the call moves there (its skills, its SL
    threshold and wrap-up), keeping its place."""
    extended: bool = False
    """Extended (informal) agents may take it from now on."""

    @model_validator(mode="after")
    def _does_something(self) -> RelaxationSetup:
        if self.min_level is None and self.overflow_to is None and not self.extended:
            raise ValueError("a step needs min_level, overflow_to or extended: true")
        return self

    def rule(self) -> Relaxation:
        return Relaxation(self.after, self.min_level, self.overflow_to, self.extended)


class QueueSetup(BaseModel, extra="forbid"):
    skills: dict[str, int] = Field(default_factory=dict)
    """Required skills and the minimum level (1-10) an agent needs; also
    what a call overflowing into this queue needs."""
    policy: Policy = Policy.LONGEST_IDLE
    """Which eligible agent a new call goes to (docs/acd.md)."""
    relaxations: list[RelaxationSetup] = Field(default_factory=list)
    """What a call accepts as it waits, in increasing ``after``."""
    extended_skills: list[str] = Field(default_factory=list)
    """Calls needing any of these skills may go to extended agents at once."""
    default_handle_time: float = Field(default=180.0, gt=0)
    """Seconds: the expected wait's handle time until the queue has its own."""
    language: Language = "fr"
    priority: int = 0
    ring_timeout: float = Field(default=15.0, gt=0)
    wrapup: float = Field(default=10.0, ge=0)
    sl_threshold: float = Field(default=20.0, gt=0)
    sl_target: float = Field(default=0.8, gt=0, le=1)
    announce_every: float = Field(default=30.0, gt=0)
    """Seconds between announcements of position and expected wait."""
    first_announce_after: float = Field(default=5.0, ge=0)
    callback: bool = True
    callback_attempts: int = Field(default=3, ge=1)
    callback_retry_delay: float = Field(default=300.0, ge=0)
    callback_dial_timeout: float = Field(default=30.0, gt=0)
    record: bool = True
    separate_legs: bool = False
    survey: str | None = None
    """IVR script run after the agent hangs up (post-call CSAT)."""

    @model_validator(mode="after")
    def _sorted_steps(self) -> QueueSetup:
        for i, (before, step) in enumerate(pairwise(self.relaxations)):
            if step.after < before.after:
                raise ValueError(
                    f"relaxations.{i + 1}.after: {step.after:g} s comes before the previous "
                    f"step ({before.after:g} s); list the steps in increasing 'after'"
                )
        return self

    def rules(self, name: str) -> QueueRules:
        """The ACD's rules for this queue. ``ring_timeout`` stays with the call
        path (it hangs up the agent's phone and reports the RONA)."""
        return QueueRules(
            name,
            sl_threshold=self.sl_threshold,
            wrapup=self.wrapup,
            policy=self.policy,
            relaxations=tuple(step.rule() for step in self.relaxations),
            default_handle_time=self.default_handle_time,
            sl_target=self.sl_target,
            skills=dict(self.skills),
            extended_skills=frozenset(self.extended_skills),
        )


class AgentSetup(BaseModel, extra="forbid"):
    name: str
    endpoint: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    skills: dict[str, int] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=lambda: ["fr"])
    team: str = ""
    extended: bool = False
    """An informal agent (branch, shop, expert): offered calls only when a
    queue overflows to extended agents (a relaxation step with
    ``extended: true``, or ``extended_skills``), after any regular agent."""
    monthly_cap: int | None = Field(default=None, ge=0)
    """Extended agents: most interactions per month (none: no cap)."""

    @model_validator(mode="after")
    def _cap_for_extended(self) -> AgentSetup:
        if self.monthly_cap is not None and not self.extended:
            raise ValueError("monthly_cap applies to extended agents only (set extended: true)")
        return self

    def profile(self, agent_id: str, month_handled: int = 0) -> AgentProfile:
        """The ACD's profile of this agent; ``month_handled``: interactions
        already taken this month (counts towards ``monthly_cap``)."""
        return AgentProfile(
            agent_id,
            dict(self.skills),
            frozenset(self.languages),
            self.team,
            self.extended,
            monthly_cap=self.monthly_cap,
            month_handled=month_handled,
        )


class SupervisorSetup(BaseModel, extra="forbid"):
    name: str
    endpoint: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")


class RouteSetup(BaseModel, extra="forbid"):
    queue: Name
    priority: int | None = None
    language: Language | None = None
    ivr: str | None = None
    """IVR script (ivr_scripts/<name>.yaml) the caller meets first; its
    outcome may choose another queue, skills, priority and language."""


class Site(BaseModel, extra="forbid"):
    queues: dict[Name, QueueSetup]
    agents: dict[Name, AgentSetup] = Field(default_factory=dict)
    supervisors: dict[Name, SupervisorSetup] = Field(default_factory=dict)
    routes: dict[str, RouteSetup] = Field(default_factory=dict)
    """Dialled number (DNIS) -> queue; ``default`` catches the rest."""
    dispositions: list[str] = Field(
        default_factory=lambda: ["resolved", "follow-up", "sale", "no-sale", "wrong-number"]
    )
    pause_reasons: list[str] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting", "no answer"]
    )

    @model_validator(mode="after")
    def _references(self) -> Site:
        known = f"(known: {', '.join(sorted(self.queues))})"
        for dnis, route in self.routes.items():
            if route.queue not in self.queues:
                raise ValueError(f"routes.{dnis}.queue: unknown queue {route.queue!r} {known}")
        for name, queue in self.queues.items():
            for i, step in enumerate(queue.relaxations):
                where = f"queues.{name}.relaxations.{i}.overflow_to"
                if step.overflow_to == name:
                    raise ValueError(f"{where}: a queue cannot overflow to itself")
                if step.overflow_to is not None and step.overflow_to not in self.queues:
                    raise ValueError(f"{where}: unknown queue {step.overflow_to!r} {known}")
        return self

    def queue_rules(self) -> list[QueueRules]:
        """Every queue's ACD rules (``Engine(site.queue_rules())``)."""
        return [queue.rules(name) for name, queue in self.queues.items()]

    def scripts(self) -> set[str]:
        """Every IVR script the site names (routes and surveys)."""
        named = {r.ivr for r in self.routes.values()} | {q.survey for q in self.queues.values()}
        return {name for name in named if name}

    def route_for(self, dnis: str) -> tuple[str, RouteSetup]:
        """The queue for a dialled number; raises ConfigError when none fits."""
        route = self.routes.get(dnis) or self.routes.get("default")
        if route is None:
            raise ConfigError(f"no route for dialled number {dnis!r} and no 'default' route")
        return route.queue, route

    def agent_by_endpoint(self, endpoint: str) -> tuple[str, AgentSetup] | None:
        for agent_id, agent in self.agents.items():
            if agent.endpoint == endpoint:
                return agent_id, agent
        return None


def load_site(path: Path | None = None) -> Site:
    source = path or DEFAULT_SITE
    try:
        data: Any = yaml.safe_load(source.read_text())
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the site file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
