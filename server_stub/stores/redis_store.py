"""RedisStreamStore: streams shared by several server instances through one Redis database
(``--store redis://HOST:PORT/DB``). The Redis side is stores/redis_streams.py.

Each instance mirrors what it needs in memory: per stream the epoch, head, latest data and
producer state, and a small hot window of events (``hot_events``); older events are read
from Redis when a resume needs them (``read_history``). The mirror follows Redis: every
append any instance makes is published, heard here (``RedisFollower``), and handed to
``watch``'s ``deliver`` (the manager sends it to this instance's clients); a periodic check
catches up a stream whose head moved with no notification heard.

One instance at a time produces a stream: ``produces(stream)`` is True only while this
instance holds the stream's lease. Leases are taken and renewed every ``lease_renew`` s
with a TTL of ``lease_ttl`` s; a dead holder's streams are taken over within the TTL
plus one attempt interval. Appends carry the lease token, the epoch and the offset the
producer assigned; Redis refuses an append whose token, epoch or head is stale, and the
event is dropped unsent (the manager sends only events at or below ``head``).

Durability: an event is sent once Redis has executed its append (one pipelined round trip
for a tick's events). It then survives the server process dying. Surviving a Redis
restart is Redis's persistence: ``appendonly yes`` with ``appendfsync everysec`` can lose
about the last second, ``appendfsync always`` nothing acknowledged; with persistence off
a Redis restart loses every stream, and clients get a new epoch (``recovered: false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server_stub.stores.base import StoredEvent, compact_json
from server_stub.stores.memory import LogStore, _Log, make_event
from server_stub.stores.redis_streams import (
    LEASE_RENEW,
    LEASE_TTL,
    Append,
    LeaseLost,
    Leases,
    RedisFollower,
    RedisStreams,
    Refused,
    StoreUnavailable,
    StreamState,
    check_url,
)
from wsctl.errors import RunFailed

log = logging.getLogger("server_stub")

HOT_EVENTS = 8
CHECK_PERIOD = 1.0  # s between catch-up checks of the streams another instance produces
BATCH = 500  # streams read (or checked) per pipelined round trip
_DATA = b',"data":'

Deliver = Callable[[str, list[StoredEvent]], None]
Reset = Callable[[str], None]


class _Mirror(_Log):
    """What this instance holds of one stream (``_Log``: head is the committed head)."""

    __slots__ = ("appended", "state")

    def __init__(self, epoch: str, head: int = 0) -> None:
        super().__init__(epoch, head)
        self.appended = head  # the last offset appended here, committed or not
        self.state: str | None = None  # producer state JSON with the last event


def parse_redis(spec: str) -> Callable[[int, float], RedisStreamStore]:
    """Check ``redis://HOST:PORT/DB`` and return a maker of the store (``max_events``,
    ``max_age``); InvalidInput in one line when it is wrong. redis-py is imported only
    when the store is made."""
    url = check_url(spec)

    def make(max_events: int, max_age: float) -> RedisStreamStore:
        return RedisStreamStore(url, max_events, max_age)

    return make


class RedisStreamStore(LogStore[_Mirror]):
    """Shared durable store in Redis; see the module docstring for its promise."""

    commit_window = 0.002  # events due within 2 ms share one round trip

    def __init__(self, url: str, max_events: int = 1000, max_age: float = 120.0, *,
                 hot_events: int = HOT_EVENTS, wall: Callable[[], float] = time.time,
                 prefix: str = "wsctl", lease_ttl: float = LEASE_TTL,
                 lease_renew: float = LEASE_RENEW, instance: str | None = None,
                 clock: Callable[[], float] = time.monotonic, batch: int = BATCH) -> None:
        super().__init__(max_age, wall)
        self.url = url
        self.max_events = max_events
        self.hot_events = min(hot_events, max_events)
        self.redis = RedisStreams(url, max_events=max_events, max_age=max_age, prefix=prefix,
                                  wall=wall)
        self.leases = Leases(self.redis, instance, lease_ttl)
        self.lease_renew = lease_renew
        self.batch = batch
        self._clock = clock
        self._renew_at = float("-inf")  # when (self._clock) the held leases are next renewed
        self.follower = RedisFollower(self.redis, self._published)
        self._pending: list[tuple[str, _Mirror, StoredEvent, str, str]] = []
        self._drops: list[tuple[str, str]] = []
        self._wanted: set[str] = set()  # streams whose job runs here (produces() asked)
        self._ready: set[str] = set()  # leases held and mirror brought up to date
        self._deliver: Deliver | None = None
        self._reset: Reset | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._size = 0
        self.error: str | None = None  # why the last Redis operation failed, until one works
        self.commits = 0
        self.commit_seconds = 0.0

    def __repr__(self) -> str:
        return (f"RedisStreamStore({self.url!r}, max_events={self.max_events}, "
                f"max_age={self.max_age}, instance={self.leases.instance!r})")

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._tasks:
            return
        try:
            await self.redis.ping()
            await self._refresh(await self.redis.names())
        except StoreUnavailable as exc:
            await self.redis.close()
            raise RunFailed(f"--store {self.url}: cannot reach Redis: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._tasks = [loop.create_task(self.follower.run()),
                       loop.create_task(self._lease_loop()),
                       loop.create_task(self._check_loop())]

    async def close(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self.commit()
        # Stopped, not cancelled: a command cancelled mid-read drops its connection
        # without closing it properly. Each loop ends at its next pause.
        self._stop.set()
        self.follower.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(StoreUnavailable):
            await self.leases.release_all()  # a graceful stop hands streams over at once
        await self.redis.close()

    def watch(self, deliver: Deliver, reset: Reset) -> None:
        self._deliver, self._reset = deliver, reset

    def problem(self) -> str | None:
        if self.error is not None:
            return f"store redis unreachable: {self.error}"
        if self._tasks and not self.follower.connected:
            return f"store redis: event subscription down: {self.follower.error}"
        return None

    def _failed(self, exc: StoreUnavailable) -> None:
        if self.error is None:
            log.error("store %s: %s; events are held back (not sent) until it answers",
                      self.url, exc)
        self.error = str(exc)

    def _worked(self) -> None:
        if self.error is not None:
            log.warning("store %s answers again", self.url)
            self.error = None

    # -- producing -------------------------------------------------------------------

    def produces(self, stream: str) -> bool:
        self._wanted.add(stream)
        return stream in self._ready

    def _mirror(self, stream: str) -> _Mirror:
        s = self._logs.get(stream)
        if s is None:
            s = self._logs[stream] = _Mirror(secrets.token_hex(6))
        return s

    def append(self, stream: str, data: dict[str, Any],
               state: dict[str, Any] | None = None) -> StoredEvent:
        s = self._mirror(stream)
        s.appended += 1
        event, data_json = make_event(s.appended, self._wall(), data)
        self._pending.append((stream, s, event, data_json, compact_json(state)))
        return event

    async def commit(self) -> None:
        """Append what is pending in one round trip; what Redis refuses (or everything,
        when it cannot be reached) is dropped, never made visible, so never sent."""
        pending, self._pending = self._pending, []
        drops, self._drops = self._drops, []
        if drops:
            try:
                await self.redis.delete_many(drops)
            except StoreUnavailable as exc:
                self._failed(exc)
        items = []
        for stream, s, event, data_json, state_json in pending:
            token = ""
            if stream in self._wanted:
                token = self.leases.token(stream)
                if not token:
                    continue  # lease lost since the append: not ours to add
            items.append((s, event, Append(stream, data_json, token, state_json, s.epoch,
                                           event.offset, event.ts)))
        if not items:
            return
        began = time.perf_counter()
        try:
            results = await self.redis.append_many([item for _, _, item in items])
        except StoreUnavailable as exc:
            self._failed(exc)
            for s, _, _ in items:
                s.appended = s.head
            self._ready.clear()  # leases are uncertain: re-take them and re-read first
            return
        self._worked()
        self.commits += 1
        self.commit_seconds += time.perf_counter() - began
        for (s, event, item), result in zip(items, results, strict=True):
            if isinstance(result, Refused):
                s.appended = s.head
                self._ready.discard(item.stream)
                if isinstance(result, LeaseLost):
                    self.leases.lost(item.stream)
                else:
                    log.warning("store %s: %s; re-reading the stream", self.url, result)
                    asyncio.get_running_loop().create_task(
                        self._refresh_quietly([item.stream]))
                continue
            if self._logs.get(item.stream) is s and event.offset == s.head + 1:
                self._apply(s, [event], item.data_json, item.state_json)

    def _apply(self, s: _Mirror, events: list[StoredEvent], data_json: str | None,
               state_json: str | None) -> None:
        """Make contiguous events after ``s.head`` visible."""
        for event in events:
            self._size += s.push(event, self.hot_events)
        s.appended = max(s.appended, s.head)
        s.last_data = data_json if data_json is not None else _data_of(events[-1].frame)
        if state_json is not None:
            s.state = state_json
        self._expire(s)

    # -- following other instances ---------------------------------------------------

    async def _published(self, stream: str, epoch: str, event: StoredEvent,
                         state_json: str) -> None:
        s = self._logs.get(stream)
        if s is None or event.offset <= s.head or stream in self._ready:
            return  # (a stream produced here: commit() applies its own events)
        if epoch != s.epoch or event.offset > s.head + 1:
            await self._refresh_quietly([stream])
            return
        self._apply(s, [event], None, state_json)
        if self._deliver is not None:
            self._deliver(stream, [event])

    async def refresh(self, stream: str) -> None:
        """Bring the mirror of ``stream`` up to date before a client attaches (another
        instance may have appended what this one has not heard yet)."""
        await self._refresh_quietly([stream], create=True)

    async def _refresh_quietly(self, streams: list[str], create: bool = False) -> None:
        try:
            await self._refresh(streams, create)
        except StoreUnavailable as exc:
            self._failed(exc)

    async def _refresh(self, streams: list[str], create: bool = False) -> None:
        """Read the streams' state from Redis and catch their mirrors up: events after a
        mirror's head are delivered; a new epoch (or a gap trimmed away) replaces the
        mirror and resets the stream's clients, who then resume and are told the truth.
        ``create``: a stream Redis does not hold gets its epoch made there (one epoch for
        every instance). Two pipelined round trips per ``batch`` streams at most: the
        states, then the epochs to make and the events to read."""
        for i in range(0, len(streams), self.batch):
            chunk = streams[i:i + self.batch]
            states = dict(zip(chunk, await self.redis.state_many(chunk), strict=True))
            new = [stream for stream, state in states.items()
                   if state.epoch is None and create and stream not in self._logs]
            reads: list[tuple[str, _Mirror | None, StreamState, int]] = []
            for stream, state in states.items():
                s = self._logs.get(stream)
                if state.epoch is None or (
                        s is not None and s.epoch == state.epoch and state.head <= s.head):
                    continue
                if s is not None and s.epoch == state.epoch:
                    reads.append((stream, s, state, s.head))  # catch up from the mirror
                elif self.hot_events > 0 and state.head > 0:
                    reads.append((stream, s, state, max(0, state.head - self.hot_events)))
                else:
                    self._replace(stream, s, state, [])
            for stream, epoch in zip(new, await self.redis.epoch_many(new), strict=True):
                self._logs.setdefault(stream, _Mirror(epoch))
            read = await self.redis.read_many([(stream, after) for stream, _, _, after in reads])
            for (stream, s, state, _), events in zip(reads, read, strict=True):
                if s is not None and self._logs.get(stream) is not s:
                    continue  # replaced while Redis answered
                if s is not None and s.epoch == state.epoch:
                    events = [e for e in events if e.offset > s.head]
                    if events and events[0].offset == s.head + 1:
                        events = [e for e in events if e.offset <= state.head]
                        self._apply(s, events, None, state.state)
                        if self._deliver is not None:
                            self._deliver(stream, events)
                        continue
                    if not events:
                        continue
                # A gap trimmed away after the mirror's head: what was read from there
                # holds every retained event of the fresh mirror's hot window.
                hot = max(0, state.head - self.hot_events)
                self._replace(stream, s, state,
                              [e for e in events if hot < e.offset <= state.head])

    def _replace(self, stream: str, s: _Mirror | None, state: StreamState,
                 events: list[StoredEvent]) -> None:
        """Mirror ``stream`` afresh from Redis (``events``: its hot window), resetting the
        clients of the mirror it replaces."""
        assert state.epoch is not None
        fresh = _Mirror(state.epoch, state.head)
        fresh.last_data, fresh.state = state.last, state.state
        for event in events:
            fresh.frames.append(event.frame)
            fresh.times.append(event.ts)
        self._size += len(fresh.frames) - (len(s.frames) if s is not None else 0)
        self._logs[stream] = fresh
        if s is not None and self._reset is not None:
            log.warning("store %s: stream %s moved on without this instance (epoch %s -> "
                        "%s): its clients here reconnect", self.url, stream, s.epoch,
                        state.epoch)
            self._reset(stream)

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as ``close`` asks the loops to end."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _every(self, period: float, step: Callable[[], Awaitable[None]],
                     unavailable: Callable[[], None] | None = None) -> None:
        """Run ``step`` every ``period`` s until ``close``; Redis out of reach is reported
        (``_failed``, then ``unavailable``) and the next period tries again."""
        while not await self._stopped_within(period):
            try:
                await step()
                self._worked()
            except StoreUnavailable as exc:
                self._failed(exc)
                if unavailable is not None:
                    unavailable()

    async def _check_loop(self) -> None:
        """Catch up, once a period, the mirrored streams whose head moved unheard."""
        await self._every(CHECK_PERIOD, self._check)

    async def _check(self) -> None:
        """One catch-up pass over the streams mirrored here that this instance does not
        hold the lease of (a stream it produces cannot move unheard: another producer
        would first have to take the lease, which the next renewal notices), ``batch``
        states per round trip."""
        held = self.leases.held
        streams = [stream for stream in self._logs if stream not in held]
        for i in range(0, len(streams), self.batch):
            states = await self.redis.states(streams[i:i + self.batch])
            moved = []
            for stream, (epoch, head) in states.items():
                s = self._logs.get(stream)
                if s is not None and (epoch != s.epoch or head > s.head) and (
                        epoch is not None or s.head > 0):
                    moved.append(stream)
            await self._refresh(moved)

    async def _lease_loop(self) -> None:
        """Take the leases of the streams wanted here, renew the held ones, release the
        rest; a stream is produced only once its mirror is re-read after taking it."""
        attempt = self.lease_renew / 4  # try to take over four times per renewal
        await self._every(attempt, self._leases_pass, self._ready.clear)

    async def _leases_pass(self) -> None:
        """Renew the held leases if due, release the unwanted, take the wanted, then make
        the streams held but not ready ready: their mirrors re-read ``batch`` at a time,
        with the renewal due checked between batches, so taking over thousands of
        streams never lets the leases already held expire."""
        await self._renew_if_due()
        gained, _ = await self.leases.tick(self._wanted, renew=False)
        self._ready &= self.leases.held.keys()
        waiting = [stream for stream in self.leases.held if stream not in self._ready]
        for i in range(0, len(waiting), self.batch):
            await self._renew_if_due()
            chunk = [stream for stream in waiting[i:i + self.batch]
                     if stream in self.leases.held]
            await self._refresh(chunk, create=True)
            for stream in chunk:
                s = self._logs.get(stream)
                if s is not None and stream in self.leases.held:
                    s.appended = s.head
                    self._ready.add(stream)
                    if stream in gained:
                        log.debug("store %s: producing %s from offset %d", self.url, stream,
                                  s.head + 1)

    async def _renew_if_due(self) -> None:
        """Renew every held lease if ``lease_renew`` s have passed since the last renewal
        (by the clock, however long the work between two calls took)."""
        now = self._clock()
        if now < self._renew_at:
            return
        self._renew_at = now + self.lease_renew
        lost = await self.leases.renew()
        self._ready -= lost
        for stream in lost:
            log.info("store %s: lease of %s lost: another instance produces it",
                     self.url, stream)

    # -- reading ---------------------------------------------------------------------

    async def read_history(self, stream: str, after: int,
                           limit: int | None = None) -> list[StoredEvent]:
        s = self._logs.get(stream)
        if s is None or after >= s.head:
            return []
        if after + 1 >= self.first(stream):
            return s.slice(after, limit)
        head = s.head
        try:
            events = await self.redis.read(stream, after, limit)
        except StoreUnavailable as exc:
            self._failed(exc)
            return []
        return [event for event in events if event.offset <= head]

    def epoch(self, stream: str) -> str:
        return self._mirror(stream).epoch

    def state(self, stream: str) -> dict[str, Any] | None:
        s = self._logs.get(stream)
        if s is None or not s.state:
            return None
        value = json.loads(s.state)
        return value if isinstance(value, dict) else None

    def trim(self, stream: str, upto: int) -> int:
        """Acks do not trim a shared history (another instance's clients may need it):
        Redis keeps each stream's last ``max_events`` no older than ``max_age``."""
        return 0

    def drop(self, stream: str) -> None:
        """Forget the stream here; in Redis too unless another instance produces it."""
        s = self._logs.pop(stream, None)
        if s is not None:
            self._size -= len(s.frames)
        self._wanted.discard(stream)
        self._ready.discard(stream)
        token = self.leases.held.pop(stream, "")
        self._drops.append((stream, token))

    def _forgot(self, n: int) -> None:
        self._size -= n

    def size(self) -> int:
        """Events held in this instance's hot windows (Redis holds the rest)."""
        return self._size


def _data_of(frame: bytes) -> str:
    """The ``data`` JSON of an event frame this store wrote (``encode_event``'s layout)."""
    return frame[frame.index(_DATA) + len(_DATA):-1].decode()
