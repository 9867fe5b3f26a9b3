"""Redis layer of the ``redis://`` stream store: streams, epochs, job state and producer
leases in Redis, shared by every server instance that points at the same database.

Keys of stream ``S`` (``{S}`` is a Redis Cluster hash tag, so one script can touch all):

    wsctl:{S}:log     Redis Stream of retained events; entry id ``<offset>-0``, fields
                      ``t`` (wall time) and ``f`` (the ready-to-send ``event`` frame)
    wsctl:{S}:meta    hash: ``epoch``, ``head`` (last offset), ``last`` (last data JSON),
                      ``state`` (the producer's state with the last event: job progress)
    wsctl:{S}:lease   producer lease: the holder's token, with a TTL

Offsets have no holes: the append script increments ``head`` and adds the entry under the
explicit id ``<head>-0`` in one atomic step (a Lua script runs alone on the Redis server),
so the counter and the log cannot disagree and a replay is ``XRANGE <after+1> +``. Size
trimming is ``XADD ... MAXLEN n`` (exact), age trimming ``XTRIM MINID`` at the first entry
young enough; both happen in the append. The same script checks the lease: an append
carrying a token that no longer holds the lease (its holder was paused past the TTL and
another instance took over) is refused, so a stale producer can never add an offset
(fencing); it also refuses an append whose offset or epoch is not what the producer
expected (its view is stale). It also publishes the event on ``wsctl:events``, which every instance
subscribes to, to deliver events produced elsewhere to its own clients (``RedisFollower``).

All keys of a stream get a TTL (``idle_ttl``), refreshed by every append: a stream no
instance produces for that long disappears, and its next use starts a new epoch.

The ``redis`` package (redis-py) is imported only when a ``redis://`` store is used.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from server_stub.streams import StoredEvent
from wsctl.errors import InvalidInput, RunFailed

log = logging.getLogger("server_stub")

INSTALL_HINT = "pip install 'wsctl[redis]'"
LEASE_TTL = 3.0  # s: a dead holder's streams are taken over within this (+ one renew tick)
LEASE_RENEW = 1.0  # s: holders renew, others try to take over, this often
EVENTS_CHANNEL = "events"
POLL = 0.2  # s: the follower checks whether it should stop this often
LEASE_CHUNK = 1000  # leases renewed or taken per script call
APPEND_CHUNK = 100  # events appended per script call


class Refused(RunFailed):
    """Redis refused one append: the producer's view of the stream is out of date."""


class LeaseLost(Refused):
    """The append's token no longer holds the stream's producer lease."""


class StoreUnavailable(RunFailed):
    """Redis cannot be reached (or answered with an error): the store is degraded."""


def import_redis() -> ModuleType:
    """``redis.asyncio``, or InvalidInput with the one line that installs it."""
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:
        raise InvalidInput(f"a redis:// store needs the redis package: {INSTALL_HINT}") from exc
    return aioredis


def check_url(url: str) -> str:
    """``url`` if it is a ``redis://HOST:PORT/DB`` address, else InvalidInput saying so."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    db = parts.path.lstrip("/")
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or not port_ok or (
            db and not db.isdecimal()):
        raise InvalidInput(f"--store {url!r}: use redis://HOST:PORT/DB (e.g. "
                           "redis://127.0.0.1:6379/0)")
    return url


# Appends several events, in order, in one call (up to APPEND_CHUNK; a commit's events).
# KEYS: log, meta, lease of each event (3 per event)
# ARGV: 1 max_events, 2 cutoff, 3 ttl_ms, 4 channel, then 8 per event: token, ts, data,
#       epoch, state, stream, expected offset ('' = any), '1' = epoch must match.
# Returns per event {offset, epoch}, or {0, reason} where it is refused: WSCTL_LEASE
# (fenced), WSCTL_EPOCH (the history this producer knew is gone), WSCTL_CONFLICT (the head
# moved under it). The appended events are published as one message, a line each.
_APPEND = """
local max, cutoff, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local function append(log, meta, lease, token, ts, data, new_epoch, state, stream,
                      expected, strict)
  if token ~= '' and redis.call('GET', lease) ~= token then
    return {0, 'WSCTL_LEASE the producer lease is not held'}
  end
  local epoch = redis.call('HGET', meta, 'epoch')
  local head = tonumber(redis.call('HGET', meta, 'head') or '0')
  if not epoch then
    if strict == '1' and expected ~= '' and tonumber(expected) ~= 1 then
      return {0, 'WSCTL_EPOCH the stream history is gone'}
    end
    epoch = new_epoch
    redis.call('HSET', meta, 'epoch', epoch)
  elseif strict == '1' and epoch ~= new_epoch then
    return {0, 'WSCTL_EPOCH the stream has another epoch'}
  end
  if expected ~= '' and head + 1 ~= tonumber(expected) then
    return {0, 'WSCTL_CONFLICT the head moved'}
  end
  local offset = head + 1
  local frame = '{"type":"event","offset":' .. offset .. ',"ts":' .. ts
    .. ',"data":' .. data .. '}'
  redis.call('HSET', meta, 'head', offset, 'last', data, 'state', state)
  if max > 0 then
    redis.call('XADD', log, 'MAXLEN', max, offset .. '-0', 't', ts, 'f', frame)
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
    -- usually nothing is stale: one entry read; else 64 at a time until a young one
    while tonumber(oldest[1][2][2]) < cutoff do
      local batch = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
      local keep = nil
      for _, entry in ipairs(batch) do
        if tonumber(entry[2][2]) >= cutoff then keep = entry[1] break end
      end
      if keep then
        if keep ~= batch[1][1] then redis.call('XTRIM', log, 'MINID', keep) end
        break
      end
      local last = string.match(batch[#batch][1], '^(%d+)')
      redis.call('XTRIM', log, 'MINID', (tonumber(last) + 1) .. '-0')
      oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
    end
    redis.call('PEXPIRE', log, ttl)
  end
  redis.call('PEXPIRE', meta, ttl)
  return {offset, epoch, stream .. ' ' .. epoch .. ' ' .. offset .. ' ' .. ts .. ' ' .. state
    .. ' ' .. frame}
end
local out, lines = {}, {}
for i = 0, #KEYS / 3 - 1 do
  local k, a = i * 3, 4 + i * 8
  local r = append(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a + 1], ARGV[a + 2],
                   ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8])
  if r[3] then lines[#lines + 1] = r[3] end
  out[i + 1] = {r[1], r[2]}
end
if #lines > 0 then redis.call('PUBLISH', ARGV[4], table.concat(lines, '\\n')) end
return out
"""

# KEYS: log, meta, lease   ARGV: token. Deletes the stream unless another token holds
# its lease (another instance is producing it). 1 if deleted.
_DROP = """
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""

# The two lease scripts run for many streams at once: one call per LEASE_CHUNK leases,
# not one command each, as renewing thousands every second would cost the client far more
# in packing and parsing than Redis spends on them. (Their keys span hash slots: these two
# need a single Redis, not a Cluster.)
# KEYS: leases   ARGV: ttl_ms, then the token of each key. Per key 1 if that token holds
# it (and it is extended), else 0.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = 0
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  end
end
return out
"""

# KEYS: leases   ARGV: ttl_ms, then the token of each key. Per key 1 if it was free and
# is now held by that token, else 0.
_ACQUIRE = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = 0
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'PX', ARGV[1]) then out[i] = 1 end
end
return out
"""

# KEYS: lease   ARGV: token. 1 if it was held and is now free.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: meta   ARGV: new_epoch, ttl_ms. The stream's epoch, made if it has none.
_EPOCH = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'head', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('HGET', KEYS[1], 'epoch')
"""


@dataclass(frozen=True, slots=True)
class StreamState:
    """What Redis holds about a stream besides its events (epoch None: no such stream)."""

    epoch: str | None
    head: int
    last: str | None
    state: str | None


@dataclass(frozen=True, slots=True)
class Append:
    """One event to append: the data as compact JSON, the producer state kept with it,
    and the lease token, epoch and offset the producer expects (checked by the script)."""

    stream: str
    data_json: str
    token: str = ""
    state_json: str = "null"
    epoch: str | None = None  # the epoch the producer knows (None: any; new stream)
    offset: int | None = None  # the offset the producer assigned (None: the next one)
    ts: float | None = None  # its wall time (None: now)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _state(values: list[Any]) -> StreamState:
    epoch, head, last, state = (_text(v) for v in values)
    return StreamState(epoch, int(head or 0), last, state)


class RedisStreams:
    """Streams, epochs, job state and leases in one Redis database (see the module doc).

    Every method is a coroutine; a Redis that cannot be reached raises StoreUnavailable,
    and a fenced append LeaseLost.
    """

    def __init__(
        self,
        url: str,
        *,
        max_events: int = 1000,
        max_age: float = 60.0,
        idle_ttl: float | None = None,
        prefix: str = "wsctl",
        wall: Callable[[], float] = time.time,
        timeout: float = 2.0,
    ) -> None:
        self.url = check_url(url)
        self.max_events = max_events
        self.max_age = max_age
        self.idle_ttl = idle_ttl if idle_ttl is not None else max(2 * max_age, 60.0)
        self.prefix = prefix
        self.channel = f"{prefix}:{EVENTS_CHANNEL}"
        self._wall = wall
        self._timeout = timeout
        self._aioredis = import_redis()
        self.client: Any = self._aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._append = self.client.register_script(_APPEND)
        self._renew = self.client.register_script(_RENEW)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)
        self._epoch = self.client.register_script(_EPOCH)
        self._drop = self.client.register_script(_DROP)

    def __repr__(self) -> str:
        return (f"RedisStreams({self.url!r}, max_events={self.max_events}, "
                f"max_age={self.max_age})")

    def keys(self, stream: str) -> tuple[str, str, str]:
        """The stream's log, meta and lease keys."""
        base = f"{self.prefix}:{{{stream}}}"
        return f"{base}:log", f"{base}:meta", f"{base}:lease"

    async def _call(self, op: Awaitable[Any]) -> Any:
        """Await one Redis operation, translating its errors to this module's."""
        errors = self._aioredis
        try:
            return await op
        except errors.ResponseError as exc:
            raise StoreUnavailable(f"redis {self.url}: {exc}") from exc
        except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"redis {self.url} unreachable: {exc}") from exc

    async def ping(self) -> None:
        """StoreUnavailable unless Redis answers."""
        await self._call(self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()

    # -- events ----------------------------------------------------------------------

    async def append(self, stream: str, data_json: str, *, token: str = "",
                     state_json: str = "null") -> tuple[StoredEvent, str]:
        """Append one event; returns it with the stream's epoch. ``token`` (if given) must
        hold the stream's lease (else LeaseLost); ``state_json`` is kept as its producer's
        state (the job's progress)."""
        result = (await self.append_many([Append(stream, data_json, token, state_json)]))[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def append_many(
        self, items: Sequence[Append]
    ) -> list[tuple[StoredEvent, str] | Refused]:
        """Append several events in one round trip (``APPEND_CHUNK`` per script call, the
        calls pipelined: the group commit of one scheduler tick). Each result is the event
        and its epoch, or Refused (LeaseLost, or a head or epoch that moved) for that item
        alone; StoreUnavailable fails them all."""
        if not items:
            return []
        now = self._wall()
        shared = [self.max_events, repr(now - self.max_age),
                  max(1, round(self.idle_ttl * 1000)), self.channel]
        async with self.client.pipeline(transaction=False) as pipe:
            for i in range(0, len(items), APPEND_CHUNK):
                keys: list[str] = []
                args: list[Any] = list(shared)
                for item in items[i:i + APPEND_CHUNK]:
                    keys += self.keys(item.stream)
                    args += [item.token, repr(item.ts if item.ts is not None else now),
                             item.data_json, item.epoch or secrets.token_hex(6),
                             item.state_json, item.stream,
                             "" if item.offset is None else item.offset,
                             "1" if item.epoch is not None else ""]
                await self._append(keys=keys, args=args, client=pipe)
            replies = await self._call(pipe.execute(raise_on_error=False))
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreUnavailable(f"redis {self.url}: {reply}")
        out: list[tuple[StoredEvent, str] | Refused] = []
        for item, (offset, epoch) in zip(
                items, (r for reply in replies for r in reply), strict=True):
            if not offset:
                text = _text(epoch) or ""
                refused = LeaseLost if text.startswith("WSCTL_LEASE") else Refused
                out.append(refused(f"stream {item.stream}: {text.partition(' ')[2]}"))
                continue
            ts = item.ts if item.ts is not None else now
            frame = (f'{{"type":"event","offset":{offset},"ts":{ts!r},'
                     f'"data":{item.data_json}}}').encode()
            out.append((StoredEvent(int(offset), ts, frame), _text(epoch) or ""))
        return out

    async def read(self, stream: str, after: int, limit: int | None = None) -> list[StoredEvent]:
        """Retained events with offset > ``after`` and no older than ``max_age``, in order."""
        entries = await self._call(
            self.client.xrange(self.keys(stream)[0], f"{after + 1}-0", "+", count=limit))
        return self._events(entries, self._wall() - self.max_age)

    async def read_many(self, reads: Sequence[tuple[str, int]]) -> list[list[StoredEvent]]:
        """``read(stream, after)`` for several (stream, after) pairs in one round trip."""
        if not reads:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for stream, after in reads:
                pipe.xrange(self.keys(stream)[0], f"{after + 1}-0", "+")
            replies = await self._call(pipe.execute())
        cutoff = self._wall() - self.max_age
        return [self._events(entries, cutoff) for entries in replies]

    @staticmethod
    def _events(entries: list[Any], cutoff: float) -> list[StoredEvent]:
        events = []
        for entry_id, fields in entries:
            ts = float(fields[b"t"])
            if ts >= cutoff:
                events.append(StoredEvent(int(entry_id.split(b"-")[0]), ts, fields[b"f"]))
        return events

    async def first(self, stream: str) -> int:
        """Offset of the oldest event young enough to replay (head + 1 when none)."""
        log_key, meta_key, _ = self.keys(stream)
        cutoff = self._wall() - self.max_age
        start = "-"
        while True:
            entries = await self._call(self.client.xrange(log_key, start, "+", count=64))
            for entry_id, fields in entries:
                if float(fields[b"t"]) >= cutoff:
                    return int(entry_id.split(b"-")[0])
            if len(entries) < 64:
                head = await self._call(self.client.hget(meta_key, "head"))
                return int(head or 0) + 1
            start = f"({entries[-1][0].decode()}"

    async def state(self, stream: str) -> StreamState:
        """Epoch, head, last data and producer state (JSON) of ``stream``."""
        return _state(await self._call(
            self.client.hmget(self.keys(stream)[1], "epoch", "head", "last", "state")))

    async def state_many(self, streams: Sequence[str]) -> list[StreamState]:
        """``state`` of several streams in one round trip."""
        if not streams:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.hmget(self.keys(stream)[1], "epoch", "head", "last", "state")
            replies = await self._call(pipe.execute())
        return [_state(values) for values in replies]

    async def states(self, streams: Iterable[str]) -> dict[str, tuple[str | None, int]]:
        """Epoch and head of several streams in one round trip."""
        names = list(streams)
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in names:
                pipe.hmget(self.keys(stream)[1], "epoch", "head")
            replies = await self._call(pipe.execute())
        return {name: (_text(epoch), int(head or 0))
                for name, (epoch, head) in zip(names, replies, strict=True)}

    async def epoch(self, stream: str) -> str:
        """The stream's epoch, made (with head 0) if the stream is new."""
        return (await self.epoch_many([stream]))[0]

    async def epoch_many(self, streams: Sequence[str]) -> list[str]:
        """``epoch`` of several streams in one round trip."""
        if not streams:
            return []
        ttl_ms = max(1, round(self.idle_ttl * 1000))
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in streams:
                await self._epoch(keys=[self.keys(stream)[1]],
                                  args=[secrets.token_hex(6), ttl_ms], client=pipe)
            replies = await self._call(pipe.execute())
        return [_text(value) or "" for value in replies]

    async def trim(self, stream: str, upto: int) -> int:
        """Forget events with offset <= ``upto``; returns how many went."""
        return int(await self._call(
            self.client.xtrim(self.keys(stream)[0], minid=f"{upto + 1}-0", approximate=False)))

    async def delete(self, stream: str, token: str = "") -> bool:
        """Forget the stream entirely (its next use starts a new epoch), unless a token
        other than ``token`` holds its lease: another instance still produces it."""
        return (await self.delete_many([(stream, token)]))[0]

    async def delete_many(self, drops: Sequence[tuple[str, str]]) -> list[bool]:
        """``delete`` for several (stream, token) pairs in one round trip."""
        return await self._scripts(self._drop, [(list(self.keys(stream)), [token])
                                                for stream, token in drops])

    async def _scripts(self, script: Any, calls: Sequence[tuple[list[str], list[Any]]]
                       ) -> list[bool]:
        """Run ``script`` once per (keys, args) in one pipelined round trip; truthy
        replies as booleans."""
        if not calls:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                await script(keys=keys, args=args, client=pipe)
            replies = await self._call(pipe.execute())
        return [bool(r) for r in replies]

    async def names(self) -> list[str]:
        """Every stream the database holds (a SCAN)."""
        start = len(self.prefix) + 2
        return [key.decode()[start:-len("}:meta")] async for key in
                self.client.scan_iter(match=f"{self.prefix}:{{*}}:meta", count=1000)]

    async def size(self) -> int:
        """Events retained over all streams (a SCAN: for tests and /metrics, not hot paths)."""
        total = 0
        async for key in self.client.scan_iter(match=f"{self.prefix}:{{*}}:log", count=500):
            total += int(await self._call(self.client.xlen(key)))
        return total

    # -- leases ----------------------------------------------------------------------

    async def acquire(self, stream: str, token: str, ttl: float = LEASE_TTL) -> bool:
        """Take the stream's producer lease for ``token`` if nobody holds it."""
        ok = await self._call(self.client.set(self.keys(stream)[2], token, nx=True,
                                              px=max(1, round(ttl * 1000))))
        return bool(ok)

    async def acquire_many(self, tokens: dict[str, str],
                           ttl: float = LEASE_TTL) -> dict[str, bool]:
        """``acquire`` for several streams (stream -> token) in one round trip."""
        return await self._leases(self._acquire, tokens, ttl)

    async def renew(self, leases: dict[str, str], ttl: float = LEASE_TTL) -> dict[str, bool]:
        """Extend each held lease (stream -> token) in one round trip; False where the
        token no longer holds it."""
        return await self._leases(self._renew, leases, ttl)

    async def _leases(self, script: Any, leases: dict[str, str], ttl: float
                      ) -> dict[str, bool]:
        """Run a lease script (``_RENEW``, ``_ACQUIRE``) over ``leases`` (stream -> token),
        ``LEASE_CHUNK`` per call, every call in one pipelined round trip."""
        leases = dict(leases)  # the caller's dict may change while the reply is awaited
        if not leases:
            return {}
        ttl_ms = max(1, round(ttl * 1000))
        streams = list(leases)
        calls = []
        for i in range(0, len(streams), LEASE_CHUNK):
            chunk = streams[i:i + LEASE_CHUNK]
            calls.append(([self.keys(stream)[2] for stream in chunk],
                          [ttl_ms, *(leases[stream] for stream in chunk)]))
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                await script(keys=keys, args=args, client=pipe)
            replies = await self._call(pipe.execute())
        flat = [bool(r) for reply in replies for r in reply]
        return dict(zip(streams, flat, strict=True))

    async def release(self, stream: str, token: str) -> bool:
        """Give the lease up (if ``token`` still holds it), so another instance can take
        the stream over at once instead of after the TTL."""
        return (await self.release_many({stream: token}))[0]

    async def release_many(self, leases: dict[str, str]) -> list[bool]:
        """``release`` for several leases (stream -> token) in one round trip."""
        return await self._scripts(self._release, [([self.keys(stream)[2]], [token])
                                                   for stream, token in leases.items()])

    async def holder(self, stream: str) -> str | None:
        """The token holding the stream's lease, if any."""
        return _text(await self._call(self.client.get(self.keys(stream)[2])))


class Leases:
    """This instance's producer leases: one token per acquisition (``instance:n``), so a
    token lost once is never valid again, even if this instance takes the stream back.
    The instance id is ``PID-RANDOM``: an operator (or a test) can tell which process
    produces a stream from its lease key."""

    def __init__(self, redis: RedisStreams, instance: str | None = None,
                 ttl: float = LEASE_TTL) -> None:
        self.redis = redis
        self.instance = instance or f"{os.getpid()}-{secrets.token_hex(3)}"
        self.ttl = ttl
        self.held: dict[str, str] = {}  # stream -> token
        self._seq = itertools.count(1)

    def token(self, stream: str) -> str:
        """The token to append with ('' when not held: the append is then refused)."""
        return self.held.get(stream, "")

    async def tick(self, wanted: Iterable[str], renew: bool = True
                   ) -> tuple[set[str], set[str]]:
        """Renew the leases held (if ``renew``), try to take the ``wanted`` ones not held,
        give up the held ones no longer wanted. Returns (gained, lost)."""
        wanted = set(wanted)
        unwanted = {stream: self.held.pop(stream) for stream in list(self.held)
                    if stream not in wanted}
        await self.redis.release_many(unwanted)
        lost = await self.renew() if renew else set()
        tokens = {stream: f"{self.instance}:{next(self._seq)}"
                  for stream in wanted - self.held.keys() - lost}
        taken = await self.redis.acquire_many(tokens, self.ttl)
        gained = {stream for stream, ok in taken.items() if ok}
        self.held.update((stream, tokens[stream]) for stream in gained)
        return gained, lost

    async def renew(self) -> set[str]:
        """Extend every lease held (one round trip); returns (and forgets) those lost."""
        held = dict(self.held)
        renewed = await self.redis.renew(held, self.ttl)
        lost = {stream for stream, ok in renewed.items() if not ok}
        for stream in lost:
            if self.held.get(stream) == held[stream]:
                del self.held[stream]
        return lost

    def lost(self, stream: str) -> None:
        """Forget a lease an append found lost."""
        self.held.pop(stream, None)

    async def release_all(self) -> None:
        held, self.held = self.held, {}
        await self.redis.release_many(held)


Published = Callable[[str, str, StoredEvent, str], Awaitable[None]]


class RedisFollower:
    """Hears every event any instance appends (one channel, ``wsctl:events``) and hands
    each to ``on_event(stream, epoch, event, state_json)``, in the order published.

    Pub/sub delivers at most once: a notification missed while the subscription was down
    is not repeated. The receiver orders by offset and fills gaps from the log; a stream
    whose head moved with no notification is caught up by its periodic check.
    """

    def __init__(self, redis: RedisStreams, on_event: Published) -> None:
        self.redis = redis
        self.on_event = on_event
        self.connected = False
        self.error: str | None = None
        self._stopping = False

    def stop(self) -> None:
        """Make ``run`` return within ``POLL`` seconds (cancelling it mid-read would leave
        its connection half closed)."""
        self._stopping = True

    async def run(self) -> None:
        """Listen and hand over until ``stop``; a lost subscription is re-made every
        second."""
        while not self._stopping:
            pubsub = self.redis.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.redis.channel)
                self.connected, self.error = True, None
                while not self._stopping:
                    message = await pubsub.get_message(timeout=POLL)
                    if message is not None and message["type"] == "message":
                        await self._hand_over(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: retry; the periodic check fills in
                if self.connected or self.error is None:
                    log.warning("redis %s: event subscription lost: %s; retrying every 1s",
                                self.redis.url, exc)
                self.connected, self.error = False, str(exc) or type(exc).__name__
                await asyncio.sleep(1.0)
            finally:
                self.connected = False
                try:
                    await pubsub.aclose()
                except Exception:  # the connection is already gone
                    pass

    async def _hand_over(self, payload: bytes) -> None:
        for line in payload.split(b"\n"):  # one line per event (frames are JSON text)
            stream, epoch, offset, ts, state, frame = line.split(b" ", 5)
            await self.on_event(stream.decode(), epoch.decode(),
                                StoredEvent(int(offset), float(ts), frame), state.decode())
