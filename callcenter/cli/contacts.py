"""``callcenter contacts``: the built-in CRM's contacts.

    callcenter contacts import ivr_scripts/fixtures/contacts.csv   # all rows or none
    callcenter contacts import contacts.csv --dry-run              # validate only
    callcenter contacts show 0612345678                            # card + last calls
    callcenter contacts show +33612345678 --json

The database is the daemon's (``DATABASE_URL`` or ``[database] url``); the
schema is brought up to date first. ``show`` asks the configured CRM (the
external one when ``[crm] backend = "http"``, with the built-in as fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from callcenter.config import Settings, load_settings
from callcenter.crm.csv_import import import_csv
from callcenter.crm.http import HttpCrm
from callcenter.crm.model import Contact, Crm, InteractionSummary
from callcenter.crm.settings import CrmSettings
from callcenter.crm.store import PgCrm
from callcenter.errors import ConfigError
from callcenter.store.db import create_pool, migrate


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("contacts", help="built-in CRM: import and look up contacts")
    actions = parser.add_subparsers(dest="action", required=True)
    load = actions.add_parser("import", help="import contacts from CSV (all rows or none)")
    load.add_argument("file", type=Path)
    load.add_argument("--dry-run", action="store_true", help="validate only, write nothing")
    load.add_argument("--delimiter", default=",", help="field separator (default ',')")
    load.add_argument("--config", type=Path)
    load.set_defaults(func=run_import)
    show = actions.add_parser("show", help="the contact with this phone number, and its last calls")
    show.add_argument("number")
    show.add_argument("--history", type=int, default=None, help="how many interactions")
    show.add_argument("--json", action="store_true")
    show.add_argument("--config", type=Path)
    show.set_defaults(func=run_show)


def crm_settings(settings: Settings) -> CrmSettings:
    """The ``[crm]`` section once ``Settings`` has one; defaults until then."""
    section = getattr(settings, "crm", None)
    return section if isinstance(section, CrmSettings) else CrmSettings()


def _database_url(settings: Settings) -> str:
    if settings.database.url is None:
        raise ConfigError("database.url: not set (set DATABASE_URL)")
    return settings.database.url.get_secret_value()


def run_import(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if len(args.delimiter) != 1:
        raise ConfigError("--delimiter: one character")
    return asyncio.run(_import(settings, args.file, args.dry_run, args.delimiter))


async def _import(settings: Settings, path: Path, dry_run: bool, delimiter: str) -> int:
    url = _database_url(settings)
    if not dry_run:
        await migrate(url)
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        crm = PgCrm(pool, crm_settings(settings))
        report = await import_csv(crm, path, dry_run=dry_run, delimiter=delimiter)
    finally:
        await pool.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    if report.errors:
        print(f"{path}: {len(report.errors)} problem(s); nothing imported", file=sys.stderr)
        return 1
    if dry_run:
        print(f"{path}: valid (dry run, nothing written)")
    else:
        print(f"{path}: {report.imported} contact(s) imported")
    return 0


def run_show(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    return asyncio.run(_show(settings, args.number, args.history, args.json))


async def _show(settings: Settings, number: str, limit: int | None, as_json: bool) -> int:
    config = crm_settings(settings)
    pool = await create_pool(_database_url(settings), min_size=1, max_size=2)
    try:
        builtin = PgCrm(pool, config)
        if config.backend == "http" and config.http is not None:
            async with aiohttp.ClientSession() as session:
                crm: Crm = HttpCrm(
                    session, config.http, fallback=builtin, country_code=config.country_code
                )
                contact, history = await _look_up(crm, number, limit or config.history_limit)
        else:
            contact, history = await _look_up(builtin, number, limit or config.history_limit)
    finally:
        await pool.close()
    if as_json:
        document = {
            "contact": None if contact is None else contact.card(),
            "history": [h.as_json() for h in history],
        }
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        print(_describe(number, contact, history))
    return 0 if contact is not None else 1


async def _look_up(
    crm: Crm, number: str, limit: int
) -> tuple[Contact | None, list[InteractionSummary]]:
    contact = await crm.by_number(number)
    if contact is not None:
        return contact, await crm.history(contact_id=contact.id, limit=limit)
    return None, await crm.history(number=number, limit=limit)


def _describe(number: str, contact: Contact | None, history: list[InteractionSummary]) -> str:
    lines = []
    if contact is None:
        lines.append(f"no contact with number {number}")
    else:
        lines.append(f"{contact.name}{'  [VIP]' if contact.vip else ''}  ({contact.id})")
        for label, value in (
            ("company", contact.company),
            ("phones", ", ".join(contact.phones)),
            ("email", contact.email),
            ("language", contact.language),
            ("account", contact.account),
            ("notes", contact.notes),
        ):
            if value:
                lines.append(f"  {label:<9}{value}")
        for key, value in sorted(contact.data.items()):
            lines.append(f"  {key:<9}{value}")
    lines.append(f"last interactions: {len(history)}")
    for item in history:
        when = item.started_at.astimezone().strftime("%Y-%m-%d %H:%M")
        who = item.agent_id or "-"
        code = f"  {item.disposition}" if item.disposition else ""
        lines.append(
            f"  {when}  {item.direction:<8} {item.queue or '-':<10} {who:<6} "
            f"{item.outcome or '-'}{code}"
        )
    return "\n".join(lines)
