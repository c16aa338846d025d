"""The serving process's garbage-collector policy (callcenter.heap)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from callcenter.heap import serving_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def old_cycle() -> weakref.ref[Node]:
    """A reference cycle promoted to the oldest generation, then dropped:
    only a full collection frees it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    keep = [a]
    gc.collect(1)  # survivors of the young generations move to the oldest
    ref = weakref.ref(a)
    del keep, a, b
    gc.collect(1)
    return ref


async def test_full_collections_run_on_the_clock_not_on_promotions() -> None:
    before = gc.get_threshold()
    async with serving_heap(interval=0.05):
        assert gc.get_freeze_count() > 0  # the start-up heap is never walked again
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] > 1_000_000  # no automatic full collection
        ref = old_cycle()
        assert ref() is not None  # the young collections do not see it
        for _ in range(100):
            if ref() is None:
                break
            await asyncio.sleep(0.01)
        assert ref() is None  # the periodic full collection freed it
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
