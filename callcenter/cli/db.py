"""``callcenter db upgrade``: apply schema migrations (the daemon also does it at start)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from callcenter.config import load_settings
from callcenter.errors import ConfigError
from callcenter.store.db import migrate


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("db", help="database maintenance")
    parser.add_argument("action", choices=("upgrade",))
    parser.add_argument("--config", type=Path)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.database.url is None:
        raise ConfigError("database.url: not set (set DATABASE_URL)")
    revision = asyncio.run(migrate(settings.database.url.get_secret_value()))
    print(f"database schema at revision {revision}")
    return 0
