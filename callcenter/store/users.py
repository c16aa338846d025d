"""Desktop users, their sessions and the audit trail, in PostgreSQL.

Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106);
hashing takes tens of milliseconds of CPU on purpose, so it runs in a thread.
A session token is shown once to the browser; the table keeps its SHA-256.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callcenter.callpath.site import Site
from callcenter.cti.access import Principal, Role, new_token, token_digest
from callcenter.errors import ConfigError, NotAuthenticated, StoreError

_hasher = PasswordHasher()
# Verified against when the login does not exist, so that a wrong login and a
# wrong password take the same time (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("not a password")


class UserStore:
    def __init__(self, pool: asyncpg.Pool, *, session_ttl: timedelta = timedelta(hours=12)) -> None:
        self._pool = pool
        self.session_ttl = session_ttl

    async def add_user(
        self,
        login: str,
        role: Role,
        password: str,
        *,
        site_id: str | None = None,
        language: str = "fr",
    ) -> None:
        """Create or replace a user (re-running a seed is harmless)."""
        if len(password) < 4:
            raise ConfigError(f"user {login}: password too short (at least 4 characters)")
        digest = await asyncio.to_thread(_hasher.hash, password)
        await self._execute(
            """INSERT INTO users (login, role, password_hash, agent_id, language)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (login) DO UPDATE SET role = $2, password_hash = $3,
                   agent_id = $4, language = $5, disabled = false""",
            login,
            role.value,
            digest,
            site_id,
            language,
        )

    async def login(self, login: str, password: str, now: datetime) -> tuple[str, Principal]:
        """Check the password; open a session. Returns (token, who)."""
        row = await self._fetchrow(
            "SELECT role, password_hash, agent_id, language, disabled FROM users WHERE login = $1",
            login,
        )
        stored = row["password_hash"] if row is not None else _DUMMY_HASH
        try:
            await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            raise NotAuthenticated("wrong login or password") from None
        if row is None or row["disabled"]:
            raise NotAuthenticated("wrong login or password")
        token = new_token()
        await self._execute(
            "INSERT INTO user_sessions (token_hash, login, expires_at) VALUES ($1, $2, $3)",
            token_digest(token),
            login,
            now + self.session_ttl,
        )
        return token, _principal(login, row)

    async def resolve(self, token: str, now: datetime) -> Principal:
        row = await self._fetchrow(
            """SELECT u.login, u.role, u.agent_id, u.language, u.disabled
               FROM user_sessions s JOIN users u USING (login)
               WHERE s.token_hash = $1 AND NOT s.revoked AND s.expires_at > $2""",
            token_digest(token),
            now,
        )
        if row is None or row["disabled"]:
            raise NotAuthenticated("invalid or expired session; log in again")
        return _principal(row["login"], row)

    async def logout(self, token: str) -> None:
        await self._execute(
            "UPDATE user_sessions SET revoked = true WHERE token_hash = $1", token_digest(token)
        )

    async def audit(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any]
    ) -> None:
        await self._execute(
            "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)",
            actor,
            action,
            target,
            json.dumps(detail),
        )

    async def audit_trail(self, limit: int = 100) -> list[dict[str, Any]]:
        try:
            rows = await self._pool.fetch(
                "SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                limit,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"audit read failed: {exc}") from exc
        return [
            {
                "at": r["at"].astimezone(UTC).isoformat(),
                "actor": r["actor"],
                "action": r["action"],
                "target": r["target"],
                "detail": json.loads(r["detail"]),
            }
            for r in rows
        ]

    async def _execute(self, query: str, *args: object) -> None:
        try:
            await self._pool.execute(query, *args)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"user store: {exc}") from exc

    async def _fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        try:
            row: asyncpg.Record | None = await self._pool.fetchrow(query, *args)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"user store: {exc}") from exc
        return row


def _principal(login: str, row: asyncpg.Record) -> Principal:
    return Principal(login, Role(row["role"]), row["agent_id"], row["language"])


async def seed_site_users(users: UserStore, site: Site, password: str) -> list[str]:
    """One user per agent and supervisor of the site (login = their id), and
    an ``admin``: for a sandbox or a first start. Returns the logins."""
    made: list[str] = []
    for agent_id in sorted(site.agents):
        languages = site.agents[agent_id].languages
        await users.add_user(
            agent_id, Role.AGENT, password, site_id=agent_id, language=languages[0]
        )
        made.append(agent_id)
    for supervisor_id in sorted(site.supervisors):
        await users.add_user(supervisor_id, Role.SUPERVISOR, password, site_id=supervisor_id)
        made.append(supervisor_id)
    await users.add_user("admin", Role.ADMIN, password)
    made.append("admin")
    return made
