"""Tier 3 in a real browser: the agent desktop and the supervisor wallboard.

Debian's Chromium, driven by Playwright, against a daemon with
authentication on, the sandbox Asterisk, sipp callers and sipp phones. An
agent logs in and goes ready; a sipp call arrives; the screen-pop shows the
CRM name; the agent sets a disposition; a supervisor sees the agent on call
and starts a whisper, and a real ChanSpy channel appears in Asterisk.
Screenshots are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from callcenter.callpath.service import Phase
from callcenter.daemon import Daemon
from callcenter.protocol.ami_events import ChanSpyStart
from callcenter.store.users import seed_site_users
from callcenter.testing.daemons import REPO, connected, running_daemon
from callcenter.testing.databases import fresh_database
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import sipp_agents, sipp_caller
from callcenter.testing.waiting import until

pytestmark = pytest.mark.asterisk

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    # Never a skip: `make setup` installs Debian's chromium package.
    raise RuntimeError(f"{CHROMIUM} is missing: run `make setup`")
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "pw-desktop"

SITE = """
queues:
  support:
    skills: {support: 1}
    language: fr
    ring_timeout: 15
    wrapup: 60
    first_announce_after: 60
routes:
  '3901': {queue: support}
agents:
  a01: {name: Claire Agent, endpoint: agent11, skills: {support: 5}}
supervisors:
  s1: {name: Sophie Superviseure, endpoint: supervisor1}
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def sign_in(page: Page, d: Daemon, path: str, login: str) -> None:
    await page.goto(f"http://127.0.0.1:{d.http.port}{path}")
    await page.fill("#login", login)
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    await expect(page.locator("#connection")).to_have_attribute("data-status", "connected")


async def test_agent_desktop_and_supervisor_wallboard_on_a_real_call(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str, browser: Browser
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    spies: list[ChanSpyStart] = []
    url = await fresh_database(database_url)
    async with (
        running_daemon(
            asterisk, tmp_path, SITE, database_url=url, auth="required", contacts=True
        ) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=1500, talk_ms=12000),
    ):
        assert d.users is not None
        await seed_site_users(d.users, d.site, PASSWORD)
        d.ami.subscribe(lambda item: spies.append(item) if isinstance(item, ChanSpyStart) else None)

        agent_page = await (await browser.new_context(locale="fr-FR")).new_page()
        await sign_in(agent_page, d, "/desktop", "a01")
        await agent_page.click("#btn-login")
        await expect(agent_page.locator("#state")).to_have_attribute("data-state", "ready")
        assert d.acd.agent_state("a01") == "ready"

        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: d.acd.agent_state("a01") == "reserved", what="agent rings")
            rang = time.monotonic()
            name = agent_page.locator("#screenpop-name")
            await expect(name).to_have_text("Mme Claire Martin", timeout=5_000)
            screen_pop_s = time.monotonic() - rang
            assert screen_pop_s < 1.0, f"screen-pop took {screen_pop_s:.2f} s"
            await expect(agent_page.locator("#vip")).to_be_visible()
            await expect(agent_page.locator("#screenpop-number")).to_have_text("0612345678")

            await until(lambda: connected(d), what="answered")
            [record] = [r for r in d.callpath.calls.values() if r.phase is Phase.CONNECTED]
            await expect(agent_page.locator("#state")).to_have_attribute("data-state", "on_call")

            await agent_page.select_option("#disposition-code", "resolved")
            await agent_page.fill("#disposition-notes", "Facture expliquée, cliente satisfaite.")
            await agent_page.click("#disposition-save")
            await expect(agent_page.locator("#disposition-result")).not_to_be_empty()
            assert record.disposition == "resolved"
            assert record.notes == "Facture expliquée, cliente satisfaite."
            await agent_page.screenshot(path=str(ARTIFACTS / "desktop.png"), full_page=True)

            board = await (await browser.new_context(locale="fr-FR")).new_page()
            await sign_in(board, d, "/wallboard", "s1")
            row = board.locator('#agents tr[data-agent="a01"]')
            await expect(row).to_have_attribute("data-state", "on_call")
            await expect(board.locator('#queues tr[data-queue="support"]')).to_be_visible()
            live = board.locator('#calls tr[data-phase="connected"]')
            await expect(live).to_have_count(1)
            await expect(live).to_contain_text("0612345678")
            await board.click('button[data-action="whisper"][data-agent="a01"]')
            await until(lambda: spies, what="a ChanSpy channel in Asterisk")
            assert spies[0].spyee.uniqueid == record.agent_leg
            assert spies[0].spyer.channel.startswith("PJSIP/supervisor1-")
            await expect(board.locator("#notice")).not_to_be_empty()
            await board.screenshot(path=str(ARTIFACTS / "wallboard.png"), full_page=True)

            result = await caller.wait(timeout=40)
            assert result.ok, result.errors or result.stderr
        await expect(agent_page.locator("#state")).to_have_attribute("data-state", "wrap_up")
        await expect(row).to_have_attribute("data-state", "wrap_up")
        # The pause reason reads in the page's language, on both screens.
        await agent_page.select_option("#pause-reason", "lunch")
        await agent_page.click("#btn-pause")
        await expect(agent_page.locator("#state")).to_have_text("En pause (Déjeuner)")
        await expect(row).to_contain_text("En pause (Déjeuner)")


TWO_AGENTS_SITE = """
queues:
  support: {skills: {support: 1}, ring_timeout: 15, wrapup: 60, first_announce_after: 60}
routes:
  '3901': {queue: support}
agents:
  a01: {name: Claire Agent, endpoint: agent11, skills: {support: 5}}
  a02: {name: Paul Agent, endpoint: agent12, skills: {support: 5}}
"""


async def test_a_call_transferred_from_the_desktop_brings_its_notes_to_the_next_agent(
    asterisk: AsteriskInstance, tmp_path: Path, database_url: str, browser: Browser
) -> None:
    url = await fresh_database(database_url)
    async with (
        running_daemon(
            asterisk, tmp_path, TWO_AGENTS_SITE, database_url=url, auth="required", contacts=True
        ) as d,
        sipp_agents(asterisk.ports.sip, port=asterisk.phones_port, answer_ms=1500, talk_ms=12000),
    ):
        assert d.users is not None
        await seed_site_users(d.users, d.site, PASSWORD)
        pages = {}
        for agent_id in ("a01", "a02"):
            page = await (await browser.new_context(locale="fr-FR")).new_page()
            await sign_in(page, d, "/desktop", agent_id)
            pages[agent_id] = page
        first, second = pages["a01"], pages["a02"]
        ARTIFACTS.mkdir(exist_ok=True)
        await first.click("#btn-login")
        await expect(first.locator("#state")).to_have_attribute("data-state", "ready")
        async with sipp_caller(asterisk.ports.sip, "3901") as caller:
            await until(lambda: connected(d), what="a01 on the call")
            await expect(first.locator("#state")).to_have_attribute("data-state", "on_call")
            await first.select_option("#disposition-code", "resolved")
            await first.fill("#disposition-notes", "Identité vérifiée, veut résilier.")
            await first.click("#disposition-save")
            await expect(first.locator("#disposition-result")).not_to_be_empty()
            await second.click("#btn-login")
            await expect(second.locator("#state")).to_have_attribute("data-state", "ready")
            # a01 sends the caller to a02 from the transfer panel.
            await first.select_option("#xfer-kind", "agent")
            await first.select_option("#xfer-agent", "a02")
            await first.click("#btn-blind")
            await expect(first.locator("#transfer-result")).not_to_be_empty()
            # a02's screen-pop: who sent the call, and that agent's notes.
            await expect(second.locator("#screenpop-transferred-by")).to_have_text(
                "Claire Agent (a01)", timeout=10_000
            )
            await expect(second.locator("#screenpop-notes")).to_have_text(
                "Identité vérifiée, veut résilier."
            )
            await expect(second.locator("#screenpop-name")).to_have_text("Mme Claire Martin")
            await second.screenshot(path=str(ARTIFACTS / "desktop-transferred.png"), full_page=True)
            await caller.wait(timeout=40)
