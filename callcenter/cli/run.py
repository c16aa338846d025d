"""``callcenter run``: the daemon. With ``--sandbox``, the whole stack on local
defaults: the local Asterisk sandbox and a PostgreSQL cluster are started
first (and stopped on exit)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import uvloop
from pydantic import SecretStr

from callcenter import logs
from callcenter.config import load_settings
from callcenter.sandbox.asterisk import REPO, AsteriskPorts, AsteriskSandbox
from callcenter.sandbox.postgres import PostgresSandbox

DEMO_CONTACTS = REPO / "ivr_scripts" / "fixtures" / "contacts.csv"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("run", help="run the daemon")
    parser.add_argument("--config", type=Path, help="TOML file (default: callcenter.toml)")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="also start the local Asterisk sandbox and a local PostgreSQL",
    )
    parser.add_argument("--sip-port", type=int, default=5060, help="sandbox SIP port")
    parser.add_argument("--sandbox-name", default="dev", help="sandbox instance name")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    logs.configure(settings.log.level, settings.log.format)
    asterisk: AsteriskSandbox | None = None
    postgres: PostgresSandbox | None = None
    if args.sandbox:
        asterisk = AsteriskSandbox(
            args.sandbox_name,
            ports=AsteriskPorts(sip=args.sip_port, ami=settings.ami.port, agi=settings.agi.port),
        )
        if not asterisk.running():
            asterisk.start()
        creds = asterisk.credentials()
        overrides: dict[str, Any] = {"ami": {"secret": SecretStr(creds.secret), "port": creds.port}}
        if settings.database.url is None:
            postgres = PostgresSandbox(REPO / "var" / "postgres" / "data", port=55432)
            overrides["database"] = {"url": SecretStr(postgres.start())}
        settings = settings.model_copy(
            update={
                "ami": settings.ami.model_copy(update=overrides["ami"]),
                "recording": settings.recording.model_copy(
                    update={
                        "asterisk_dir": str(asterisk.recordings_in_asterisk),
                        "local_dir": asterisk.recordings,
                    }
                ),
                **(
                    {"database": settings.database.model_copy(update=overrides["database"])}
                    if "database" in overrides
                    else {}
                ),
            }
        )
        print(
            f"sandbox: Asterisk SIP 127.0.0.1:{args.sip_port} "
            "(trunk: dial any number; 9999 = self-test), "
            f"AMI {creds.port}, FastAGI {settings.agi.port}, HTTP {settings.http.port}",
            flush=True,
        )
    try:
        # The sandbox is a demo: every site user gets the password 'demo'.
        uvloop.run(_serve(settings, "demo" if args.sandbox else None))
    finally:
        if asterisk is not None:
            asterisk.stop()
        if postgres is not None:
            postgres.stop()
    return 0


async def _serve(settings: Any, demo_password: str | None = None) -> None:
    # Imported here so that the other commands (asterisk, ivr, ...) do not
    # pull in the whole daemon.
    from callcenter.crm.csv_import import import_csv
    from callcenter.crm.store import PgCrm
    from callcenter.daemon import Daemon
    from callcenter.heap import serving_heap
    from callcenter.scheduling import loop_priority
    from callcenter.store.users import seed_site_users

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if seconds := os.environ.get("CALLCENTER_RUN_SECONDS"):
        # For smoke tests of `make run`: stop by itself after a while.
        loop.call_later(float(seconds), stop.set)
    daemon = Daemon(settings)
    with contextlib.suppress(asyncio.CancelledError):
        await daemon.start()
        try:
            if demo_password is not None and daemon.users is not None and daemon.pool is not None:
                made = await seed_site_users(daemon.users, daemon.site, demo_password)
                await import_csv(PgCrm(daemon.pool, settings.crm), DEMO_CONTACTS)
                base = f"http://{settings.http.host}:{daemon.http.port}"
                print(
                    f"desktop {base}/desktop, wallboard {base}/wallboard: log in as "
                    f"{made[0]} (agent), {made[-2]} (supervisor) or admin, "
                    f"password {demo_password!r}",
                    flush=True,
                )
            with loop_priority(settings.scheduling.realtime, settings.scheduling.priority):
                async with serving_heap():
                    await stop.wait()
        finally:
            await daemon.stop()
