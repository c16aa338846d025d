"""Who may do what: roles, the policy table, session tokens. Pure.

Three roles. An **agent** acts only on their own state and calls; a
**supervisor** acts on any agent, coaches from their own phone and sees the
wallboard; an **admin** may do everything, including managing users. The
table below is the whole policy: an action missing from it is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from callcenter.errors import Forbidden


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Action(StrEnum):
    AGENT_OPERATE = "agent.operate"
    """Change an agent's state or act on their call (target: the agent id)."""
    SUPERVISE = "supervise"
    """See every agent, queue and live call (wallboard)."""
    COACH = "coach"
    """Listen / whisper / barge from a supervisor's phone (target: supervisor id)."""
    MESSAGE = "message"
    """Send an internal message to an agent."""
    MANAGE_USERS = "users.manage"


@dataclass(frozen=True, slots=True)
class Principal:
    login: str
    role: Role
    site_id: str | None
    """The agent id (agents) or supervisor id (supervisors) in the site file."""
    language: str = "fr"


# (role, action) -> which targets: "own" (target == site_id) or "any".
POLICY: dict[tuple[Role, Action], str] = {
    (Role.AGENT, Action.AGENT_OPERATE): "own",
    (Role.SUPERVISOR, Action.AGENT_OPERATE): "any",
    (Role.SUPERVISOR, Action.SUPERVISE): "any",
    (Role.SUPERVISOR, Action.COACH): "own",
    (Role.SUPERVISOR, Action.MESSAGE): "any",
    (Role.ADMIN, Action.AGENT_OPERATE): "any",
    (Role.ADMIN, Action.SUPERVISE): "any",
    (Role.ADMIN, Action.COACH): "any",
    (Role.ADMIN, Action.MESSAGE): "any",
    (Role.ADMIN, Action.MANAGE_USERS): "any",
}


def allowed(principal: Principal, action: Action, target: str | None = None) -> bool:
    scope = POLICY.get((principal.role, action))
    if scope == "any":
        return True
    return scope == "own" and target is not None and target == principal.site_id


def require(principal: Principal, action: Action, target: str | None = None) -> None:
    if not allowed(principal, action, target):
        what = f"{action.value} on {target}" if target else action.value
        raise Forbidden(f"{principal.login} ({principal.role.value}) may not {what}")


def acts_for_other(principal: Principal, target: str | None) -> bool:
    """A supervisor or admin acting on someone else: audited."""
    return principal.role is not Role.AGENT and target != principal.site_id


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the database keeps: a stolen table logs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()
