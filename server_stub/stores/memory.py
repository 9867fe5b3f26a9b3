"""The in-memory store (the default): bounded per stream by count and age, lost with the
process. ``_Log`` is also the hot window of the durable stores."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from server_stub.stores.base import StoredEvent, StreamStore, compact_json
from wsctl.protocol import encode_event


class _Log:
    """One stream's history held in memory, kept compact: the frames in a deque and
    their times in a float array; offsets are implied (they have no holes and end at
    ``head``), so there is no object per event beyond its frame. Oldest first."""

    __slots__ = ("epoch", "head", "frames", "times", "last_data")

    def __init__(self, epoch: str, head: int = 0) -> None:
        self.epoch = epoch
        self.head = head
        self.frames: deque[bytes] = deque()
        self.times = array("d")
        self.last_data: str | None = None  # compact JSON of the latest event's data

    @property
    def first(self) -> int:
        """Offset of the oldest held event (head + 1 when none)."""
        return self.head - len(self.frames) + 1

    def drop_oldest(self, n: int) -> int:
        """Forget the ``n`` oldest events (fewer if there are fewer); returns how many."""
        n = min(n, len(self.frames))
        for _ in range(n):
            self.frames.popleft()
        del self.times[:n]
        return n

    def push(self, event: StoredEvent, keep: int) -> int:
        """Hold ``event`` (the next offset) keeping at most ``keep`` events; returns how
        many the count changed by (1, or 0 when the oldest made room, or 0 if keep=0)."""
        self.head = event.offset
        if keep <= 0:
            return 0
        dropped = 0
        if len(self.frames) >= keep:
            dropped = self.drop_oldest(len(self.frames) - keep + 1)
        self.frames.append(event.frame)
        self.times.append(event.ts)
        return 1 - dropped

    def expire(self, cutoff: float) -> int:
        """Forget events older than ``cutoff`` (wall time); returns how many."""
        times = self.times
        stale = 0
        while stale < len(times) and times[stale] < cutoff:
            stale += 1
        return self.drop_oldest(stale) if stale else 0

    def slice(self, after: int, limit: int | None) -> list[StoredEvent]:
        """Held events with offset > ``after``, at most ``limit``."""
        first = self.first
        start = max(0, after - first + 1)
        stop = len(self.frames) if limit is None else min(len(self.frames), start + limit)
        times = self.times
        return [
            StoredEvent(first + i, times[i], frame)
            for i, frame in enumerate(itertools.islice(self.frames, start, stop), start)
        ]

    def snapshot_json(self) -> str:
        data = self.last_data if self.last_data is not None else "null"
        return f'{{"offset":{self.head},"data":{data}}}'


def make_event(offset: int, ts: float, data: dict[str, Any]) -> tuple[StoredEvent, str]:
    """The event for ``data`` at ``offset``, and the data as compact JSON."""
    data_json = compact_json(data)
    return StoredEvent(offset, ts, encode_event(offset, ts, data_json).encode()), data_json


L = TypeVar("L", bound=_Log)


class LogStore(StreamStore, Generic[L]):
    """What the memory store and a durable store's hot window share: one ``_Log`` per
    stream held in memory, events older than ``max_age`` forgotten whenever it is read."""

    def __init__(self, max_age: float, wall: Callable[[], float]) -> None:
        self.max_age = max_age
        self._wall = wall
        self._logs: dict[str, L] = {}

    def _expire(self, log: L, now: float | None = None) -> None:
        self._forgot(log.expire((self._wall() if now is None else now) - self.max_age))

    def _forgot(self, n: int) -> None:
        """``n`` held events were forgotten for age (a hook for the size count)."""

    def read(self, stream: str, after: int, limit: int | None = None) -> list[StoredEvent]:
        log = self._logs.get(stream)
        if log is None:
            return []
        self._expire(log)
        return log.slice(after, limit)

    def head(self, stream: str) -> int:
        log = self._logs.get(stream)
        return log.head if log else 0

    def first(self, stream: str) -> int:
        log = self._logs.get(stream)
        if log is None:
            return 1
        self._expire(log)
        return log.first

    def snapshot(self, stream: str) -> dict[str, Any]:
        log = self._logs.get(stream)
        if log is None:
            return {"offset": 0, "data": None}
        data = json.loads(log.last_data) if log.last_data is not None else None
        return {"offset": log.head, "data": data}

    def snapshot_json(self, stream: str) -> str:
        log = self._logs.get(stream)
        return log.snapshot_json() if log is not None else '{"offset":0,"data":null}'

    def streams(self) -> Iterable[str]:
        return self._logs.keys()


class MemoryStreamStore(LogStore[_Log]):
    """In-memory store bounded per stream by count (``max_events``) and age (``max_age`` s).

    Everything is lost with the process; each store instance draws a random boot id so
    epochs from an earlier process never match; producer ``state`` is not kept (nothing
restarts from it). Its commit is immediate: an appended
    event is visible at once (there is nothing to make durable). A retained event costs
    its encoded frame plus 16 bytes (about 190 bytes for a job progress event).
    """

    def __init__(
        self,
        max_events: int = 1000,
        max_age: float = 120.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_age, wall)
        self.max_events = max_events
        self._boot = secrets.token_hex(4)
        self._seq = itertools.count(1)
        self._size = 0

    def __repr__(self) -> str:
        return f"MemoryStreamStore(max_events={self.max_events}, max_age={self.max_age})"

    def _log(self, stream: str) -> _Log:
        log = self._logs.get(stream)
        if log is None:
            log = _Log(f"{self._boot}-{next(self._seq)}")
            self._logs[stream] = log
        return log

    def append(self, stream: str, data: dict[str, Any],
               state: dict[str, Any] | None = None) -> StoredEvent:
        log = self._log(stream)
        now = self._wall()
        event, log.last_data = make_event(log.head + 1, now, data)
        self._size += log.push(event, self.max_events)
        self._expire(log, now)
        return event

    def _forgot(self, n: int) -> None:
        self._size -= n

    def epoch(self, stream: str) -> str:
        return self._log(stream).epoch

    def trim(self, stream: str, upto: int) -> int:
        log = self._logs.get(stream)
        if log is None:
            return 0
        dropped = log.drop_oldest(max(0, upto - log.first + 1))
        self._size -= dropped
        return dropped

    def drop(self, stream: str) -> None:
        log = self._logs.pop(stream, None)
        if log is not None:
            self._size -= len(log.frames)

    def size(self) -> int:
        return self._size
