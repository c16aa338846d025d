"""Tier 2: desktop authentication through a PostgreSQL outage (UserStore).

The store reaches a fresh database through a TCP proxy: ``down()`` cuts every
connection and refuses new ones (the server is gone), ``blackhole()`` keeps
them open with nothing coming back (a vanished host). A direct connection
checks and changes the database behind the store's back.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from callcenter.adapters.rest_auth import auth_middleware, auth_routes
from callcenter.cti.access import Principal, Role, token_digest
from callcenter.errors import NotAuthenticated, StoreError
from callcenter.store.db import create_pool, migrate
from callcenter.store.users import UserStore, users_spool_path
from callcenter.testing.databases import fresh_database
from callcenter.testing.tcp_proxy import TcpProxy, proxy_in_front_of
from callcenter.testing.waiting import until

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse"
A01 = Principal("a01", Role.AGENT, "a01", "fr")


@dataclass
class Rig:
    users: UserStore
    proxy: TcpProxy
    direct: asyncpg.Connection
    pool: asyncpg.Pool
    url: str
    """Straight to the database (no proxy)."""

    def down(self) -> None:
        self.proxy.refuse()
        self.proxy.cut()

    def up(self) -> None:
        self.proxy.heal()

    async def store(self) -> UserStore:
        """Another store on the same database (another daemon, or this one
        restarted): it knows only what the database knows."""
        return UserStore(self.pool, retry_after=0.0)

    async def session(self, token: str) -> asyncpg.Record | None:
        return await self.direct.fetchrow(
            "SELECT login, expires_at, revoked FROM user_sessions WHERE token_hash = $1",
            token_digest(token),
        )


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    url = await fresh_database(database_url)
    await migrate(url)
    proxy, through = await proxy_in_front_of(url)
    # No TLS negotiation (the test server has none): asyncpg 0.32 leaves its
    # SSL-request future unretrieved when a connect is cancelled while the
    # proxy aborts connections, which the loop guard reports at random.
    pool = await create_pool(through + ("&" if "?" in through else "?") + "sslmode=disable")
    direct = await asyncpg.connect(url)
    users = UserStore(pool, timeout=1.0, retry_after=0.0)
    for login in ("a01", "a02"):
        await users.add_user(login, Role.AGENT, PASSWORD, site_id=login)
    try:
        yield Rig(users, proxy, direct, pool, url)
    finally:
        proxy.heal()
        await users.close()
        await pool.close()
        await direct.close()
        await proxy.stop()


def now() -> datetime:
    return datetime.now(UTC)


async def test_open_sessions_keep_working_through_an_outage_until_they_expire(rig: Rig) -> None:
    token, who = await rig.users.login("a01", PASSWORD, now())
    assert who == A01
    # A session this store only resolved (opened by another daemon, or before a restart).
    other, _ = await (await rig.store()).login("a02", PASSWORD, now())
    assert (await rig.users.resolve(other, now())).login == "a02"

    rig.down()
    assert await rig.users.resolve(token, now()) == A01
    assert (await rig.users.resolve(other, now())).login == "a02"
    # Expiry is enforced from what was remembered.
    with pytest.raises(NotAuthenticated):
        await rig.users.resolve(token, now() + rig.users.session_ttl + timedelta(seconds=1))
    # A token never seen: cannot be checked, a clear "unavailable" (503), not a 401.
    with pytest.raises(StoreError):
        await rig.users.resolve("never-seen", now())

    rig.up()
    assert (await rig.users.resolve(other, now())).login == "a02"


async def test_a_login_during_an_outage_for_a_user_seen_since_start_is_written_back(
    rig: Rig,
) -> None:
    await rig.users.login("a01", PASSWORD, now())
    before = await rig.direct.fetchval("SELECT count(*) FROM user_sessions")

    rig.down()
    opened = now()
    token, who = await rig.users.login("a01", PASSWORD, opened)
    assert who == A01
    assert await rig.users.resolve(token, now()) == A01
    with pytest.raises(NotAuthenticated):
        await rig.users.login("a01", "wrong password", now())
    for unseen in ("a02", "nobody"):  # never logged in since start: 503
        with pytest.raises(StoreError) as refused:
            await rig.users.login(unseen, PASSWORD, now())
        assert not isinstance(refused.value, NotAuthenticated)
    assert rig.users.backlog == 1
    assert await rig.direct.fetchval("SELECT count(*) FROM user_sessions") == before

    rig.up()  # the retry task writes it, no request needed
    await until(lambda: rig.users.backlog == 0, 10, "the outage session written")
    row = await rig.session(token)
    assert row is not None
    assert (row["login"], row["revoked"]) == ("a01", False)
    assert row["expires_at"] == opened + rig.users.session_ttl
    # The database knows it: another daemon accepts the token.
    assert await (await rig.store()).resolve(token, now()) == A01


async def test_a_logout_during_an_outage_revokes_at_once_and_is_written_when_back(
    rig: Rig,
) -> None:
    token, _ = await rig.users.login("a01", PASSWORD, now())
    rig.down()
    opened_during, _ = await rig.users.login("a01", PASSWORD, now())
    await rig.users.logout(token, now())  # no error: recorded in memory
    await rig.users.logout(opened_during, now())
    for revoked in (token, opened_during):
        with pytest.raises(NotAuthenticated):
            await rig.users.resolve(revoked, now())

    rig.up()
    # The revoked mark wins over the database's answer until it is written.
    with pytest.raises(NotAuthenticated):
        await rig.users.resolve(token, now())
    await until(lambda: rig.users.backlog == 0, 10, "the logouts written")
    for revoked in (token, opened_during):
        row = await rig.session(revoked)
        assert row is not None
        assert row["revoked"], revoked
        with pytest.raises(NotAuthenticated):
            await (await rig.store()).resolve(revoked, now())
        with pytest.raises(NotAuthenticated):
            await rig.users.resolve(revoked, now())


async def test_the_database_stays_the_authority_while_it_answers(rig: Rig) -> None:
    first, _ = await rig.users.login("a01", PASSWORD, now())
    second, _ = await rig.users.login("a01", PASSWORD, now())
    kept, _ = await rig.users.login("a02", PASSWORD, now())
    gone, _ = await rig.users.login("a02", PASSWORD, now())

    # Changed behind the store's back: a01 disabled, one a02 session deleted.
    await rig.direct.execute("UPDATE users SET disabled = true WHERE login = 'a01'")
    await rig.direct.execute("DELETE FROM user_sessions WHERE token_hash = $1", token_digest(gone))
    for refused in (first, gone):
        with pytest.raises(NotAuthenticated):
            await rig.users.resolve(refused, now())

    rig.down()
    # Nothing of a01 is left in memory: neither their other session nor their hash.
    for unknown in (second, gone):
        with pytest.raises(StoreError) as error:
            await rig.users.resolve(unknown, now())
        assert not isinstance(error.value, NotAuthenticated)
    with pytest.raises(StoreError) as error:
        await rig.users.login("a01", PASSWORD, now())
    assert not isinstance(error.value, NotAuthenticated)
    # a02's other session and login still work.
    assert (await rig.users.resolve(kept, now())).login == "a02"
    assert (await rig.users.login("a02", PASSWORD, now()))[1].login == "a02"


async def test_a_password_changed_in_the_database_voids_the_remembered_hash(rig: Rig) -> None:
    await rig.users.login("a01", PASSWORD, now())
    await (await rig.store()).add_user("a01", Role.AGENT, "new password", site_id="a01")
    with pytest.raises(NotAuthenticated):
        await rig.users.login("a01", PASSWORD, now())  # seen by this store
    rig.down()
    with pytest.raises(StoreError) as error:
        await rig.users.login("a01", PASSWORD, now())
    assert not isinstance(error.value, NotAuthenticated)
    rig.up()
    token, _ = await rig.users.login("a01", "new password", now())
    rig.down()
    assert await rig.users.resolve(token, now()) == A01
    assert (await rig.users.login("a01", "new password", now()))[1] == A01


async def test_a_password_reset_during_the_outage_ends_the_sessions_opened_offline(
    rig: Rig,
) -> None:
    await rig.users.login("a01", PASSWORD, now())
    rig.down()
    token, _ = await rig.users.login("a01", PASSWORD, now())  # checked against the old hash
    await rig.direct.execute("UPDATE users SET password_hash = 'reset' WHERE login = 'a01'")
    assert await rig.users.resolve(token, now()) == A01  # not read yet: the outage delays it
    rig.up()
    await until(lambda: rig.users.backlog == 0, 10, "the outage session refused")
    assert await rig.session(token) is None  # never written: no other daemon accepts it
    with pytest.raises(NotAuthenticated):
        await rig.users.resolve(token, now())
    rig.down()  # the old hash is forgotten too
    with pytest.raises(StoreError) as error:
        await rig.users.login("a01", PASSWORD, now())
    assert not isinstance(error.value, NotAuthenticated)


async def test_a_write_the_database_cannot_do_now_is_retried_not_dropped(rig: Rig) -> None:
    """Not a refusal (here a serialization failure; a deadlock, a read-only
    standby after a failover...): the session and its logout wait, then land."""
    await rig.direct.execute(
        """CREATE FUNCTION no_session() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$;
           CREATE TRIGGER no_session BEFORE INSERT OR UPDATE ON user_sessions
           FOR EACH ROW EXECUTE FUNCTION no_session()"""
    )
    token, _ = await rig.users.login("a01", PASSWORD, now())
    assert await rig.users.resolve(token, now()) == A01
    await rig.users.logout(token, now())  # no error: the revocation waits
    with pytest.raises(NotAuthenticated):
        await rig.users.resolve(token, now())
    assert rig.users.backlog == 1
    await rig.direct.execute("DROP TRIGGER no_session ON user_sessions")
    await until(lambda: rig.users.backlog == 0, 10, "the session and its logout written")
    row = await rig.session(token)
    assert row is not None
    assert row["revoked"]


async def test_a_busy_pool_is_no_outage(rig: Rig) -> None:
    """No free connection answers this request from memory, but the
    database is asked again by the next one (it answers: not an outage)."""
    pool = await create_pool(rig.url, min_size=1, max_size=1)
    users = UserStore(pool, timeout=0.5, retry_after=60.0)
    try:
        token, _ = await users.login("a01", PASSWORD, now())
        async with pool.acquire():  # every connection in use
            assert await users.resolve(token, now()) == A01
        await rig.direct.execute("UPDATE users SET disabled = true WHERE login = 'a01'")
        with pytest.raises(NotAuthenticated):
            await users.resolve(token, now())
    finally:
        await users.close()
        await pool.close()


async def test_audit_rows_wait_for_the_database_in_order(rig: Rig) -> None:
    rig.down()
    at = now() - timedelta(seconds=30)
    with capture_logs() as logs:
        await rig.users.audit("s1", "agent.pause", "a01", {"reason": "lunch"}, at=at)
        await rig.users.audit("s1", "agent.ready", "a01", {})
    assert rig.users.backlog == 2
    assert [e["event"] for e in logs if e["log_level"] == "error"] == []

    rig.up()
    await until(lambda: rig.users.backlog == 0, 10, "audit rows written")
    rows = await rig.direct.fetch("SELECT at, actor, action, target FROM audit_log ORDER BY id")
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("s1", "agent.pause", "a01"),
        ("s1", "agent.ready", "a01"),
    ]
    assert rows[0]["at"] == at  # the time of the action, not of the write
    assert [e["action"] for e in await rig.users.audit_trail()] == ["agent.ready", "agent.pause"]


async def test_a_vanished_database_host_cannot_hang_authentication(rig: Rig) -> None:
    token, _ = await rig.users.login("a01", PASSWORD, now())
    rig.users.retry_after = 30.0
    rig.proxy.blackhole()  # connections stay open, nothing comes back
    started = time.monotonic()
    async with asyncio.timeout(5):
        assert await rig.users.resolve(token, now()) == A01  # after the 1 s query timeout
        first = time.monotonic() - started
        # Then straight from memory while the database is known to be away.
        for _ in range(20):
            assert await rig.users.resolve(token, now()) == A01
        await rig.users.audit("a01", "agent.ready", "a01", {})
    assert 0.9 <= first < 3.0, first
    assert time.monotonic() - started < first + 1.0


async def test_what_is_still_unwritten_at_close_is_logged(rig: Rig) -> None:
    await rig.users.login("a01", PASSWORD, now())
    rig.down()
    await rig.users.login("a01", PASSWORD, now())
    with capture_logs() as logs:
        await rig.users.close(timeout=2.0)
    [stop] = [e for e in logs if e["event"] == "users.unwritten_at_stop"]
    assert stop["sessions"] == 1


async def test_rest_authentication_through_an_outage(rig: Rig) -> None:
    """The REST layer on the store: 200 for who was at work, 503 for the
    rest, never a 500; a logout during the outage answers 200 and holds."""
    users = rig.users
    app = web.Application(middlewares=[auth_middleware(lambda: users, required=True)])
    app.add_routes(auth_routes(lambda: users))
    server = TestServer(app)
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}/api/auth"

    async def call(path: str, token: str | None = None, body: object = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with http.post(f"{base}/{path}", json=body, headers=headers) as reply:
            return reply.status, await reply.json()

    try:
        async with aiohttp.ClientSession() as http:
            status, body = await call("login", body={"login": "a01", "password": PASSWORD})
            assert status == 200, body
            token = body["token"]
            rig.down()
            me = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{base}/me", headers=me) as reply:
                assert (reply.status, (await reply.json())["login"]) == (200, "a01")
            status, body = await call("login", body={"login": "a01", "password": PASSWORD})
            assert status == 200, body
            during = body["token"]
            status, body = await call("login", body={"login": "a01", "password": "wrong"})
            assert status == 401, body
            status, body = await call("login", body={"login": "a02", "password": PASSWORD})
            assert (status, body) == (503, {"error": "authentication unavailable, try again"})
            status, _ = await call("logout", token=during)
            assert status == 200
            status, _ = await call("logout", token=during)
            assert status == 401
            status, _ = await call("logout", token="never-issued")
            assert status == 503
    finally:
        await server.close()


# -- across a restart: what waits is spooled -----------------------------------


async def test_sessions_and_logouts_of_an_outage_survive_a_restart(
    rig: Rig, tmp_path: Path
) -> None:
    spool = users_spool_path(tmp_path / "spool", "node1")

    def store() -> UserStore:
        return UserStore(rig.pool, timeout=1.0, retry_after=0.0, spool=spool)

    users = store()
    try:
        online, _ = await users.login("a01", PASSWORD, now())
        await users.login("a02", PASSWORD, now())  # both remembered
        rig.down()
        opened = now()
        during, _ = await users.login("a01", PASSWORD, opened)
        short_lived, _ = await users.login("a02", PASSWORD, now())
        await users.logout(short_lived, now())  # opened and ended during the outage
        await users.logout(online, now())  # a session the database has
        await users.audit("s1", "agent.pause", "a01", {"reason": "lunch"})
        assert users.backlog == 4
        # Digests only, and readable by the daemon's user alone.
        text = spool.read_text()
        hashes = [r["password_hash"] for r in await rig.direct.fetch("SELECT * FROM users")]
        for secret in (during, short_lived, online, *hashes):
            assert secret not in text
        assert token_digest(during) in text
        assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    finally:
        await users.close(timeout=0.5)  # the database is still away

    # Restarted while the database is still away: the file is read back.
    restarted = store()
    try:
        with pytest.raises(StoreError, match="in use"):
            store()  # one store per file, like the interaction writer's
        assert restarted.backlog == 4
        assert await restarted.resolve(during, now()) == A01
        for revoked in (online, short_lived):
            with pytest.raises(NotAuthenticated):
                await restarted.resolve(revoked, now())
    finally:
        await restarted.close(timeout=0.5)

    # Restarted once it is back: written without a request, the file goes.
    rig.up()
    back = store()
    try:
        await until(lambda: back.backlog == 0 and not spool.exists(), 10, "all written back")
        row = await rig.session(during)
        assert row is not None
        assert (row["login"], row["revoked"]) == ("a01", False)
        assert row["expires_at"] == opened + back.session_ttl
        assert await back.resolve(during, now()) == A01
        assert await (await rig.store()).resolve(during, now()) == A01
        for revoked in (online, short_lived):
            row = await rig.session(revoked)
            assert row is not None
            assert row["revoked"], revoked
            with pytest.raises(NotAuthenticated):
                await back.resolve(revoked, now())
        audit = await rig.direct.fetch("SELECT actor, action FROM audit_log")
        assert [tuple(r) for r in audit] == [("s1", "agent.pause")]
    finally:
        await back.close()


async def test_what_was_written_back_is_not_restored_after_a_restart(
    rig: Rig, tmp_path: Path
) -> None:
    """The file says what is done: a session written back, then revoked by
    someone else, does not come back from the file to be answered from
    memory during a later outage."""
    spool = users_spool_path(tmp_path, "node1")
    await rig.direct.execute(
        """CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$;
           CREATE TRIGGER no_audit BEFORE INSERT ON audit_log
           FOR EACH ROW EXECUTE FUNCTION no_audit()"""
    )
    users = UserStore(rig.pool, timeout=1.0, retry_after=0.0, spool=spool)
    try:
        await users.login("a01", PASSWORD, now())
        rig.down()
        token, _ = await users.login("a01", PASSWORD, now())
        await users.audit("s1", "agent.ready", "a01", {})  # held back by the trigger, later
        rig.up()
        await until(lambda: users.backlog == 1, 10, "the session written, the audit row not")
        assert await rig.session(token) is not None
        await rig.direct.execute(
            "UPDATE user_sessions SET revoked = true WHERE token_hash = $1", token_digest(token)
        )
        rig.down()
    finally:
        await users.close(timeout=0.5)
    restarted = UserStore(rig.pool, timeout=1.0, retry_after=0.0, spool=spool)
    try:
        assert restarted.backlog == 1  # the audit row only
        with pytest.raises(StoreError) as error:
            await restarted.resolve(token, now())  # unknown here: 503, not the session
        assert not isinstance(error.value, NotAuthenticated)
        rig.up()
        await rig.direct.execute("DROP TRIGGER no_audit ON audit_log")
        await until(lambda: restarted.backlog == 0, 10, "the audit row written")
        assert await rig.direct.fetchval("SELECT count(*) FROM audit_log") == 1
        with pytest.raises(NotAuthenticated):
            await restarted.resolve(token, now())
    finally:
        await restarted.close()
