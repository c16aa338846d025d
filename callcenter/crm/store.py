"""The built-in CRM: contacts in PostgreSQL (table ``contacts``, migration 0003).

asyncpg and OS errors are translated into :class:`StoreError` here. PIN
checks run in a transaction holding the contact's row (``FOR UPDATE``), so two
calls trying PINs on the same account at once count both failures.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from callcenter.crm.model import (
    DEFAULT_COUNTRY_CODE,
    Contact,
    InteractionSummary,
    PinPolicy,
    PinResult,
    PinState,
    PinStatus,
    normalize_number,
    number_variants,
    pin_attempt,
    pin_locked,
)
from callcenter.crm.pins import PinHasher
from callcenter.crm.settings import CrmSettings
from callcenter.errors import StoreError

_COLUMNS = "id, name, company, phones, email, language, vip, account, notes, data::text AS data"

# Locked "for good" by an import (CSV column locked=yes): far enough.
LOCKED_FOR_GOOD = datetime.fromisoformat("9999-12-31T00:00:00+00:00")


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact to write, with its PIN in clear (hashed on the way in)."""

    contact: Contact
    pin: str | None = None
    locked: bool = False


@asynccontextmanager
async def _db(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"contacts: {what} failed: {type(exc).__name__}: {exc}") from exc


def contact_of(row: asyncpg.Record | dict[str, Any]) -> Contact:
    data = row["data"]
    extra = json.loads(data) if isinstance(data, str) else (data or {})
    return Contact(
        id=row["id"],
        name=row["name"],
        company=row["company"],
        phones=tuple(row["phones"] or ()),
        email=row["email"],
        language=row["language"],
        vip=bool(row["vip"]),
        account=row["account"],
        notes=row["notes"],
        data=extra if isinstance(extra, dict) else {},
    )


class PgCrm:
    """:class:`callcenter.crm.model.Crm` on an asyncpg pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: CrmSettings | None = None,
        hasher: PinHasher | None = None,
    ) -> None:
        settings = settings or CrmSettings()
        self.pool = pool
        self.country_code = settings.country_code or DEFAULT_COUNTRY_CODE
        self.policy = PinPolicy(
            settings.pin_max_failures, timedelta(seconds=settings.pin_lockout_seconds)
        )
        self.hasher = hasher or PinHasher(settings.pin_hash)

    async def by_number(self, number: str) -> Contact | None:
        normalised = normalize_number(number, self.country_code)
        if normalised is None:
            return None
        async with _db("lookup by number"):
            rows = await self.pool.fetch(
                f"SELECT {_COLUMNS} FROM contacts WHERE phones @> ARRAY[$1]::text[]"
                " ORDER BY id LIMIT 2",
                normalised,
            )
        return contact_of(rows[0]) if len(rows) == 1 else None

    async def by_account(self, account: str) -> Contact | None:
        if not account:
            return None
        async with _db("lookup by account"):
            rows = await self.pool.fetch(
                f"SELECT {_COLUMNS} FROM contacts WHERE account = $1 ORDER BY id LIMIT 2",
                account,
            )
        return contact_of(rows[0]) if len(rows) == 1 else None

    async def check_pin(self, account: str, pin: str, now: datetime) -> PinResult:
        if not account:
            return PinResult(PinStatus.UNKNOWN)
        async with _db("PIN check"), self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {_COLUMNS}, pin_hash, pin_failures, locked_until FROM contacts"
                " WHERE account = $1 ORDER BY id LIMIT 2 FOR UPDATE",
                account,
            )
            if len(rows) != 1 or rows[0]["pin_hash"] is None:
                return PinResult(PinStatus.UNKNOWN)
            row = rows[0]
            state = PinState(row["pin_failures"], row["locked_until"])
            verified: bool | None = None
            if not pin_locked(state, now):
                verified = await asyncio.to_thread(self.hasher.verify, row["pin_hash"], pin)
            status, new = pin_attempt(state, verified, now, self.policy)
            if new != state:
                await conn.execute(
                    "UPDATE contacts SET pin_failures = $2, locked_until = $3 WHERE id = $1",
                    row["id"],
                    new.failures,
                    new.locked_until,
                )
        contact = contact_of(row) if status is PinStatus.OK else None
        return PinResult(status, contact, new.failures, new.locked_until)

    async def lock(self, account: str, now: datetime) -> bool:
        if not account:
            return False
        until = now + self.policy.lockout
        async with _db("lock"):
            done = await self.pool.fetch(
                "UPDATE contacts SET locked_until = GREATEST(locked_until, $2),"
                " pin_failures = GREATEST(pin_failures, $3) WHERE account = $1 RETURNING id",
                account,
                until,
                self.policy.max_failures,
            )
        return bool(done)

    async def history(
        self, *, contact_id: str | None = None, number: str | None = None, limit: int = 10
    ) -> list[InteractionSummary]:
        numbers: list[str] = []
        if number is not None and (normalised := normalize_number(number, self.country_code)):
            numbers += number_variants(normalised, self.country_code)
        async with _db("history"):
            if contact_id is not None:
                phones = await self.pool.fetchval(
                    "SELECT phones FROM contacts WHERE id = $1", contact_id
                )
                for phone in phones or ():
                    numbers += number_variants(phone, self.country_code)
            if contact_id is None and not numbers:
                return []
            rows = await self.pool.fetch(
                "SELECT id::text AS id, channel, direction, queue, caller_number, agent_id,"
                " outcome, created_at, answered_at, ended_at,"
                " context->>'disposition' AS disposition, context->>'notes' AS notes"
                " FROM interactions WHERE customer_id = $1 OR caller_number = ANY($2::text[])"
                " ORDER BY created_at DESC, id LIMIT $3",
                contact_id,
                sorted(set(numbers)),
                max(1, limit),
            )
        return [
            InteractionSummary(
                interaction_id=r["id"],
                channel=r["channel"],
                direction=r["direction"],
                queue=r["queue"],
                caller_number=r["caller_number"],
                agent_id=r["agent_id"],
                outcome=r["outcome"],
                started_at=r["created_at"],
                answered_at=r["answered_at"],
                ended_at=r["ended_at"],
                disposition=r["disposition"],
                notes=r["notes"] or None,
            )
            for r in rows
        ]

    async def upsert(self, contacts: Sequence[NewContact]) -> int:
        """Write contacts in one transaction (all or none); see :func:`upsert_contacts`."""
        async with _db("import"), self.pool.acquire() as conn, conn.transaction():
            return await upsert_contacts(conn, contacts, self.hasher)


_UPSERT = """
INSERT INTO contacts (id, name, company, phones, email, language, vip, account, notes,
    data, pin_hash, pin_failures, locked_until, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, 0, $12, now())
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, company = EXCLUDED.company, phones = EXCLUDED.phones,
    email = EXCLUDED.email, language = EXCLUDED.language, vip = EXCLUDED.vip,
    account = EXCLUDED.account, notes = EXCLUDED.notes, data = EXCLUDED.data,
    pin_hash = COALESCE(EXCLUDED.pin_hash, contacts.pin_hash),
    pin_failures = CASE WHEN EXCLUDED.pin_hash IS NULL THEN contacts.pin_failures ELSE 0 END,
    locked_until = CASE
        WHEN $12::timestamptz IS NOT NULL THEN $12::timestamptz
        WHEN EXCLUDED.pin_hash IS NULL THEN contacts.locked_until
        ELSE NULL END,
    updated_at = now()
"""


async def upsert_contacts(
    conn: asyncpg.Connection, contacts: Sequence[NewContact], hasher: PinHasher
) -> int:
    """Upsert by id inside the caller's transaction.

    A PIN in the file replaces the stored one only when it differs from it
    (re-importing the same file keeps failure counts and locks); a new PIN
    clears the failures and the lock. No PIN keeps the stored one. ``locked``
    locks the account for good (until a new PIN). An account held by two
    contacts after the import is refused (StoreError: the caller's
    transaction rolls back).
    """
    ids = [c.contact.id for c in contacts]
    stored: dict[str, str | None] = {
        r["id"]: r["pin_hash"]
        for r in await conn.fetch("SELECT id, pin_hash FROM contacts WHERE id = ANY($1)", ids)
    }

    def new_hash(item: NewContact) -> str | None:
        if item.pin is None:
            return None
        old = stored.get(item.contact.id)
        if old is not None and hasher.verify(old, item.pin):
            return None  # unchanged: keep the hash, the failures and the lock
        return hasher.hash(item.pin)

    hashes = await asyncio.to_thread(lambda: [new_hash(c) for c in contacts])
    await conn.executemany(
        _UPSERT,
        [
            (
                c.contact.id,
                c.contact.name,
                c.contact.company,
                list(c.contact.phones),
                c.contact.email,
                c.contact.language,
                c.contact.vip,
                c.contact.account,
                c.contact.notes,
                json.dumps(dict(c.contact.data), ensure_ascii=False),
                pin_hash,
                LOCKED_FOR_GOOD if c.locked else None,
            )
            for c, pin_hash in zip(contacts, hashes, strict=True)
        ],
    )
    shared = await conn.fetch(
        "SELECT account, array_agg(id ORDER BY id) AS ids FROM contacts"
        " WHERE account = ANY($1::text[]) GROUP BY account HAVING count(*) > 1",
        [c.contact.account for c in contacts if c.contact.account],
    )
    if shared:
        details = "; ".join(f"account {r['account']}: {', '.join(r['ids'])}" for r in shared)
        raise StoreError(f"contacts: an account belongs to several contacts ({details})")
    return len(contacts)
