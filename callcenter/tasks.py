"""Owning asyncio tasks: cancel them and wait until they are really done.

``with suppress(CancelledError): await task`` is wrong twice over: it also
swallows the *caller's* cancellation, and a child may swallow its own (Python
3.11's ``wait_for`` can, when its inner future completes as it is cancelled),
leaving a task running with no owner. ``cancel_and_wait`` re-cancels until the
children are done, and re-raises the caller's cancellation afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

log = structlog.get_logger("callcenter.tasks")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | asyncio.Task[None]]) -> None:
    children = [t for t in tasks if t is not None]
    caller_cancelled = False
    while pending := [t for t in children if not t.done()]:
        for task in pending:
            task.cancel()
        try:
            await asyncio.wait(pending, timeout=1.0)
        except asyncio.CancelledError:
            caller_cancelled = True
    for task in children:
        if not task.cancelled() and task.exception() is not None:
            log.error("task.failed", task=task.get_name(), error=repr(task.exception()))
    if caller_cancelled:
        raise asyncio.CancelledError
