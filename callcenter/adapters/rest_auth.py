"""REST authentication: log in, log out, who am I, and the middleware that
puts the caller's :class:`Principal` on every ``/api`` request.

    POST /api/auth/login    {"login": "a01", "password": "..."}
                            -> {"token", "login", "role", "agent", "language", "expires_at"}
    POST /api/auth/logout   (Bearer token) the token stops working at once
    GET  /api/auth/me       (Bearer token) who the token belongs to

Every other ``/api`` route needs ``Authorization: Bearer <token>``: 401
without a valid one, 403 when the role or the target forbids the action
(see :mod:`callcenter.cti.access`). With ``http.auth = off`` (loopback only,
for a lab or a test) every request acts as a local admin.

While PostgreSQL cannot be reached, sessions already open keep working and
a user who logged in since the daemon started may log in again (the user
store answers from memory and writes back later, see
:mod:`callcenter.store.users`); any other token or login gets 503
"authentication unavailable, try again", never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from callcenter.cti.access import Action, Principal, Role, require
from callcenter.errors import Forbidden, NotAuthenticated, StoreError
from callcenter.store.users import UserStore

__all__ = ["LOCAL_ADMIN", "auth_middleware", "auth_routes", "authorize", "principal_of"]

LOCAL_ADMIN = Principal("local", Role.ADMIN, None)
PRINCIPAL = web.RequestKey("principal", Principal)
_LOGIN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_OPEN = ("/api/auth/login", "/api/openapi.json")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        502: web.HTTPBadGateway,
        503: web.HTTPServiceUnavailable,
    }
    return kinds[status](text=json.dumps({"error": message}), content_type="application/json")


MAX_BODY = 4096
"""Bytes: every REST body is a small JSON object."""


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} when empty); 413/400 when it is not one."""
    if request.content_length and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise json_error(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(400, "body must be a JSON object")
    return data


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise json_error(401, "missing 'Authorization: Bearer <token>' header")
    return token.strip()


UsersProvider = Callable[[], UserStore | None]
"""The user store once the database is up (None before, or with auth off)."""


def auth_middleware(users_of: UsersProvider, *, required: bool) -> Middleware:
    """``required`` False: authentication off (loopback labs and tests only)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and request.path not in _OPEN:
            users = users_of()
            if not required:
                request[PRINCIPAL] = LOCAL_ADMIN
            elif users is None:
                raise json_error(503, "starting up, try again")
            else:
                try:
                    request[PRINCIPAL] = await users.resolve(bearer(request), _now())
                except NotAuthenticated as exc:
                    raise json_error(401, str(exc)) from None
                except StoreError:
                    raise json_error(503, "authentication unavailable, try again") from None
        try:
            return await handler(request)
        except Forbidden as exc:
            raise json_error(403, str(exc)) from None

    return middleware


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def authorize(request: web.Request, action: Action, target: str | None = None) -> Principal:
    principal = principal_of(request)
    require(principal, action, target)
    return principal


def auth_routes(users_of: UsersProvider) -> list[web.RouteDef]:
    async def login(request: web.Request) -> web.Response:
        users = users_of()
        if users is None:
            raise json_error(404, "authentication is off on this daemon")
        data = await json_body(request)
        name, password = data.get("login"), data.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise json_error(400, "'login' and 'password' must be strings")
        # Logins are [A-Za-z0-9_.-]{1,64} (the users table checks it too): a
        # NUL or a lone surrogate never reaches the database driver.
        if not _LOGIN.fullmatch(name) or len(password) > 256 or "\x00" in password:
            raise json_error(401, "wrong login or password")
        now = _now()
        try:
            token, who = await users.login(name, password, now)
        except NotAuthenticated as exc:
            raise json_error(401, str(exc)) from None
        except StoreError:
            raise json_error(503, "authentication unavailable, try again") from None
        expires = now + users.session_ttl
        return web.json_response(
            {
                "token": token,
                "login": who.login,
                "role": who.role.value,
                "agent": who.site_id,
                "language": who.language,
                "expires_at": expires.isoformat(),
            }
        )

    async def logout(request: web.Request) -> web.Response:
        users = users_of()
        if users is not None:
            try:
                # Revoked at once in memory, written when the database is back.
                await users.logout(bearer(request), _now())
            except StoreError:
                raise json_error(503, "logout not recorded, try again") from None
        return web.json_response({"logged_out": True})

    async def me(request: web.Request) -> web.Response:
        who = principal_of(request)
        return web.json_response(
            {
                "login": who.login,
                "role": who.role.value,
                "agent": who.site_id,
                "language": who.language,
            }
        )

    return [
        web.post("/api/auth/login", login),
        web.post("/api/auth/logout", logout),
        web.get("/api/auth/me", me),
    ]


def _now() -> datetime:
    return datetime.now(UTC)
