"""Import contacts from CSV into the built-in CRM.

Format (UTF-8, a BOM is accepted; first line is the header, columns in any
order)::

    id,name,company,phones,email,language,vip,account,pin,notes
    C001,Mme Claire Martin,,0612345678;+33 1 45 67 89 01,c.martin@example.fr,fr,yes,12345678,4567,

Optional columns: ``locked`` (yes: the account is locked until a new PIN is
imported) and ``data.<key>`` (free-form fields, e.g. ``data.segment``).

All or nothing: every row is validated first and every problem is reported
(``file:line: column: what is wrong``); if any row is wrong nothing is
written. Otherwise the rows are upserted by id in one transaction. Re-running
the same file is harmless (same contacts; PINs unchanged keep their failure
counts and locks). Phones shared by several rows are only warned about: such
a number identifies nobody (``by_number`` answers None), the caller is asked
for their account.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.crm.model import DEFAULT_COUNTRY_CODE, Contact, normalize_number
from callcenter.crm.store import NewContact, PgCrm
from callcenter.errors import ConfigError

COLUMNS = ("id", "name", "company", "phones", "email", "language", "vip", "account", "pin", "notes")
OPTIONAL = ("locked",)
MAX_ROWS = 1_000_000

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")
_LANGUAGE = re.compile(r"[a-z]{2}")
_DATA_KEY = re.compile(r"data\.([A-Za-z][A-Za-z0-9_]{0,63})")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TRUE = {"1", "true", "yes", "y", "oui", "o", "vrai", "x"}
_FALSE = {"", "0", "false", "no", "n", "non", "faux"}


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


@dataclass
class ParsedCsv:
    contacts: list[NewContact] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ImportReport:
    imported: int
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()


def _flag(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def validate_row(
    values: Mapping[str, str], *, country_code: str = DEFAULT_COUNTRY_CODE
) -> tuple[NewContact | None, list[tuple[str, str]]]:
    """One row (column -> text) as a contact, or the list of (column, problem)."""
    problems: list[tuple[str, str]] = []
    text = {k: (v or "").strip() for k, v in values.items()}

    def optional(column: str, limit: int) -> str | None:
        value = text.get(column, "")
        if len(value) > limit:
            problems.append((column, f"longer than {limit} characters"))
        # Notes may hold several lines; other fields are one line of text.
        if _CONTROL.search(value) or (column != "notes" and ("\n" in value or "\t" in value)):
            problems.append((column, "contains control characters"))
        return value or None

    contact_id = text.get("id", "")
    if not _ID.fullmatch(contact_id):
        problems.append(("id", f"{contact_id!r} is not an id (1-64 of A-Z a-z 0-9 _ . : -)"))
    name = optional("name", 200)
    if name is None:
        problems.append(("name", "missing"))
    company = optional("company", 200)
    notes = optional("notes", 2000)

    phones: list[str] = []
    for raw in text.get("phones", "").split(";"):
        if not raw.strip():
            continue
        number = normalize_number(raw, country_code)
        if number is None:
            problems.append(("phones", f"{raw.strip()!r} is not a phone number"))
        elif number not in phones:
            phones.append(number)

    email = text.get("email") or None
    if email is not None and (len(email) > 320 or not _EMAIL.fullmatch(email)):
        problems.append(("email", f"{email!r} is not an e-mail address"))
    language = (text.get("language") or "").lower() or None
    if language is not None and not _LANGUAGE.fullmatch(language):
        problems.append(("language", f"{language!r} is not a two-letter language code (fr, en)"))
    vip = _flag(text.get("vip", ""))
    if vip is None:
        problems.append(("vip", f"{text.get('vip')!r} is not yes/no"))
    locked = _flag(text.get("locked", ""))
    if locked is None:
        problems.append(("locked", f"{text.get('locked')!r} is not yes/no"))

    account = text.get("account") or None
    if account is not None and not (account.isascii() and account.isdigit() and len(account) <= 20):
        problems.append(("account", f"{account!r} is not an account number (up to 20 digits)"))
    pin = text.get("pin") or None
    if pin is not None:
        if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
            problems.append(("pin", "must be 4 to 12 digits"))  # never echo a PIN
        if account is None:
            problems.append(("pin", "a PIN needs an account"))
    if locked and account is None:
        problems.append(("locked", "only an account can be locked"))

    data: dict[str, str] = {}
    for column, value in text.items():
        match = _DATA_KEY.fullmatch(column)
        if match and value:
            if len(value) > 2000:
                problems.append((column, "longer than 2000 characters"))
            data[match.group(1)] = value

    if problems:
        return None, problems
    assert name is not None
    contact = Contact(
        id=contact_id,
        name=name,
        company=company,
        phones=tuple(phones),
        email=email,
        language=language,
        vip=bool(vip),
        account=account,
        notes=notes,
        data=data,
    )
    return NewContact(contact, pin, bool(locked)), []


def parse_csv(
    text: str,
    filename: str = "<csv>",
    *,
    country_code: str = DEFAULT_COUNTRY_CODE,
    delimiter: str = ",",
) -> ParsedCsv:
    """Validate a whole CSV text; nothing is written. Line numbers are those
    of the file (a quoted field may span lines: the row's first line counts)."""
    parsed = ParsedCsv()
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=delimiter)

    def error(line: int, column: str | None, message: str) -> None:
        parsed.errors.append(Problem(filename, line, column, message))

    try:
        header = next(reader, None)
    except csv.Error as exc:
        error(1, None, f"unreadable CSV header: {exc}")
        return parsed
    if header is None:
        error(1, None, "empty file (expected a header line)")
        return parsed
    header = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS + OPTIONAL and not _DATA_KEY.fullmatch(h)]
    twice = sorted({h for h in header if header.count(h) > 1})
    if missing:
        error(1, None, f"missing column(s): {', '.join(missing)}")
    if unknown:
        error(1, None, f"unknown column(s): {', '.join(unknown)}")
    if twice:
        error(1, None, f"column(s) given twice: {', '.join(twice)}")
    if parsed.errors:
        return parsed

    seen_ids: dict[str, int] = {}
    seen_accounts: dict[str, int] = {}
    seen_phones: dict[str, int] = {}
    line = reader.line_num + 1
    rows = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            error(line, None, f"unreadable CSV: {exc}")
            break
        start, line = line, reader.line_num + 1
        if not any(f.strip() for f in fields):
            continue
        rows += 1
        if rows > MAX_ROWS:
            error(start, None, f"more than {MAX_ROWS} rows")
            break
        if len(fields) != len(header):
            error(start, None, f"expected {len(header)} fields, found {len(fields)}")
            continue
        item, problems = validate_row(
            dict(zip(header, fields, strict=True)), country_code=country_code
        )
        for column, message in problems:
            error(start, column, message)
        if item is None:
            continue
        contact = item.contact
        if contact.id in seen_ids:
            error(start, "id", f"{contact.id} already on line {seen_ids[contact.id]}")
            continue
        seen_ids[contact.id] = start
        if contact.account is not None:
            if contact.account in seen_accounts:
                first = seen_accounts[contact.account]
                error(start, "account", f"{contact.account} already on line {first}")
                continue
            seen_accounts[contact.account] = start
        for phone in contact.phones:
            if phone in seen_phones:
                parsed.warnings.append(
                    Problem(
                        filename,
                        start,
                        "phones",
                        f"{phone} also on line {seen_phones[phone]}: it will identify nobody",
                    )
                )
            else:
                seen_phones[phone] = start
        parsed.contacts.append(item)
    return parsed


def read_csv(
    path: Path, *, country_code: str = DEFAULT_COUNTRY_CODE, delimiter: str = ","
) -> ParsedCsv:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    return parse_csv(text, str(path), country_code=country_code, delimiter=delimiter)


async def import_csv(
    crm: PgCrm, path: Path, *, dry_run: bool = False, delimiter: str = ","
) -> ImportReport:
    """Validate *path*, then upsert every row in one transaction, or none."""
    parsed = read_csv(path, country_code=crm.country_code, delimiter=delimiter)
    if parsed.errors or dry_run:
        return ImportReport(0, tuple(parsed.errors), tuple(parsed.warnings))
    imported = await crm.upsert(parsed.contacts)
    return ImportReport(imported, (), tuple(parsed.warnings))
