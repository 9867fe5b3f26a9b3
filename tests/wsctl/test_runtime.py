"""quiet_gc: the heap frozen and collections rare inside, everything restored after.
PacedCollector: collections on the loop's clock, a full one only when connections end."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from wsctl.runtime import NEVER, QUIET_THRESHOLDS, PacedCollector, quiet_gc


def test_quiet_gc_restores_the_thresholds_it_found_even_after_an_error() -> None:
    """Inside: frozen heap, quiet thresholds; after (an exception too): as before."""
    before = gc.get_threshold()
    with pytest.raises(KeyError), quiet_gc():
        assert gc.get_threshold() == QUIET_THRESHOLDS and gc.get_freeze_count() > 0
        raise KeyError("boom")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


# PacedCollector: the collector driven by the loop's clock (a long-running server's) -------


class _Node:
    """A cycle: only the cycle collector can free it."""

    def __init__(self) -> None:
        self.me = self


def _garbage_cycle(promote: bool) -> weakref.ref[_Node]:
    node = _Node()
    if promote:
        gc.collect(1)  # survives the young generations: it is old from now on
    return weakref.ref(node)


@pytest.fixture
def collector() -> Iterator[PacedCollector]:
    paced = PacedCollector(young=0.001, floor=10, rss=lambda: 100 * 2**20)
    before = gc.get_threshold()
    paced.install()
    try:
        yield paced
    finally:
        paced.uninstall()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_full_collection_is_wanted_when_a_share_of_the_connections_have_ended() -> None:
    """ended >= max(floor, share x open), or RSS doubled and grown by LEAK."""
    paced = PacedCollector(share=0.25, floor=1000, rss=lambda: 0)
    paced.rss_after_full = 200 * 2**20
    assert not paced.wants_full(open_now=10_000, ended_since=2_499, rss=0)
    assert paced.wants_full(open_now=10_000, ended_since=2_500, rss=0)
    assert not paced.wants_full(open_now=100, ended_since=999, rss=0)  # the floor
    assert paced.wants_full(open_now=100, ended_since=1000, rss=0)
    # a ramp doubles RSS without garbage: doubling alone is not enough, LEAK more is
    assert not paced.wants_full(open_now=0, ended_since=0, rss=400 * 2**20 + 1)
    assert paced.wants_full(open_now=0, ended_since=0, rss=200 * 2**20 + PacedCollector.LEAK)


def test_install_takes_automatic_collections_over_and_uninstall_gives_them_back() -> None:
    before = gc.get_threshold()
    paced = PacedCollector()
    paced.install()
    try:
        assert gc.get_threshold() == (PacedCollector.SAFETY, NEVER, NEVER)
        assert gc.get_freeze_count() > 0  # the start-up heap, out of every scan
        gc.collect(0)
        assert paced.collections[0] >= 1 and paced.longest[0] >= 0.0
    finally:
        paced.uninstall()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    runs = paced.collections[0]
    gc.collect(0)
    assert paced.collections[0] == runs  # no longer timing the process's collections


def test_inside_quiet_gc_the_collector_leaves_its_freeze_in_place() -> None:
    """Installed inside quiet_gc(), uninstall restores quiet_gc's thresholds and leaves
    the heap frozen for quiet_gc to unfreeze."""
    with quiet_gc():
        paced = PacedCollector()
        paced.install()
        paced.uninstall()
        assert gc.get_threshold() == QUIET_THRESHOLDS and gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_young_garbage_is_collected_on_the_loops_clock(
        collector: PacedCollector) -> None:
    """With automatic collection off, the young passes of run() free a new cycle."""
    gone = _garbage_cycle(promote=False)
    assert gone() is not None
    task = asyncio.create_task(collector.run(lambda: 0, lambda: 0))
    try:
        for _ in range(200):
            await asyncio.sleep(0.002)
            if gone() is None:
                break
        assert gone() is None
    finally:
        task.cancel()


async def test_old_garbage_waits_for_connections_to_end(collector: PacedCollector) -> None:
    """A cycle in the old generation stays until `floor` connections have ended, then the
    full collection (checked every 50 passes) frees it."""
    ended = [0]
    gone = _garbage_cycle(promote=True)
    task = asyncio.create_task(collector.run(lambda: 0, lambda: ended[0]))
    try:
        await asyncio.sleep(0.3)  # well over 50 passes of 1 ms
        assert gone() is not None and collector.collections[2] == 0
        ended[0] = 10
        for _ in range(300):
            await asyncio.sleep(0.002)
            if gone() is None:
                break
        assert gone() is None and collector.collections[2] == 1
        assert collector.ended_at_full == 10
    finally:
        task.cancel()
