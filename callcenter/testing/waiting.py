"""Waiting in tests for something that happens elsewhere (Asterisk, a daemon)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(
    predicate: Callable[[], object], timeout: float = 20.0, what: str = "", poll: float = 0.05
) -> None:
    """Return once ``predicate()`` is true; fail the test after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in time: {what or 'condition'}")
        await asyncio.sleep(poll)
