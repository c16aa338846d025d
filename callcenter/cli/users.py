"""``callcenter users``: desktop accounts (agents, supervisors, admins).

callcenter users add a07 --role agent --agent a07      (password on stdin or prompted)
callcenter users seed                                   (every agent and supervisor of the site)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from callcenter.callpath.site import load_site
from callcenter.config import Settings, load_settings
from callcenter.cti.access import Role
from callcenter.errors import ConfigError
from callcenter.store.db import create_pool, migrate
from callcenter.store.users import UserStore, seed_site_users


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("users", help="desktop users (agents, supervisors, admins)")
    parser.add_argument("--config", type=Path)
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create or update a user")
    add.add_argument("login")
    add.add_argument("--role", choices=[r.value for r in Role], required=True)
    add.add_argument("--agent", help="agent or supervisor id in the site file")
    add.add_argument("--language", default="fr", choices=("fr", "en"))
    seed = actions.add_parser("seed", help="a user for every agent and supervisor of the site")
    seed.add_argument("--password", help="the same initial password for all (default: prompted)")
    parser.set_defaults(func=run)


def _password(given: str | None) -> str:
    if given:
        return given
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass("password: ")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.database.url is None:
        raise ConfigError("database.url: not set (set DATABASE_URL)")
    password = _password(getattr(args, "password", None))
    return asyncio.run(_run(args, settings, password))


async def _run(args: argparse.Namespace, settings: Settings, password: str) -> int:
    assert settings.database.url is not None
    url = settings.database.url.get_secret_value()
    await migrate(url)
    pool = await create_pool(url)
    try:
        users = UserStore(pool)
        if args.action == "add":
            await users.add_user(
                args.login, Role(args.role), password, site_id=args.agent, language=args.language
            )
            print(f"user {args.login} ({args.role}) saved")
        else:
            made = await seed_site_users(users, load_site(settings.site.file), password)
            print(f"{len(made)} users saved: {', '.join(made)}")
    finally:
        await pool.close()
    return 0
