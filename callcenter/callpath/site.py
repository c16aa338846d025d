"""The contact centre's own set-up: queues, agents, and dialled-number routes.

A YAML file (``site.yaml``; the packaged ``default_site.yaml`` for the local
sandbox) validated with pydantic; errors name the file and the key. This is
operator data, not daemon configuration: it changes when the centre changes
(a new queue, a new agent), the TOML file when the machines do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from callcenter.errors import ConfigError

DEFAULT_SITE = Path(__file__).with_name("default_site.yaml")

Name = str


class QueueSetup(BaseModel, extra="forbid"):
    skills: dict[str, int] = Field(default_factory=dict)
    """Required skills and the minimum level (1-10) an agent needs."""
    language: str = "fr"
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


class AgentSetup(BaseModel, extra="forbid"):
    name: str
    endpoint: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    skills: dict[str, int] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=lambda: ["fr"])
    team: str = ""
    extended: bool = False
    monthly_cap: int | None = None


class SupervisorSetup(BaseModel, extra="forbid"):
    name: str
    endpoint: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")


class RouteSetup(BaseModel, extra="forbid"):
    queue: Name
    priority: int | None = None
    language: str | None = None
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
        for dnis, route in self.routes.items():
            if route.queue not in self.queues:
                raise ValueError(
                    f"routes.{dnis}.queue: unknown queue {route.queue!r} "
                    f"(known: {', '.join(sorted(self.queues))})"
                )
        return self

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
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
