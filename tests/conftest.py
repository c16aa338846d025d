"""Shared fixtures for the three test tiers.

* Every async test runs under a guard: an exception that reaches the event
  loop's handler (a task that died unobserved, a failing callback) fails the
  test, and so does a task still pending when the test ends (every task must
  have an owner that cancels and awaits it).
* ``asterisk``: a private Asterisk 22 instance (own ports) for tier-3 tests.
* ``database_url``: a throw-away PostgreSQL cluster unless DATABASE_URL is set.
* Async tests run on uvloop, the loop ``callcenter run`` uses; those marked
  ``both_loops`` on the standard loop too (``bench/e2e_load.py --loop asyncio``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from callcenter.sandbox.asterisk import AsteriskPorts, AsteriskSandbox
from callcenter.sandbox.postgres import PostgresSandbox, free_port
from callcenter.testing.instances import AsteriskInstance
from callcenter.testing.sipp import free_udp_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.function):
            item.fixturenames.insert(0, "loop_guard")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.get_closest_marker("both_loops") is not None:
        return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def loop_guard() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    before = asyncio.all_tasks()
    yield
    # Give finishing tasks a few turns of the loop to complete.
    for _ in range(20):
        leftover = {
            t for t in asyncio.all_tasks() - before - {asyncio.current_task()} if not t.done()
        }
        if not leftover:
            break
        await asyncio.sleep(0.01)
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled exceptions reached the event loop: {errors}"
    leftover = {t for t in leftover if not t.done()}
    assert not leftover, f"tasks left running (no owner awaited them): {leftover}"


@pytest.fixture
def asterisk(asterisk_session: AsteriskInstance) -> Iterator[AsteriskInstance]:
    """The session's Asterisk, left without any channel after each test.

    Tests share one Asterisk; a test that fails mid-call must not leave a
    caller looping in the dialplan's retry loop, to be served by the next
    test's daemon (which would then see callers it never placed).
    """
    yield asterisk_session
    if asterisk_session.active_channels():
        asterisk_session.cli("channel request hangup all")
        deadline = time.monotonic() + 10
        while asterisk_session.active_channels() and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture(scope="session")
def asterisk_session() -> Iterator[AsteriskInstance]:
    """A private Asterisk instance for this test session.

    Agent phones have a static contact on 127.0.0.1:<phones_port> (start
    ``sipp_agents(..., port=asterisk.phones_port)``); the dialplan reaches
    FastAGI on 127.0.0.1:<ports.agi>.
    """
    phones_port = free_udp_port()
    rtp_base = 20000 + (os.getpid() % 200) * 100
    ports = AsteriskPorts(
        sip=free_udp_port(),
        ami=free_port(),
        rtp_start=rtp_base,
        rtp_end=rtp_base + 99,
        agi=free_port(),
        trunk=free_udp_port(),
        phones_contact=f"127.0.0.1:{phones_port}",
    )
    sandbox = AsteriskSandbox(
        f"test-{os.getpid()}",
        ports=ports,
        recordings=Path(tempfile.mkdtemp(prefix="cc-recordings-")),
    )
    creds = sandbox.start()
    try:
        yield AsteriskInstance(sandbox, creds, ports, phones_port)
    finally:
        sandbox.destroy()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    sandbox = PostgresSandbox(Path(tempfile.mkdtemp(prefix="cc-pg-")) / "data")
    try:
        yield sandbox.start()
    finally:
        sandbox.destroy()
