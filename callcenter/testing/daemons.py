"""A whole daemon in the test's event loop, wired to a private Asterisk."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from callcenter.callpath.phases import Phase
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.crm.csv_import import import_csv
from callcenter.crm.store import PgCrm
from callcenter.daemon import Daemon
from callcenter.testing.instances import AsteriskInstance

REPO = Path(__file__).resolve().parents[2]
DEMO_CONTACTS = REPO / "ivr_scripts" / "fixtures" / "contacts.csv"

TEST_MENU = """
script: test_menu
description: Test menu for tier-3 tests
languages: [fr, en]
default_language: fr
start: menu
language_skill: ""
prompts:
  menu:
    fr: "Pour les ventes tapez 1, pour le support tapez 2."
    en: "For sales press 1, for support press 2."
nodes:
  menu:
    type: menu
    prompt: menu
    options:
      1: ventes
      2: support
    on_failure: support
  ventes:
    type: queue
    queue: ventes
  support:
    type: queue
    queue: support
    priority: 1
"""
"""A two-way menu (1 ventes, 2 support with priority 1) for IVR tests."""


def connected(d: Daemon) -> bool:
    """Some caller of ``d`` is connected to an agent (a predicate for ``until``)."""
    return any(r.phase is Phase.CONNECTED for r in d.callpath.calls.values())


def ivr_test_scripts(folder: Path) -> Path:
    """``folder`` with the test menu and the shipped satisfaction survey."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_menu.yaml").write_text(TEST_MENU)
    survey = REPO / "ivr_scripts" / "enquete_satisfaction.yaml"
    (folder / "enquete_satisfaction.yaml").write_text(survey.read_text())
    return folder


@contextlib.asynccontextmanager
async def running_daemon(
    asterisk: AsteriskInstance,
    tmp_path: Path,
    site_text: str,
    *,
    database_url: str | None = None,
    scripts_dir: Path | None = None,
    auth: str = "off",
    contacts: bool = False,
    clock: Clock | None = None,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[Daemon]:
    """``auth`` "off" for call-path tests; "required" (needs a database) for CTI.
    ``contacts``: import the demo contacts into the CRM (needs a database)."""
    site = tmp_path / "site.yaml"
    site.write_text(site_text)
    settings = Settings.model_validate(
        {
            "ami": {
                "port": asterisk.ports.ami,
                "secret": asterisk.ami.secret,
                "ping_interval": 1.0,
                "ping_timeout": 1.0,
            },
            "agi": {"port": asterisk.ports.agi},
            "http": {"port": 0, "auth": auth},
            "site": {"file": str(site)},
            "recording": {
                "asterisk_dir": str(asterisk.sandbox.recordings_in_asterisk),
                "local_dir": str(asterisk.sandbox.recordings),
            },
            # Each test daemon has its own spool (never the working tree's var/spool).
            "database": {"url": database_url, "spool_dir": str(tmp_path / "spool")},
            "ivr": {"scripts_dir": str(scripts_dir or REPO / "ivr_scripts")},
            **(extra or {}),
        }
    )
    d = Daemon(settings, clock=clock)
    await d.start()
    try:
        if contacts:
            assert d.pool is not None, "contacts need a database"
            # The demo contacts (same customers as ivr_scripts/fixtures/crm.json).
            report = await import_csv(PgCrm(d.pool, settings.crm), DEMO_CONTACTS)
            assert not report.errors, report.errors
        await d.ami.wait_connected(10)
        yield d
    finally:
        await d.stop()


async def rest(
    d: Daemon, method: str, path: str, body: object = None, *, token: str | None = None
) -> tuple[int, Any]:
    """One REST call to the daemon: (status, decoded JSON body)."""
    url = f"http://127.0.0.1:{d.http.port}{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as reply,
    ):
        return reply.status, await reply.json()
