"""Desktop users, their sessions and the audit trail, in PostgreSQL.

Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106);
hashing takes tens of milliseconds of CPU on purpose, so it runs in a thread.
A session token is shown once to the browser; the table keeps its SHA-256.

While PostgreSQL cannot answer
------------------------------
Calls keep flowing through a database outage, so the agents taking them must
keep their desktops (ready, pause, disposition, transfer). Every failure but
a refusal (SQLSTATE class 22 or 23, :func:`~callcenter.store.db.refusal`)
means "cannot answer now, try again" (:class:`StoreUnavailable`, REST 503):
the connection failed, no answer within ``timeout`` (every query is
bounded), PostgreSQL shutting down or out of connections, no free pool
connection, a serialization failure, a read-only transaction during a
failover. A statement the database *refuses* fails as before
(:class:`StoreError`, REST 503) and what it would have written is dropped.
Only a lost connection (:func:`~callcenter.store.db.connection_lost`: not a
busy pool, not class 53) makes the requests that can be answered from
memory skip the database for ``retry_after`` seconds (the retry task still
tries it).

* **Sessions.** The store remembers every session it opened or resolved,
  keyed by the token's SHA-256 (never the token): who, and ``expires_at``.
  When the database cannot answer, ``resolve`` answers from there; expiry
  is still enforced from the remembered ``expires_at``. When the database
  answers it is the authority: a revoked, expired or deleted session drops
  its entry, a disabled or deleted user drops every entry of theirs. At most
  ``MAX_SESSIONS`` entries: expired ones go first, then the least recently
  used (never one still to be written).
* **Logins.** The store remembers the argon2 hash of each user whose password
  it verified since start (at most ``MAX_KNOWN_USERS``). During an outage such
  a user may log in again: the password is checked against that hash, the
  session gets the same ``session_ttl``, and it is written to
  ``user_sessions`` when the database is back (an idempotent upsert; also at
  that token's first request that reaches the database), but only if the
  user still has that hash and is not disabled: else the session ends there
  (a password reset or a disable during the outage ends it). Anyone else
  gets a StoreUnavailable (REST 503 "authentication unavailable, try again")
  after the same argon2 work as a remembered login; the status (503, not
  401) still tells that the login was not remembered. This is safe enough
  because nothing is accepted that the database did not accept: the hash is
  the one it held when last read (a different hash, a disabled or deleted
  user, seen by any later read, drops it), the expiry is the same, and every
  session is written back or ended, so afterwards the database is as if it
  had never been away (listed, revocable, expiring). What an outage can
  delay is a change this daemon has not read yet (a session revoked or a
  user disabled from the CLI or another daemon since this one last read
  it): it applies at that token's first request once the database answers.
* **Logouts.** A logout replaces the entry at once by a "revoked" mark that
  wins over every other answer, the database's included, until the
  revocation is written (then the mark goes and the database is the
  authority again). Both, because each alone fails: without the write the
  token would work again after a restart, and on any other daemon; without
  the mark it would work again between the database coming back and the write
  landing.
* **Audit rows** that cannot be written wait in order, with the time of the
  action (at most ``MAX_QUEUED_AUDIT``; beyond, the oldest is dropped and
  logged): the action itself succeeded and is answered as such.

One owned task writes what waits (retries ``RETRY_MIN`` doubling to
``RETRY_MAX`` seconds, woken at once by any query that succeeds); ``close()``
stops it after a last attempt and logs what is still unwritten.

Across a restart
    With a spool file (``<database.spool_dir>/users-<node>.jsonl``, mode
    0600, locked like the interaction writer's: one daemon per file), every
    session, logout and audit row that has to wait is appended there
    (``fsync``) before the request is answered, and marked done once
    written; the file goes once nothing waits. A new store reads it back at
    start: the sessions opened during the outage keep working (from memory
    while the database is still away, then from the database once written
    back), the logouts stay in force, the audit rows are written, in order.
    On disk only digests: the token's SHA-256 (as in ``user_sessions``) and
    the SHA-256 of the password hash the login was checked against, never a
    token nor a hash a password could be guessed from. Without the file
    (a disk failure, logged as ``users.spool_failed``) they stay in memory
    as before, and a restart loses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callcenter.callpath.site import Site
from callcenter.cti.access import Principal, Role, new_token, token_digest
from callcenter.errors import ConfigError, NotAuthenticated, StoreError, StoreUnavailable
from callcenter.store.db import bounded, connection_lost, refusal
from callcenter.store.rows import json_text
from callcenter.store.spool import SpoolFile
from callcenter.tasks import cancel_and_wait

log = structlog.get_logger("callcenter.store.users")

_hasher = PasswordHasher()
# Verified against when the login does not exist, so that a wrong login and a
# wrong password take the same time (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("not a password")

MAX_SESSIONS = 20_000
"""Sessions remembered (a few per desktop user; expired ones go first)."""
MAX_PENDING_SESSIONS = 10_000
"""Sessions and logouts waiting to be written; an outage login beyond is refused (503)."""
MAX_KNOWN_USERS = 10_000
"""Users whose argon2 hash is kept for logins during an outage."""
MAX_QUEUED_AUDIT = 10_000
"""Audit rows waiting for the database; beyond, the oldest is dropped (logged)."""
RETRY_MIN = 0.5
RETRY_MAX = 5.0
SPOOL_VERSION = 1
"""The user store's spool lines (see :func:`users_spool_path`)."""

_USER = "SELECT role, password_hash, agent_id, language, disabled FROM users WHERE login = $1"
_RESOLVE = """SELECT u.login, u.role, u.agent_id, u.language, u.disabled, u.password_hash,
                     s.expires_at
              FROM user_sessions s JOIN users u USING (login)
              WHERE s.token_hash = $1 AND NOT s.revoked AND s.expires_at > $2"""
# Only while the user still has the hash the password was checked against (no
# row: refused), compared by its SHA-256 (what memory and the spool keep: an
# argon2 hash on disk could be attacked offline). Idempotent: a retry after a
# lost reply, or a session written twice, is harmless; a revocation is never undone.
_UPSERT_SESSION = """INSERT INTO user_sessions (token_hash, login, created_at, expires_at, revoked)
                     SELECT $1, login, $3, $4, $5 FROM users
                     WHERE login = $2 AND NOT disabled
                         AND encode(sha256(convert_to(password_hash, 'UTF8')), 'hex') = $6
                     ON CONFLICT (token_hash) DO UPDATE
                     SET revoked = user_sessions.revoked OR EXCLUDED.revoked"""
_REVOKE = "UPDATE user_sessions SET revoked = true WHERE token_hash = $1"
_AUDIT = "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)"
_AUDIT_TRAIL = """SELECT at, actor, action, target, detail FROM audit_log
                  ORDER BY at DESC, id DESC LIMIT $1"""
_INVALID = "invalid or expired session; log in again"

T = TypeVar("T")


@dataclass(slots=True)
class _Session:
    login: str | None
    """None: the logout of a token this store never saw."""
    principal: Principal | None
    """None: revoked (a mark, until the revocation is written)."""
    expires_at: datetime
    opened_at: datetime | None = None
    hash_check: str | None = None
    """Set while its user_sessions row does not exist (opened while the
    database was away): the SHA-256 of the hash the password was checked
    against (:func:`_hash_check`)."""
    seq: int | None = None
    """Its line in the spool file while it waits there (None: not spooled)."""


@dataclass(frozen=True, slots=True)
class _Known:
    password_hash: str
    principal: Principal


@dataclass(slots=True)
class _AuditRow:
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: str
    seq: int | None = None
    """Its line in the spool file while it waits there."""


def users_spool_path(spool_dir: Path, node: str) -> Path:
    """The user store's spool file for ``node`` in ``database.spool_dir``."""
    return spool_dir / f"users-{node}.jsonl"


def _hash_check(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()


class UserStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        session_ttl: timedelta = timedelta(hours=12),
        timeout: float = 5.0,
        retry_after: float = 1.0,
        spool: Path | None = None,
    ) -> None:
        """``timeout``: seconds a query may take (a vanished host cannot hang
        a login). ``retry_after``: once the connection to the database was
        lost, requests that can be answered from memory do not try it again
        for that long (the retry task does). ``spool``: the file where what
        waits for the database is kept across a restart
        (:func:`users_spool_path`; read back here, so construct the store in
        the running loop); StoreError if another store holds it. None:
        memory only (tools, tests)."""
        self._pool = pool
        self.session_ttl = session_ttl
        self.timeout = timeout
        self.retry_after = retry_after
        self._sessions: dict[str, _Session] = {}
        self._by_login: dict[str, set[str]] = {}
        """login -> digests of its entries in ``_sessions``."""
        self._pending: dict[str, None] = {}
        """Digests whose session or revocation is still to be written, in order."""
        self._known: dict[str, _Known] = {}
        self._audits: deque[_AuditRow] = deque()
        self.audit_dropped = 0
        self._down_until = 0.0
        self._wake = asyncio.Event()
        self._catch_up_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._spool = SpoolFile(spool, mode=0o600) if spool is not None else None
        self._spool_lock = asyncio.Lock()
        self._seq = 0
        self._spooled: set[int] = set()
        """Lines of the spool file whose item still waits."""
        self._settled: list[int] = []
        """Lines whose item is done, not yet marked so in the file."""
        self.spool_failures = 0
        if self._spool is not None:
            self._spool.open()
            self._restore(self._spool, datetime.now(UTC))

    @property
    def backlog(self) -> int:
        """Sessions, logouts and audit rows waiting for the database."""
        return len(self._pending) + len(self._audits)

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
        await self._call(
            "user write",
            lambda c: c.execute(
                """INSERT INTO users (login, role, password_hash, agent_id, language)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (login) DO UPDATE SET role = $2, password_hash = $3,
                       agent_id = $4, language = $5, disabled = false""",
                login,
                role.value,
                digest,
                site_id,
                language,
            ),
        )
        self._known.pop(login, None)  # another password: learnt again at the next login

    async def login(self, login: str, password: str, now: datetime) -> tuple[str, Principal]:
        """Check the password; open a session. Returns (token, who)."""
        try:
            row = await self._call(
                "login", lambda c: c.fetchrow(_USER, login), fallback=login in self._known
            )
        except StoreUnavailable:
            return await self._login_offline(login, password, now)
        if row is None or row["disabled"]:
            self._forget_user(login)
        elif login in self._known and self._known[login].password_hash != row["password_hash"]:
            del self._known[login]  # changed in the database: the old one is void
        await _verify(row["password_hash"] if row is not None else _DUMMY_HASH, password)
        if row is None or row["disabled"]:
            raise NotAuthenticated("wrong login or password")
        principal = _principal(login, row)
        self._remember_user(login, row["password_hash"], principal)
        return await self._open(principal, row["password_hash"], now, offline=False)

    async def _login_offline(
        self, login: str, password: str, now: datetime
    ) -> tuple[str, Principal]:
        known = self._known.get(login)
        if known is None:
            # The same argon2 work as a remembered login; only the status differs.
            with contextlib.suppress(NotAuthenticated):
                await _verify(_DUMMY_HASH, password)
            raise StoreUnavailable(
                f"user store: PostgreSQL unavailable and {login!r} has not logged in since start"
            )
        await _verify(known.password_hash, password)
        opened = await self._open(known.principal, known.password_hash, now, offline=True)
        log.warning("users.login_offline", login=login, backlog=self.backlog)
        return opened

    async def _open(
        self, principal: Principal, password_hash: str, now: datetime, *, offline: bool
    ) -> tuple[str, Principal]:
        if len(self._pending) >= MAX_PENDING_SESSIONS:
            raise StoreUnavailable("user store: too many sessions waiting for the database")
        token = new_token()
        digest = token_digest(token)
        check = _hash_check(password_hash)
        session = _Session(principal.login, principal, now + self.session_ttl, now, check)
        self._keep(digest, session, now)
        self._pending[digest] = None
        if offline:
            # On disk before the token is handed out: a restart keeps it.
            await self._spool_session(digest, session)
            self._kick()
            return token, principal
        try:
            await self._sync(digest, session)
        except StoreUnavailable:
            # Gone between the read and the write: kept, written when back.
            await self._spool_session(digest, session)
            self._kick()
        return token, principal

    async def resolve(self, token: str, now: datetime) -> Principal:
        digest = token_digest(token)
        cached = self._sessions.get(digest)
        if cached is not None and (cached.principal is None or cached.expires_at <= now):
            if cached.principal is not None:
                self._drop(digest)
            raise NotAuthenticated(_INVALID)
        try:
            if cached is not None and cached.hash_check is not None:
                try:
                    await self._sync(digest, cached, fallback=True)
                except StoreUnavailable:
                    raise
                except StoreError:
                    # Its row was refused (user gone, disabled, new password): dropped.
                    raise NotAuthenticated(_INVALID) from None
            row = await self._call(
                "session lookup",
                lambda c: c.fetchrow(_RESOLVE, digest, now),
                fallback=cached is not None,
            )
        except StoreUnavailable:
            if cached is None or cached.principal is None:
                raise
            return cached.principal
        if row is None or row["disabled"]:
            if self._sessions.get(digest) is cached:  # a logout meanwhile stays
                self._drop(digest)
            if row is not None:
                self._forget_user(row["login"])
            raise NotAuthenticated(_INVALID)
        principal = _principal(row["login"], row)
        known = self._known.get(principal.login)
        if known is not None:
            if known.password_hash == row["password_hash"]:
                self._known[principal.login] = _Known(known.password_hash, principal)
            else:
                del self._known[principal.login]
        if self._sessions.get(digest) is cached:  # not logged out meanwhile
            self._keep(digest, _Session(principal.login, principal, row["expires_at"]), now)
        return principal

    async def logout(self, token: str, now: datetime) -> None:
        """The token stops working at once, in this daemon, even if the
        revocation can only be written when the database is back."""
        digest = token_digest(token)
        cached = self._sessions.get(digest)
        if cached is None:
            mark = _Session(None, None, now + self.session_ttl)
        else:
            mark = _Session(
                cached.login, None, cached.expires_at, cached.opened_at, cached.hash_check
            )
        self._keep(digest, mark, now)
        self._pending[digest] = None
        try:
            await self._sync(digest, mark, fallback=True)
        except StoreUnavailable as exc:
            log.warning("users.logout_queued", login=mark.login, error=str(exc))
            # On disk: a restart before the write must not bring the token back.
            await self._spool_session(digest, mark)
            self._kick()

    async def audit(
        self,
        actor: str,
        action: str,
        target: str | None,
        detail: dict[str, Any],
        *,
        at: datetime | None = None,
    ) -> None:
        """Write an audit row; while the database cannot answer, it waits
        (in order, with its time) and this returns normally."""
        row = _AuditRow(at or datetime.now(UTC), actor, action, target, json.dumps(detail))
        if self._audits:  # behind the rows already waiting
            self._queue_audit(row)
            await self._spool_audit(row)
            return
        try:
            await self._write_audit(row, fallback=True)
        except StoreUnavailable as exc:
            self._queue_audit(row)
            log.warning("audit.queued", action=action, error=str(exc), queued=len(self._audits))
            await self._spool_audit(row)

    async def audit_trail(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` audit rows, newest first."""
        rows = await self._call("audit read", lambda c: c.fetch(_AUDIT_TRAIL, limit))
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

    async def catch_up(self) -> None:
        """Write the sessions, logouts and audit rows that wait. Raises
        StoreUnavailable when the database still cannot answer (what is left
        keeps waiting); a row the database refuses is logged and dropped. An
        expired session is written too (harmless); ``_trim`` forgets those
        not written yet. The spool file then says what is done (removed once
        nothing waits)."""
        async with self._catch_up_lock:
            try:
                await self._catch_up()
            finally:
                await self._flush_spool()

    async def _catch_up(self) -> None:
        for digest in list(self._pending):
            session = self._sessions.get(digest)
            if session is None:
                self._pending.pop(digest, None)
                continue
            try:
                await self._sync(digest, session)
            except StoreUnavailable:
                raise
            except StoreError:
                continue  # refused: logged and dropped by _sync
        while self._audits:
            row = self._audits[0]
            try:
                await self._write_audit(row)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                log.error("audit.write_refused", action=row.action, error=str(exc))
            if self._audits and self._audits[0] is row:
                self._audits.popleft()
                self._settle(row.seq)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop the retry task after one last attempt (within ``timeout``)."""
        self._closed = True
        if self._flusher is not None:
            await cancel_and_wait([self._flusher])
            self._flusher = None
        if self.backlog:
            try:
                async with asyncio.timeout(timeout):
                    await self.catch_up()
            except (StoreError, TimeoutError) as exc:
                log.error(
                    "users.unwritten_at_stop",
                    sessions=len(self._pending),
                    audit_rows=len(self._audits),
                    error=str(exc),
                    kept_in=None if self._spool is None else str(self._spool.path),
                )
        if self._spool is not None:
            await self._flush_spool()
            self._spool.close()  # the lock: the next store may take the file

    # -- memory ---------------------------------------------------------------

    def _keep(self, digest: str, session: _Session, now: datetime) -> None:
        old = self._sessions.pop(digest, None)  # most recently used last
        if old is not None and old is not session:
            self._settle(old.seq)  # replaced (a logout's mark): the old line is void
        self._sessions[digest] = session
        if session.login is not None:
            self._by_login.setdefault(session.login, set()).add(digest)
        if len(self._sessions) > MAX_SESSIONS:
            self._trim(now)

    def _trim(self, now: datetime) -> None:
        for digest, session in list(self._sessions.items()):
            if session.expires_at <= now:
                self._drop(digest)
        excess = len(self._sessions) - MAX_SESSIONS * 9 // 10
        for digest, session in list(self._sessions.items()):
            if excess <= 0:
                break
            if digest not in self._pending and session.principal is not None:
                self._drop(digest)
                excess -= 1

    def _drop(self, digest: str) -> None:
        session = self._sessions.pop(digest, None)
        self._pending.pop(digest, None)
        if session is not None:
            self._settle(session.seq)
        if session is not None and session.login is not None:
            digests = self._by_login.get(session.login, set())
            digests.discard(digest)
            if not digests:
                self._by_login.pop(session.login, None)

    def _remember_user(self, login: str, password_hash: str, principal: Principal) -> None:
        self._known.pop(login, None)
        self._known[login] = _Known(password_hash, principal)
        while len(self._known) > MAX_KNOWN_USERS:
            del self._known[next(iter(self._known))]

    def _forget_user(self, login: str) -> None:
        """Disabled or deleted: no login from memory, no session of theirs
        (logouts still to be written stay)."""
        self._known.pop(login, None)
        for digest in list(self._by_login.get(login, ())):
            if self._sessions[digest].principal is not None:
                self._drop(digest)

    def _queue_audit(self, row: _AuditRow) -> None:
        if len(self._audits) >= MAX_QUEUED_AUDIT:
            lost = self._audits.popleft()
            self._settle(lost.seq)
            self.audit_dropped += 1
            log.error(
                "audit.dropped",
                at=lost.at.isoformat(),
                actor=lost.actor,
                action=lost.action,
                target=lost.target,
                detail=lost.detail,
            )
        self._audits.append(row)
        self._kick()

    # -- the spool file ------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        self._spooled.add(self._seq)
        return self._seq

    def _settle(self, seq: int | None) -> None:
        """The item of that line no longer waits: marked done in the file at
        the next flush, so a restart does not bring it back."""
        if seq is not None and seq in self._spooled:
            self._spooled.discard(seq)
            self._settled.append(seq)

    async def _spool_session(self, digest: str, session: _Session) -> None:
        """A session or a logout that waits for the database, to disk (fsync)."""
        if self._spool is None or self._sessions.get(digest) is not session:
            return
        if digest not in self._pending:
            return  # written meanwhile
        # The number is taken before any await, so a write-back that lands
        # during the append still finds it and marks it done.
        session.seq = self._next_seq()
        await self._append(session.seq, _session_line(digest, session))

    async def _spool_audit(self, row: _AuditRow) -> None:
        if self._spool is None:
            return
        row.seq = self._next_seq()
        await self._append(row.seq, _audit_line(row))

    async def _append(self, seq: int, line: bytes) -> None:
        assert self._spool is not None
        spool = self._spool
        async with self._spool_lock:
            if seq not in self._spooled:
                return  # done before it reached the disk: nothing to keep
            try:
                await asyncio.to_thread(spool.append, line)
            except OSError as exc:
                # Memory still has it (as before spooling existed): the
                # request is answered; only a restart would lose it.
                self.spool_failures += 1
                log.error("users.spool_failed", path=str(spool.path), error=str(exc))

    async def _flush_spool(self) -> None:
        """Mark what is done in the file; remove it once nothing waits."""
        spool = self._spool
        if spool is None:
            return
        async with self._spool_lock:
            try:
                if not self.backlog:
                    self._spooled.clear()
                    self._settled.clear()
                    await asyncio.to_thread(spool.remove)
                elif self._settled:
                    done, self._settled = self._settled, []
                    await asyncio.to_thread(spool.append, _line({"done": done}))
            except OSError as exc:
                # Harmless: what is done is written again after a restart
                # (sessions and revocations are idempotent; an audit row twice).
                self.spool_failures += 1
                log.error("users.spool_failed", path=str(spool.path), error=str(exc))

    def _restore(self, spool: SpoolFile, now: datetime) -> None:
        """What a previous run left waiting, back in memory (then written by
        the retry task); the file is rewritten with exactly that."""
        sessions: dict[str, tuple[int, _Session]] = {}
        audits: dict[int, _AuditRow] = {}
        done: set[int] = set()
        bad: list[bytes] = []
        lines = spool.read_lines()
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or record.get("v") != SPOOL_VERSION:
                    raise ValueError("not a version 1 record")
                if "done" in record:
                    done.update(int(seq) for seq in record["done"])
                elif "session" in record:
                    seq, item = int(record["seq"]), record["session"]
                    digest = str(item["digest"])
                    if digest not in sessions or sessions[digest][0] < seq:
                        # The last line of a token is its state (a logout's mark).
                        sessions[digest] = (seq, _session_from(item))
                elif "audit" in record:
                    audits[int(record["seq"])] = _audit_from(record["audit"])
                else:
                    raise ValueError("neither a session, an audit row nor done")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                bad.append(line)
                log.error(
                    "users.spool_line_corrupt",
                    path=str(spool.path),
                    line=number,
                    error=f"{type(exc).__name__}: {exc}",
                    moved_to=str(spool.bad),
                )
        if bad:
            try:
                spool.quarantine(bad)
            except OSError as exc:
                log.error("users.spool_quarantine_failed", path=str(spool.bad), error=str(exc))
        kept: list[bytes] = []
        for digest, (seq, session) in sorted(sessions.items(), key=lambda item: item[1][0]):
            if seq in done or session.expires_at <= now:
                continue  # an expired token cannot be used: its write-back is moot
            session.seq = self._next_seq()
            self._keep(digest, session, now)
            self._pending[digest] = None
            kept.append(_session_line(digest, session))
        for seq in sorted(audits)[-MAX_QUEUED_AUDIT:]:
            if seq not in done:
                row = audits[seq]
                row.seq = self._next_seq()
                self._audits.append(row)
                kept.append(_audit_line(row))
        if not kept:
            spool.remove()
            return
        # Only what still waits, renumbered: the file does not grow with restarts.
        spool.rewrite(b"".join(kept), sum(map(len, lines)), b"")
        log.warning(
            "users.restored_from_spool",
            path=str(spool.path),
            sessions=len(self._pending),
            audit_rows=len(self._audits),
        )
        with contextlib.suppress(RuntimeError):  # no running loop: the first request kicks
            self._kick()

    async def _sync(self, digest: str, session: _Session, *, fallback: bool = False) -> None:
        """Write what the database does not know of this session yet.
        StoreUnavailable: it keeps waiting. StoreError (refused): dropped, logged."""
        revoked = session.principal is None
        try:
            if session.hash_check is not None:
                status = await self._call(
                    "session write",
                    lambda c: c.execute(
                        _UPSERT_SESSION,
                        digest,
                        session.login,
                        session.opened_at,
                        session.expires_at,
                        revoked,
                        session.hash_check,
                    ),
                    fallback=fallback,
                )
                if status.endswith(" 0"):
                    raise StoreError("user disabled, deleted or with another password")
                session.hash_check = None
            elif revoked:
                await self._call("logout", lambda c: c.execute(_REVOKE, digest), fallback=fallback)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            if self._sessions.get(digest) is session:
                if revoked:  # the mark stays until the session expires
                    self._pending.pop(digest, None)
                    self._settle(session.seq)
                else:  # the database will never know it: void
                    self._drop(digest)
            if session.login is not None:
                self._known.pop(session.login, None)
            log.error("users.session_write_refused", login=session.login, error=str(exc))
            raise
        if self._sessions.get(digest) is session:
            if revoked:  # written: the database is the authority again
                self._drop(digest)
            else:
                self._pending.pop(digest, None)
                self._settle(session.seq)

    async def _write_audit(self, row: _AuditRow, *, fallback: bool = False) -> None:
        await self._call(
            "audit write",
            lambda c: c.execute(_AUDIT, row.at, row.actor, row.action, row.target, row.detail),
            fallback=fallback,
        )

    def _kick(self) -> None:
        if self._closed:
            return
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._retry(), name="user-store-catch-up")

    async def _retry(self) -> None:
        delay = RETRY_MIN
        while self.backlog:
            self._wake.clear()
            try:
                await self.catch_up()
            except StoreError as exc:
                log.warning(
                    "users.catch_up_failed", error=str(exc), backlog=self.backlog, retry_in=delay
                )
            except Exception as exc:
                log.exception("users.catch_up_error", error=repr(exc), retry_in=delay)
            else:
                delay = RETRY_MIN
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            delay = min(RETRY_MAX, delay * 2)

    # -- the database ---------------------------------------------------------

    async def _call(
        self,
        what: str,
        op: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        fallback: bool = False,
    ) -> T:
        """One bounded query. A refusal raises StoreError, any other failure
        StoreUnavailable. ``fallback``: the caller can do without the
        database, so skip it for ``retry_after`` after the connection was lost."""
        if fallback and time.monotonic() < self._down_until:
            raise StoreUnavailable(f"user store: {what}: PostgreSQL unreachable (retrying)")
        try:
            result = await bounded(self._pool, op, self.timeout)
        except Exception as exc:
            if refusal(exc) is not None:
                raise StoreError(f"user store: {what}: {exc}") from exc
            if connection_lost(exc):
                self._down_until = time.monotonic() + self.retry_after
            raise StoreUnavailable(f"user store: {what}: {type(exc).__name__}: {exc}") from exc
        self._down_until = 0.0
        if self.backlog:
            self._kick()  # the database is back: what waits goes now
        return result


# -- the spool file's lines: one JSON object each --------------------------------
#
# {"v":1,"seq":n,"session":{...}}   a session or a logout's mark that waits
# {"v":1,"seq":n,"audit":{...}}     an audit row that waits
# {"v":1,"done":[n,...]}            those lines are written (or void)
#
# The last "session" line of a digest is that token's state. Tokens are
# never on disk: only their SHA-256 (as in user_sessions) and the SHA-256
# of the password hash the login was checked against.


def _line(record: dict[str, Any]) -> bytes:
    return (json_text({"v": SPOOL_VERSION, **record}) + "\n").encode()


def _session_line(digest: str, session: _Session) -> bytes:
    who = session.principal
    return _line(
        {
            "seq": session.seq,
            "session": {
                "digest": digest,
                "login": session.login,
                "revoked": who is None,
                "role": None if who is None else who.role.value,
                "site_id": None if who is None else who.site_id,
                "language": None if who is None else who.language,
                "expires_at": session.expires_at.isoformat(),
                "opened_at": None if session.opened_at is None else session.opened_at.isoformat(),
                "hash_check": session.hash_check,
            },
        }
    )


def _session_from(item: dict[str, Any]) -> _Session:
    login = item["login"]
    principal = None
    if not item["revoked"]:
        principal = Principal(str(login), Role(item["role"]), item["site_id"], item["language"])
    opened = item["opened_at"]
    return _Session(
        None if login is None else str(login),
        principal,
        datetime.fromisoformat(item["expires_at"]),
        None if opened is None else datetime.fromisoformat(opened),
        item["hash_check"],
    )


def _audit_line(row: _AuditRow) -> bytes:
    return _line(
        {
            "seq": row.seq,
            "audit": {
                "at": row.at.isoformat(),
                "actor": row.actor,
                "action": row.action,
                "target": row.target,
                "detail": row.detail,
            },
        }
    )


def _audit_from(item: dict[str, Any]) -> _AuditRow:
    return _AuditRow(
        datetime.fromisoformat(item["at"]),
        str(item["actor"]),
        str(item["action"]),
        item["target"],
        str(item["detail"]),
    )


async def _verify(password_hash: str, password: str) -> None:
    try:
        await asyncio.to_thread(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        raise NotAuthenticated("wrong login or password") from None


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
