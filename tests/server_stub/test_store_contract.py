"""The StreamStore contract, held for every store kind (stores/base.py).

A new kind joins by adding one maker to ``MAKERS``: ``(tmp_path, max_events, max_age,
wall) -> an unopened store``. Each test opens the store, drives it through the manager's
own resume path (``WebSocketManager.prefetch`` then ``plan_resume``) and closes it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from server_stub.connection_pool import ConnectionPool
from server_stub.jobs import JobSchedule
from server_stub.stores import MemoryStreamStore, StreamStore
from server_stub.stores.sqlite import SqliteStreamStore
from server_stub.websocket_manager import ResumePlan, ResumeRequest, WebSocketManager, plan_resume
from tests.redisproc import shared_redis
from wsctl import protocol as p

Wall = Callable[[], float]
Maker = Callable[[Path, int, float, Wall], StreamStore]

MAKERS: dict[str, Maker] = {
    "memory": lambda tmp, n, age, wall: MemoryStreamStore(n, age, wall=wall),
    # hot window of 2 events: most gaps below are read from the file
    "sqlite": lambda tmp, n, age, wall: SqliteStreamStore(tmp / "s.db", n, age, hot_events=2,
                                                          wall=wall),
    # synchronous=full: commits on the writer thread instead of inline
    "sqlite-full": lambda tmp, n, age, wall: SqliteStreamStore(
        tmp / "s.db", n, age, hot_events=2, synchronous="full", wall=wall),
    # a private key prefix per store on one redis-server; hot window of 2 as for sqlite
    "redis": lambda tmp, n, age, wall: _redis_store(n, age, wall),
}


def _redis_store(max_events: int, max_age: float, wall: Wall) -> StreamStore:
    from server_stub.stores.redis_store import RedisStreamStore

    return RedisStreamStore(shared_redis().url, max_events, max_age, hot_events=2, wall=wall,
                            prefix=f"t{next(_prefixes)}")


_prefixes = itertools.count()


class Wall_:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=sorted(MAKERS))
async def open_store(request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[Callable[..., Any]]:
    """Open stores of the parametrised kind; closed after the test."""
    stores: list[StreamStore] = []

    async def make(max_events: int = 100, max_age: float = 60.0,
                   wall: Wall | None = None) -> StreamStore:
        store = MAKERS[request.param](tmp_path, max_events, max_age, wall or Wall_())
        await store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def _append(store: StreamStore, stream: str, n: int, first: int = 1) -> list[bytes]:
    frames = [store.append(stream, {"i": i}).frame for i in range(first, first + n)]
    await store.commit()
    return frames


async def _resume(store: StreamStore, stream: str, offset: int,
                  epoch: str | None = None) -> ResumePlan:
    """Resume as the manager does: prefetch what is outside memory, then plan in one step."""
    manager = WebSocketManager(store, ConnectionPool(), JobSchedule(1.0, 10),
                               heartbeat=p.Heartbeat(1, 1))
    request = ResumeRequest(stream, epoch or store.epoch(stream), offset)
    return plan_resume(store, request, True, await manager.prefetch(request))


async def test_offsets_are_contiguous_from_one(open_store):
    """Appended events get offsets 1, 2, 3 ... with no hole; head is the last committed."""
    store = await open_store()
    events = [store.append("a", {"i": i}) for i in range(5)]
    await store.commit()
    assert [e.offset for e in events] == [1, 2, 3, 4, 5]
    assert store.head("a") == 5
    assert store.head("b") == 0
    assert [e.offset for e in await store.read_history("a", 0)] == [1, 2, 3, 4, 5]


async def test_resume_replays_exactly_the_gap(open_store):
    """A resume from offset 3 of 12 replays frames 4..12, byte for byte, in order."""
    store = await open_store()
    frames = await _append(store, "a", 12)
    plan = await _resume(store, "a", 3)
    assert plan.recovered and plan.reason == "replayed"
    assert [e.offset for e in plan.replay] == list(range(4, 13))
    assert [e.frame for e in plan.replay] == frames[3:]
    assert json.loads(frames[3])["data"] == {"i": 4}
    assert (await _resume(store, "a", 12)).replay == []


async def test_trimmed_by_size(open_store):
    """With 4 events kept, a gap from offset 5 of 10 is replayed; from offset 4 it is a
    resync with the snapshot of the head."""
    store = await open_store(max_events=4)
    await _append(store, "a", 10)
    assert [e.offset for e in (await _resume(store, "a", 6)).replay] == [7, 8, 9, 10]
    plan = await _resume(store, "a", 5)
    assert not plan.recovered and plan.reason == "history trimmed"
    assert plan.snapshot is not None
    assert json.loads(plan.snapshot) == {"offset": 10, "data": {"i": 10}}


async def test_trimmed_by_age_on_a_fake_wall_clock(open_store):
    """Events older than max_age are gone: a gap that needs one is a resync, one that
    starts after them is replayed."""
    wall = Wall_()
    store = await open_store(max_events=100, max_age=10.0, wall=wall)
    for i in range(1, 7):  # offsets 1..6 at t = +0, +2, ... +10
        store.append("a", {"i": i})
        await store.commit()
        wall.t += 2.0
    wall.t = 1000.0 + 15.0  # cutoff 1005: offsets 1..3 (t 1000, 1002, 1004) are too old
    assert not (await _resume(store, "a", 2)).recovered
    plan = await _resume(store, "a", 3)
    assert plan.recovered and [e.offset for e in plan.replay] == [4, 5, 6]


async def test_other_epoch_or_offset_ahead_is_a_resync(open_store):
    """A resume with another epoch, or past the head, is recovered: false with a snapshot."""
    store = await open_store()
    await _append(store, "a", 3)
    plan = await _resume(store, "a", 1, epoch="not-this-one")
    assert (plan.recovered, plan.reason) == (False, "epoch changed")
    assert json.loads(plan.snapshot or "")["offset"] == 3
    assert (await _resume(store, "a", 4)).reason == "offset ahead of stream"


async def test_dropped_stream_starts_a_new_epoch(open_store):
    """After drop, the stream starts again at offset 1 under an epoch never used before."""
    store = await open_store()
    old = store.epoch("a")
    await _append(store, "a", 3)
    store.drop("a")
    await store.commit()
    assert store.head("a") == 0
    assert store.epoch("a") != old
    assert [e.offset for e in [store.append("a", {})]] == [1]
    await store.commit()
    assert (await _resume(store, "a", 2, epoch=old)).reason == "epoch changed"


async def test_ack_trim_keeps_offsets_going(open_store):
    """Trimming acknowledged events never changes the offsets that follow."""
    store = await open_store()
    await _append(store, "a", 5)
    store.trim("a", 3)
    await store.commit()
    assert [e.offset for e in await _append_events(store, "a", 2)] == [6, 7]
    assert [e.offset for e in (await _resume(store, "a", 3)).replay] == [4, 5, 6, 7]


async def _append_events(store: StreamStore, stream: str, n: int) -> list[Any]:
    events = [store.append(stream, {"i": i}) for i in range(n)]
    await store.commit()
    return events
