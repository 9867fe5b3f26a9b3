"""The Redis layer of the redis:// store against a real redis-server: offsets, trimming,
fencing by lease, and delivery of events produced by another instance."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest

from server_stub.stores.redis_streams import (
    Append,
    LeaseLost,
    Leases,
    RedisFollower,
    RedisStreams,
    Refused,
    StoreUnavailable,
    check_url,
)
from server_stub.streams import StoredEvent
from tests.redisproc import RedisProcess, redis_server, until  # noqa: F401
from wsctl.errors import InvalidInput
from wsctl.protocol import encode_event


class WallClock:
    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def streams(redis_server: RedisProcess) -> AsyncIterator[RedisStreams]:  # noqa: F811
    store = RedisStreams(redis_server.url, max_events=5, max_age=10.0, wall=WallClock())
    yield store
    await store.close()


def data(step: int) -> str:
    return json.dumps({"step": step}, separators=(",", ":"))


async def test_offsets_contiguous_and_frames_exact(streams: RedisStreams) -> None:
    """Appends number 1, 2, 3 with no holes, and each stored frame is encode_event's text."""
    events = [(await streams.append("a", data(i)))[0] for i in range(1, 4)]
    assert [e.offset for e in events] == [1, 2, 3]
    now = streams._wall()
    assert events[1].frame == encode_event(2, now, data(2)).encode()
    read = await streams.read("a", 0)
    assert read == events
    assert (await streams.state("a")).head == 3


async def test_concurrent_appends_never_leave_a_hole(streams: RedisStreams) -> None:
    """Offsets from appends racing on two connections are exactly 1..N."""
    other = RedisStreams(streams.url, max_events=100, wall=streams._wall)
    try:
        results = await asyncio.gather(*(
            (streams if i % 2 else other).append("race", data(i)) for i in range(40)))
    finally:
        await other.close()
    assert sorted(event.offset for event, _ in results) == list(range(1, 41))


async def test_replay_after_offset(streams: RedisStreams) -> None:
    """read(after=N) returns exactly the events after N, honouring limit."""
    for i in range(1, 5):
        await streams.append("a", data(i))
    assert [e.offset for e in await streams.read("a", 2)] == [3, 4]
    assert [e.offset for e in await streams.read("a", 0, limit=2)] == [1, 2]
    assert await streams.read("a", 4) == []


async def test_trimmed_by_size(streams: RedisStreams) -> None:
    """Past max_events the oldest go: 8 appends keep exactly offsets 4..8."""
    for i in range(1, 9):
        await streams.append("a", data(i))
    assert [e.offset for e in await streams.read("a", 0)] == [4, 5, 6, 7, 8]
    assert await streams.first("a") == 4


async def test_trimmed_by_age(streams: RedisStreams) -> None:
    """Events older than max_age are neither replayed nor kept once the next append runs."""
    clock = streams._wall
    assert isinstance(clock, WallClock)
    await streams.append("a", data(1))
    await streams.append("a", data(2))
    clock.now += 6
    await streams.append("a", data(3))
    clock.now += 6  # events 1 and 2 are now 12 s old
    assert [e.offset for e in await streams.read("a", 0)] == [3]
    assert await streams.first("a") == 3
    await streams.append("a", data(4))
    assert await streams.client.xlen(streams.keys("a")[0]) == 2


async def test_epoch_stable_until_deleted(streams: RedisStreams) -> None:
    """The epoch outlives the client; deleting the stream starts a new one at offset 1."""
    epoch = await streams.epoch("a")
    event, appended_epoch = await streams.append("a", data(1))
    assert appended_epoch == epoch
    again = RedisStreams(streams.url)
    try:
        assert await again.epoch("a") == epoch
    finally:
        await again.close()
    await streams.delete("a")
    event, new_epoch = await streams.append("a", data(1))
    assert new_epoch != epoch and event.offset == 1


async def test_producer_state_kept_with_the_event(streams: RedisStreams) -> None:
    """The producer state given with an append is what state() reads back."""
    await streams.append("a", data(1), state_json='{"job":3,"step":41}')
    state = await streams.state("a")
    assert (state.state, state.last, state.head) == ('{"job":3,"step":41}', data(1), 1)


async def test_stale_offset_or_epoch_is_refused(streams: RedisStreams) -> None:
    """An append expecting another head or epoch adds nothing; history lost under a
    producer (no epoch in Redis, offset past 1) is refused too."""
    _, epoch = await streams.append("a", data(1))
    results = await streams.append_many([
        Append("a", data(2), epoch=epoch, offset=3),
        Append("a", data(2), epoch="other", offset=2),
        Append("gone", data(9), epoch="old", offset=9),
        Append("a", data(2), epoch=epoch, offset=2)])
    assert [isinstance(r, Refused) for r in results] == [True, True, True, False]
    assert (await streams.state("a")).head == 2 and (await streams.state("gone")).epoch is None


async def test_trim_upto(streams: RedisStreams) -> None:
    """trim(upto) forgets offsets <= upto and nothing after."""
    for i in range(1, 5):
        await streams.append("a", data(i))
    assert await streams.trim("a", 2) == 2
    assert [e.offset for e in await streams.read("a", 0)] == [3, 4]


async def test_stale_lease_holder_cannot_append(streams: RedisStreams) -> None:
    """Once another token holds the lease, an append with the old token is refused and
    adds no offset (fencing)."""
    assert await streams.acquire("a", "A:1", ttl=0.2)
    await streams.append("a", data(1), token="A:1")
    assert not await streams.acquire("a", "B:1")
    await asyncio.sleep(0.3)  # A stalls past its TTL
    assert await streams.acquire("a", "B:1")
    with pytest.raises(LeaseLost):
        await streams.append("a", data(2), token="A:1")
    event, _ = await streams.append("a", data(2), token="B:1")
    assert event.offset == 2


async def test_group_append_reports_per_item(streams: RedisStreams) -> None:
    """append_many: one round trip, a fenced item fails alone, the others get offsets."""
    await streams.acquire("b", "other:1")
    results = await streams.append_many(
        [Append("a", data(1)), Append("b", data(1), token="me:1"), Append("a", data(2))])
    assert isinstance(results[1], LeaseLost)
    assert [r[0].offset for r in (results[0], results[2])] == [1, 2]  # type: ignore[index]


async def test_leases_taken_over_after_holder_dies(streams: RedisStreams) -> None:
    """A second instance takes a stream within the TTL of its holder going silent, and the
    holder learns it lost it on its next tick; a released lease is taken at once."""
    a = Leases(streams, "A", ttl=0.3)
    b = Leases(streams, "B", ttl=0.3)
    assert (await a.tick({"s", "t"}))[0] == {"s", "t"}
    assert (await b.tick({"s", "t"}))[0] == set()
    await asyncio.sleep(0.4)  # A stops renewing (dead or paused)
    gained, _ = await b.tick({"s", "t"})
    assert gained == {"s", "t"}
    _, lost = await a.tick({"s", "t"})
    assert lost == {"s", "t"} and not a.held
    await b.tick({"t"})  # B no longer wants s: released, A gets it without waiting
    assert (await a.tick({"s"}))[0] == {"s"}


async def test_follower_hears_every_append(streams: RedisStreams) -> None:
    """Every append made through another client reaches the follower, in order, with its
    epoch, exact frame and producer state."""
    heard: list[tuple[str, str, StoredEvent, str]] = []

    async def on_event(stream: str, epoch: str, event: StoredEvent, state: str) -> None:
        heard.append((stream, epoch, event, state))

    follower = RedisFollower(streams, on_event)
    task = asyncio.create_task(follower.run())
    try:
        await until(lambda: follower.connected)
        producer = RedisStreams(streams.url, max_events=5, wall=streams._wall)
        appended = [await producer.append("a", data(i), state_json=f'{{"i":{i}}}')
                    for i in range(1, 4)]
        await producer.close()
        await until(lambda: len(heard) == 3)
    finally:
        follower.stop()
        await task
    assert [(h[2], h[1]) for h in heard] == appended
    assert [h[3] for h in heard] == ['{"i":1}', '{"i":2}', '{"i":3}']


async def test_redis_gone_is_store_unavailable(redis_server: RedisProcess) -> None:  # noqa: F811
    """With Redis stopped, operations raise StoreUnavailable naming the URL; they work
    again once it is back."""
    store = RedisStreams(redis_server.url, timeout=0.5)
    try:
        await store.append("a", data(1))
        redis_server.stop()
        with pytest.raises(StoreUnavailable, match=redis_server.url):
            await store.append("a", data(2))
        redis_server.start()
        event, _ = await store.append("a", data(1))
        assert event.offset == 1  # a fresh (empty) Redis: a new history
    finally:
        await store.close()


def test_bad_url_is_invalid_input() -> None:
    """A store URL that is not redis://HOST:PORT/DB is refused with the expected form."""
    assert check_url("redis://127.0.0.1:6379/0")
    for bad in ("http://x:1/0", "redis:///0", "redis://h:99999/0", "redis://h:1/x"):
        with pytest.raises(InvalidInput, match="redis://HOST:PORT/DB"):
            check_url(bad)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis-py, using the store says in one line how to install it."""
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(InvalidInput, match=r"pip install 'wsctl\[redis\]'"):
        RedisStreams("redis://127.0.0.1:6379/0")


async def test_age_trim_past_one_batch(redis_server: RedisProcess) -> None:  # noqa: F811
    """More stale events than the script reads at once (64) all go in one append."""
    clock = WallClock()
    store = RedisStreams(redis_server.url, max_events=500, max_age=10.0, wall=clock)
    try:
        await store.append_many([Append("a", data(i)) for i in range(150)])
        clock.now += 11
        event, _ = await store.append("a", data(151))
        assert await store.client.xlen(store.keys("a")[0]) == 1
        assert event.offset == 151 and await store.first("a") == 151
    finally:
        await store.close()
