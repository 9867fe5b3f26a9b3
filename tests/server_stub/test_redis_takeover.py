"""The redis:// store at thousands of streams, against a real redis-server: taking them
over costs round trips per batch, not per stream; leases are renewed by the clock while a
take-over runs; every stream becomes ready and no lease is lost; the catch-up check skips
the streams produced here."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Awaitable
from typing import Any

import pytest

from server_stub.stores.redis_store import RedisStreamStore
from server_stub.stores.redis_streams import Append, RedisStreams
from tests.redisproc import RedisProcess, redis_server, until  # noqa: F401

EVENTS = 3  # per stream, so that each mirror is read from Redis, not only its state


class FakeClock:
    """Monotonic time that moves only when told (here: by each Redis round trip)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def populate(url: str, streams: list[str]) -> None:
    """Give every stream EVENTS events in Redis, as another instance would have."""
    redis = RedisStreams(url)
    try:
        items = [Append(stream, json.dumps({"i": i})) for stream in streams
                 for i in range(1, EVENTS + 1)]
        for result in await redis.append_many(items):
            assert isinstance(result, tuple)
    finally:
        await redis.close()


def count_round_trips(store: RedisStreamStore, clock: FakeClock | None = None,
                      step: float = 0.0) -> list[str]:
    """Record one entry per Redis round trip the store makes (every one goes through
    ``RedisStreams._call``), advancing ``clock`` by ``step`` each."""
    trips: list[str] = []
    call = store.redis._call

    async def counted(op: Awaitable[Any]) -> Any:
        trips.append("trip")
        if clock is not None:
            clock.now += step
        return await call(op)

    store.redis._call = counted  # type: ignore[method-assign]
    return trips


async def test_takeover_costs_round_trips_per_batch(redis_server: RedisProcess) -> None:  # noqa: F811
    """Taking over 2,000 streams makes all of them ready in one pass with a few round trips
    per 500 streams (not several per stream), each mirror caught up to Redis's head."""
    streams = [f"s{i}" for i in range(2000)]
    await populate(redis_server.url, streams)
    store = RedisStreamStore(redis_server.url, hot_events=2, batch=500, clock=FakeClock())
    try:
        for stream in streams:
            assert not store.produces(stream)
        trips = count_round_trips(store)
        await store._leases_pass()
        assert all(store.produces(stream) for stream in streams)
        # acquire + per batch (states, reads) + at most one renewal per batch
        assert len(trips) <= 2 + 3 * math.ceil(len(streams) / 500)
        assert {store.head(stream) for stream in streams} == {EVENTS}
        assert [e.offset for e in store.read("s1999", 0)] == [EVENTS - 1, EVENTS]
    finally:
        await store.close()


async def test_leases_renewed_by_the_clock_during_a_takeover(
        redis_server: RedisProcess) -> None:  # noqa: F811
    """With every round trip taking 0.4 s (fake clock), the held leases are renewed between
    batches no more than one batch's time late, so the 3 s TTL never runs out mid
    take-over; every lease is still ours in Redis afterwards."""
    streams = [f"s{i}" for i in range(3000)]
    await populate(redis_server.url, streams)
    clock = FakeClock()
    store = RedisStreamStore(redis_server.url, batch=500, clock=clock, lease_renew=1.0)
    try:
        for stream in streams:
            store.produces(stream)
        count_round_trips(store, clock, step=0.4)
        renewals: list[tuple[float, int]] = []
        renew = store.leases.renew

        async def recorded() -> set[str]:
            renewals.append((clock.now, len(store.leases.held)))
            return await renew()

        store.leases.renew = recorded  # type: ignore[method-assign]
        await store._leases_pass()
        assert len(store._ready) == len(streams)
        times = [t for t, _ in renewals]
        assert len(times) >= 3, renewals
        batch_time = 2 * 0.4  # states + reads
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap <= 1.0 + batch_time + 0.4 for gap in gaps), times
        assert clock.now - times[-1] <= 1.0 + batch_time, (clock.now, times)
        assert all(held == len(streams) for _, held in renewals[1:]), renewals
        holders = await store.redis.client.mget([store.redis.keys(s)[2] for s in streams])
        assert [h.decode() for h in holders] == [store.leases.held[s] for s in streams]
    finally:
        await store.close()


async def test_thousands_of_streams_ready_and_kept(redis_server: RedisProcess) -> None:  # noqa: F811
    """A running store that wants 5,000 streams (1.2 s lease TTL) produces all of them
    within 10 s and then keeps every one through six renew periods: no lease lost."""
    streams = [f"s{i}" for i in range(5000)]
    store = RedisStreamStore(redis_server.url, lease_ttl=1.2, lease_renew=0.3)
    await store.open()
    try:
        await populate(redis_server.url, streams)  # made by another instance since open
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while sum(store.produces(s) for s in streams) < len(streams):
            assert loop.time() < deadline, f"{len(store._ready)} of {len(streams)} ready"
            await asyncio.sleep(0.1)
        tokens = dict(store.leases.held)
        kept_until = loop.time() + 2.0
        while loop.time() < kept_until:
            assert len(store._ready) == len(streams)
            await asyncio.sleep(0.1)
        assert store.leases.held == tokens
    finally:
        await store.close()


async def test_check_skips_streams_produced_here(redis_server: RedisProcess) -> None:  # noqa: F811
    """The catch-up check reads the state of streams mirrored here but held elsewhere (and
    catches them up), never of the ones whose lease this instance holds."""
    await populate(redis_server.url, ["mine", "theirs"])
    store = RedisStreamStore(redis_server.url, clock=FakeClock())
    try:
        store.produces("mine")
        await store.refresh("theirs")
        await store._leases_pass()
        assert store.produces("mine") and store.head("theirs") == EVENTS
        await populate(redis_server.url, ["theirs"])  # another instance appends, unheard
        asked: list[list[str]] = []
        states = store.redis.states

        async def recorded(names: Any) -> Any:
            asked.append(list(names))
            return await states(names)

        store.redis.states = recorded  # type: ignore[method-assign]
        await store._check()
        assert asked == [["theirs"]]
        assert store.head("theirs") == 2 * EVENTS
    finally:
        await store.close()


@pytest.mark.parametrize("items", [1, 250])
async def test_group_append_is_heard_event_by_event(redis_server: RedisProcess,  # noqa: F811
                                                    items: int) -> None:
    """Events appended together (one message per script call) reach a follower one by
    one, in order, with their exact frames."""
    from server_stub.stores.redis_streams import RedisFollower
    from server_stub.streams import StoredEvent

    redis = RedisStreams(redis_server.url)
    heard: list[tuple[str, StoredEvent]] = []

    async def on_event(stream: str, epoch: str, event: StoredEvent, state: str) -> None:
        heard.append((stream, event))

    follower = RedisFollower(redis, on_event)
    task = asyncio.create_task(follower.run())
    try:
        await until(lambda: follower.connected)
        results = await redis.append_many(
            [Append(f"g{i % 3}", json.dumps({"i": i})) for i in range(items)])
        await until(lambda: len(heard) == items)
    finally:
        follower.stop()
        await task
        await redis.close()
    expected = [(f"g{i % 3}", r[0]) for i, r in enumerate(results)]  # type: ignore[index]
    assert heard == expected
