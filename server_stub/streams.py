"""StreamStore: the numbered history of every stream, and a bounded in-memory store.

Offsets start at 1 and have no holes. An ``epoch`` names one unbroken history: when a
stream's history is lost (a new store, a wiped stream) it gets a new epoch, so a client
holding an old epoch knows its offsets mean nothing here. A durable store can replace
``MemoryStreamStore`` without touching the manager: it only uses this interface.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from abc import ABC, abstractmethod
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wsctl.protocol import encode_event

# json.dumps(obj, separators=(",", ":")) without building an encoder on every call
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as kept: its offset, server wall time, and the ready-to-send frame
    (UTF-8 bytes, encoded once and shared by every subscriber and replay)."""

    offset: int
    ts: float
    frame: bytes


class StreamStore(ABC):
    """What the WebSocketManager needs from a store of numbered stream events."""

    @abstractmethod
    def append(self, stream: str, data: dict[str, Any]) -> StoredEvent:
        """Add an event after the stream's head; creates the stream if needed."""

    @abstractmethod
    def read(self, stream: str, after: int, limit: int | None = None) -> list[StoredEvent]:
        """Retained events with offset > ``after``, in order, at most ``limit``."""

    @abstractmethod
    def epoch(self, stream: str) -> str:
        """The stream's current epoch (creates the stream if needed)."""

    @abstractmethod
    def head(self, stream: str) -> int:
        """Offset of the stream's latest event (0 when it has none)."""

    @abstractmethod
    def first(self, stream: str) -> int:
        """Offset of the oldest retained event (head + 1 when none is retained)."""

    @abstractmethod
    def snapshot(self, stream: str) -> dict[str, Any]:
        """The stream's current state: ``{"offset": head, "data": last data or None}``."""

    def snapshot_json(self, stream: str) -> str:
        """``snapshot`` as compact JSON text (what a ``welcome`` carries); a store that
        keeps its data serialised can answer without decoding it."""
        return _compact_json(self.snapshot(stream))

    @abstractmethod
    def trim(self, stream: str, upto: int) -> int:
        """Forget events with offset <= ``upto``; returns how many were dropped."""

    @abstractmethod
    def drop(self, stream: str) -> None:
        """Forget the stream entirely (its next use starts a new epoch)."""

    @abstractmethod
    def streams(self) -> Iterable[str]:
        """Names of the streams the store holds."""

    @abstractmethod
    def size(self) -> int:
        """Number of events retained over all streams."""


class _Log:
    """One stream's retained history, kept compact: the frames in a deque and their
    times in a float array; offsets are implied (they have no holes), so there is no
    object per event beyond its frame. Oldest first."""

    __slots__ = ("epoch", "head", "frames", "times", "last_data")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.head = 0
        self.frames: deque[bytes] = deque()
        self.times = array("d")
        self.last_data: str | None = None

    @property
    def first(self) -> int:
        """Offset of the oldest retained event (head + 1 when none)."""
        return self.head - len(self.frames) + 1

    def drop_oldest(self, n: int) -> int:
        """Forget the ``n`` oldest events (fewer if there are fewer); returns how many."""
        n = min(n, len(self.frames))
        for _ in range(n):
            self.frames.popleft()
        del self.times[:n]
        return n


class MemoryStreamStore(StreamStore):
    """In-memory store bounded per stream by count (``max_events``) and age (``max_age`` s).

    Everything is lost with the process; each store instance draws a random boot id so
    epochs from an earlier process never match. A retained event costs its encoded
    frame plus 16 bytes (about 190 bytes for a job progress event).
    """

    def __init__(
        self,
        max_events: int = 1000,
        max_age: float = 120.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_events = max_events
        self.max_age = max_age
        self._wall = wall
        self._boot = secrets.token_hex(4)
        self._seq = itertools.count(1)
        self._logs: dict[str, _Log] = {}
        self._size = 0

    def __repr__(self) -> str:
        return f"MemoryStreamStore(max_events={self.max_events}, max_age={self.max_age})"

    def _log(self, stream: str) -> _Log:
        log = self._logs.get(stream)
        if log is None:
            log = _Log(f"{self._boot}-{next(self._seq)}")
            self._logs[stream] = log
        return log

    def _expire(self, log: _Log, now: float) -> None:
        cutoff = now - self.max_age
        times = log.times
        stale = 0
        while stale < len(times) and times[stale] < cutoff:
            stale += 1
        if stale:
            self._size -= log.drop_oldest(stale)

    def append(self, stream: str, data: dict[str, Any]) -> StoredEvent:
        log = self._log(stream)
        now = self._wall()
        log.head += 1
        data_json = _compact_json(data)
        event = StoredEvent(log.head, now, encode_event(log.head, now, data_json).encode())
        log.last_data = data_json
        if self.max_events > 0:
            if len(log.frames) >= self.max_events:
                self._size -= log.drop_oldest(len(log.frames) - self.max_events + 1)
            log.frames.append(event.frame)
            log.times.append(now)
            self._size += 1
        self._expire(log, now)
        return event

    def read(self, stream: str, after: int, limit: int | None = None) -> list[StoredEvent]:
        log = self._logs.get(stream)
        if log is None:
            return []
        self._expire(log, self._wall())
        first = log.first
        start = max(0, after - first + 1)
        stop = len(log.frames) if limit is None else min(len(log.frames), start + limit)
        times = log.times
        return [
            StoredEvent(first + i, times[i], frame)
            for i, frame in enumerate(itertools.islice(log.frames, start, stop), start)
        ]

    def epoch(self, stream: str) -> str:
        return self._log(stream).epoch

    def head(self, stream: str) -> int:
        log = self._logs.get(stream)
        return log.head if log else 0

    def first(self, stream: str) -> int:
        log = self._logs.get(stream)
        if log is None:
            return 1
        self._expire(log, self._wall())
        return log.first

    def snapshot(self, stream: str) -> dict[str, Any]:
        log = self._logs.get(stream)
        if log is None:
            return {"offset": 0, "data": None}
        data = json.loads(log.last_data) if log.last_data is not None else None
        return {"offset": log.head, "data": data}

    def snapshot_json(self, stream: str) -> str:
        log = self._logs.get(stream)
        if log is None:
            return '{"offset":0,"data":null}'
        data = log.last_data if log.last_data is not None else "null"
        return f'{{"offset":{log.head},"data":{data}}}'

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

    def streams(self) -> Iterable[str]:
        return self._logs.keys()

    def size(self) -> int:
        return self._size
