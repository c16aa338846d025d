"""``callcenter db``: database maintenance.

``upgrade``: apply schema migrations (the daemon also does it at start).
``replay-rejected``: write again the rows PostgreSQL refused (the writer's
rejected file, ``<spool_dir>/interactions-<node>.jsonl.rejected``, or
``--file``) once their cause is fixed; those still refused stay in the file.
A replayed row never replaces a newer stored one, nor one whose age cannot
be compared (no version on either side); it is then logged and counted.
One replay at a time: a second one stops at once, "a replay is already
running" (exit 2), and so does a replay whose file was replaced or edited
while it ran (the file left as it is; run it again).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from callcenter.config import load_settings
from callcenter.errors import ConfigError
from callcenter.store.db import create_pool, migrate
from callcenter.store.interactions import ReplayResult, replay_rejected
from callcenter.store.spool import rejected_path, spool_path


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("db", help="database maintenance")
    parser.add_argument("action", choices=("upgrade", "replay-rejected"))
    parser.add_argument("--config", type=Path)
    parser.add_argument(
        "--file",
        type=Path,
        help="replay-rejected: the rejected file"
        " (default: <database.spool_dir>/interactions-<node.name>.jsonl.rejected)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.database.url is None:
        raise ConfigError("database.url: not set (set DATABASE_URL)")
    url = settings.database.url.get_secret_value()
    if args.action == "replay-rejected":
        path = args.file or rejected_path(
            spool_path(settings.database.spool_dir, settings.node.name)
        )
        result = asyncio.run(_replay(url, path, settings.database.write_timeout))
        print(f"{path}: written {result.written}, still refused {result.refused}")
        if result.not_applied:
            print(
                f"{path}: {result.not_applied} of them left the stored row as it was"
                " (newer, or no version to compare: logged as store.replay_not_applied)"
            )
        if result.unreadable:
            print(f"{path}: {result.unreadable} unreadable lines kept")
        if result.stopped is not None:
            print(f"stopped, the rest kept: {result.stopped}")
        return 0 if result.refused == result.unreadable == 0 and result.stopped is None else 1
    revision = asyncio.run(migrate(url))
    print(f"database schema at revision {revision}")
    return 0


async def _replay(url: str, path: Path, write_timeout: float) -> ReplayResult:
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        return await replay_rejected(pool, path, write_timeout=write_timeout)
    finally:
        await pool.close()
