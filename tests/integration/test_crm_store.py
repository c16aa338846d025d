"""Tier 2: the built-in CRM on a real PostgreSQL (import, lookups, PIN lockout, history)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from callcenter.cli import main
from callcenter.crm.csv_import import import_csv
from callcenter.crm.model import PinStatus
from callcenter.crm.settings import CrmSettings, PinHashSettings
from callcenter.crm.store import PgCrm
from callcenter.errors import StoreError
from callcenter.store.db import create_pool, migrate
from callcenter.store.interactions import InteractionWriter
from callcenter.store.rows import InteractionRow
from callcenter.testing.databases import fresh_database

pytestmark = pytest.mark.postgres

SEED = Path(__file__).parents[2] / "ivr_scripts" / "fixtures" / "contacts.csv"
HEADER = "id,name,company,phones,email,language,vip,account,pin,notes\n"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETTINGS = CrmSettings(
    pin_max_failures=3,
    pin_lockout_seconds=1800,
    pin_hash=PinHashSettings(time_cost=1, memory_cost_kib=8, parallelism=1),
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    url = await fresh_database(database_url)
    await migrate(url)
    pool = await create_pool(url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def crm(pool: asyncpg.Pool) -> PgCrm:
    crm = PgCrm(pool, SETTINGS)
    report = await import_csv(crm, SEED)
    assert report.errors == ()
    assert report.imported == 8
    return crm


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex[:6]}.csv"
    path.write_text(text, encoding="utf-8")
    return path


async def test_lookups_by_any_spelling_of_any_number_and_by_account(crm: PgCrm) -> None:
    for number in ("0612345678", "+33 6 12 34 56 78", "+33145678901", "01 45 67 89 01"):
        contact = await crm.by_number(number)
        assert contact is not None, number
        assert contact.id == "C001"
    martin = await crm.by_number("0612345678")
    assert martin is not None
    assert martin.vip is True
    assert martin.data == {"segment": "gestion privée"}
    assert martin.phones == ("0612345678", "0145678901")
    assert martin.language == "fr"
    smith = await crm.by_number("+447700900123")
    assert smith is not None
    assert smith.id == "C006"
    assert await crm.by_number("0700000000") is None
    assert await crm.by_number("anonymous") is None
    by_account = await crm.by_account("87654321")
    assert by_account is not None
    assert by_account.name == "M. John Smith"
    assert await crm.by_account("00000000") is None


async def test_a_number_shared_by_two_contacts_identifies_nobody(
    crm: PgCrm, tmp_path: Path
) -> None:
    report = await import_csv(crm, write(tmp_path, HEADER + "C100,Mr Martin,,0612345678,,,,,,\n"))
    assert report.imported == 1
    assert [str(w) for w in report.warnings] == []  # shared with a stored contact, not the file
    assert await crm.by_number("0612345678") is None
    other = await crm.by_number("0145678901")
    assert other is not None
    assert other.id == "C001"


async def test_the_pin_is_hashed_and_three_wrong_pins_lock_the_account(
    crm: PgCrm, pool: asyncpg.Pool
) -> None:
    stored = await pool.fetchval("SELECT pin_hash FROM contacts WHERE id = 'C002'")
    assert stored.startswith("$argon2id$")
    assert "1234" not in stored
    assert (await crm.check_pin("87654321", "0000", NOW)).status is PinStatus.WRONG
    assert (await crm.check_pin("87654321", "1111", NOW)).status is PinStatus.WRONG
    third = await crm.check_pin("87654321", "2222", NOW)
    assert third.status is PinStatus.LOCKED
    assert third.locked_until == NOW + timedelta(minutes=30)
    row = await pool.fetchrow(
        "SELECT pin_failures, locked_until FROM contacts WHERE account = '87654321'"
    )
    assert (row["pin_failures"], row["locked_until"]) == (3, NOW + timedelta(minutes=30))
    # The right PIN during the lockout is refused, and changes nothing.
    during = await crm.check_pin("87654321", "1234", NOW + timedelta(minutes=29))
    assert during.status is PinStatus.LOCKED
    assert during.contact is None
    after = await crm.check_pin("87654321", "1234", NOW + timedelta(minutes=31))
    assert after.status is PinStatus.OK
    assert after.contact is not None
    assert after.contact.id == "C002"
    row = await pool.fetchrow("SELECT pin_failures, locked_until FROM contacts WHERE id = 'C002'")
    assert (row["pin_failures"], row["locked_until"]) == (0, None)


async def test_concurrent_wrong_pins_are_all_counted(crm: PgCrm, pool: asyncpg.Pool) -> None:
    results = await asyncio.gather(*(crm.check_pin("12345678", f"000{i}", NOW) for i in range(5)))
    statuses = sorted(r.status.value for r in results)
    assert statuses == ["locked", "locked", "locked", "wrong", "wrong"]
    failures = await pool.fetchval("SELECT pin_failures FROM contacts WHERE id = 'C001'")
    assert failures == 3


async def test_imported_lock_unknown_accounts_and_explicit_lock(crm: PgCrm) -> None:
    assert (await crm.check_pin("11112222", "0000", NOW)).status is PinStatus.LOCKED
    assert (await crm.check_pin("99999999", "0000", NOW)).status is PinStatus.UNKNOWN
    assert await crm.lock("30051234", NOW) is True
    assert await crm.lock("99999999", NOW) is False
    assert (await crm.check_pin("30051234", "8642", NOW)).status is PinStatus.LOCKED


async def test_a_file_with_one_bad_row_imports_nothing(
    crm: PgCrm, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    text = HEADER + "C001,Renamed,,,,,,,,\nC200,New,,,,,,,,\nC201,Bad,,,not-an-email,,,,,\n"
    report = await import_csv(crm, write(tmp_path, text))
    assert report.imported == 0
    assert [str(e).split(": ", 1)[1] for e in report.errors] == [
        "email: 'not-an-email' is not an e-mail address"
    ]
    assert str(report.errors[0]).endswith(".csv:4: email: 'not-an-email' is not an e-mail address")
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 8
    assert await pool.fetchval("SELECT name FROM contacts WHERE id = 'C001'") == "Mme Claire Martin"


async def test_an_account_already_held_by_another_contact_rolls_the_import_back(
    crm: PgCrm, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    text = HEADER + "C300,Fine,,,,,,,,\nC301,Thief,,,,,,87654321,,\n"
    with pytest.raises(StoreError, match="account 87654321: C002, C301"):
        await import_csv(crm, write(tmp_path, text))
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 8


async def test_reimport_keeps_locks_unless_the_pin_changes(
    crm: PgCrm, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    for pin in ("0000", "1111", "2222"):
        await crm.check_pin("87654321", pin, NOW)
    first_hash = await pool.fetchval("SELECT pin_hash FROM contacts WHERE id = 'C002'")
    report = await import_csv(crm, SEED)  # the same file again
    assert report.imported == 8
    row = await pool.fetchrow(
        "SELECT pin_hash, pin_failures, locked_until FROM contacts WHERE id = 'C002'"
    )
    assert (row["pin_hash"], row["pin_failures"]) == (first_hash, 3)
    assert row["locked_until"] is not None
    # A new PIN (the bank sent a new one) unlocks; no PIN keeps the stored one.
    text = HEADER + "C002,M. John Smith,,0698765432,,en,no,87654321,5555,\n"
    text += "C001,Mme Claire Martin,,0612345678,,fr,yes,12345678,,\n"
    assert (await import_csv(crm, write(tmp_path, text))).imported == 2
    assert (await crm.check_pin("87654321", "5555", NOW)).status is PinStatus.OK
    assert (await crm.check_pin("12345678", "4567", NOW)).status is PinStatus.OK
    smith = await crm.by_account("87654321")
    assert smith is not None
    assert smith.company is None  # the row replaces the contact's fields


async def test_history_by_contact_and_by_number_newest_first(
    crm: PgCrm, pool: asyncpg.Pool
) -> None:
    writer = InteractionWriter(pool)
    await writer.start()
    base = 1_772_440_000.0
    try:
        for n, number in enumerate(["0612345678", "+33145678901", "0698765432", "+33612345678"]):
            writer.submit(
                InteractionRow(
                    interaction_id=str(uuid.uuid4()),
                    node="node1",
                    linkedid=f"node1-{base + n}",
                    queue="support",
                    caller_number=number,
                    language="fr",
                    priority=0,
                    enqueued_at=base + 60 * n,
                    answered_at=base + 60 * n + 5,
                    ended_at=base + 60 * n + 50,
                    agent_id="a01",
                    outcome="completed",
                    context={"disposition": f"code{n}", "notes": ""},
                )
            )
        await writer.flush()
    finally:
        await writer.stop()
    # One interaction from an unknown number, tied to C001 by its customer id.
    await pool.execute(
        "INSERT INTO interactions (id, channel, direction, queue, caller_number, customer_id,"
        " created_at, outcome) VALUES ($1, 'voice', 'outbound', 'ventes', '0700000000', 'C001',"
        " to_timestamp($2), 'completed')",
        uuid.uuid4(),
        base + 600,
    )
    history = await crm.history(contact_id="C001", limit=10)
    assert [(h.caller_number, h.disposition) for h in history] == [
        ("0700000000", None),
        ("+33612345678", "code3"),
        ("+33145678901", "code1"),
        ("0612345678", "code0"),
    ]
    assert history[0].direction == "outbound"
    assert history[1].answered_at is not None
    assert history[1].notes is None
    assert len(await crm.history(contact_id="C001", limit=2)) == 2
    by_number = await crm.history(number="06 98 76 54 32")
    assert [h.disposition for h in by_number] == ["code2"]
    assert await crm.history(number="not a number") == []


def test_cli_imports_and_shows(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = asyncio.run(fresh_database(database_url))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CALLCENTER_CONFIG_FILE", str(tmp_path / "absent.toml"))
    bad = write(tmp_path, HEADER + "C1,A,,12x,,,,,,\n")
    assert main(["contacts", "import", str(bad)]) == 1
    assert f"{bad}:2: phones: '12x' is not a phone number" in capsys.readouterr().err
    assert main(["contacts", "import", str(SEED), "--dry-run"]) == 0
    assert main(["contacts", "show", "0612345678"]) == 1  # dry run wrote nothing
    capsys.readouterr()
    assert main(["contacts", "import", str(SEED)]) == 0
    assert "8 contact(s) imported" in capsys.readouterr().out
    assert main(["contacts", "show", "+33 6 12 34 56 78"]) == 0
    out = capsys.readouterr().out
    assert "Mme Claire Martin  [VIP]  (C001)" in out
    assert "segment  gestion privée" in out
    assert not any(line.split()[-1:] == ["4567"] for line in out.splitlines())  # no PIN shown
    assert main(["contacts", "show", "0700000000"]) == 1
    assert "no contact with number 0700000000" in capsys.readouterr().out
