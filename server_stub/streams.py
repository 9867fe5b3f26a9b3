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
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wsctl.protocol import encode_event


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
    __slots__ = ("epoch", "head", "events", "last_data")

    def __init__(self, epoch: str, maxlen: int) -> None:
        self.epoch = epoch
        self.head = 0
        self.events: deque[StoredEvent] = deque(maxlen=maxlen)
        self.last_data: str | None = None


class MemoryStreamStore(StreamStore):
    """In-memory store bounded per stream by count (``max_events``) and age (``max_age`` s).

    Everything is lost with the process; each store instance draws a random boot id so
    epochs from an earlier process never match.
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
            log = _Log(f"{self._boot}-{next(self._seq)}", self.max_events)
            self._logs[stream] = log
        return log

    def _expire(self, log: _Log, now: float) -> None:
        cutoff = now - self.max_age
        events = log.events
        while events and events[0].ts < cutoff:
            events.popleft()
            self._size -= 1

    def append(self, stream: str, data: dict[str, Any]) -> StoredEvent:
        log = self._log(stream)
        now = self._wall()
        log.head += 1
        data_json = json.dumps(data, separators=(",", ":"))
        event = StoredEvent(log.head, now, encode_event(log.head, now, data_json).encode())
        log.last_data = data_json
        if self.max_events > 0:
            if len(log.events) == self.max_events:
                self._size -= 1
            log.events.append(event)
            self._size += 1
        self._expire(log, now)
        return event

    def read(self, stream: str, after: int, limit: int | None = None) -> list[StoredEvent]:
        log = self._logs.get(stream)
        if log is None:
            return []
        self._expire(log, self._wall())
        if not log.events:
            return []
        start = max(0, after - log.events[0].offset + 1)
        stop = len(log.events) if limit is None else min(len(log.events), start + limit)
        return list(itertools.islice(log.events, start, stop))

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
        return log.events[0].offset if log.events else log.head + 1

    def snapshot(self, stream: str) -> dict[str, Any]:
        log = self._logs.get(stream)
        if log is None:
            return {"offset": 0, "data": None}
        data = json.loads(log.last_data) if log.last_data is not None else None
        return {"offset": log.head, "data": data}

    def trim(self, stream: str, upto: int) -> int:
        log = self._logs.get(stream)
        dropped = 0
        while log and log.events and log.events[0].offset <= upto:
            log.events.popleft()
            dropped += 1
        self._size -= dropped
        return dropped

    def drop(self, stream: str) -> None:
        log = self._logs.pop(stream, None)
        if log is not None:
            self._size -= len(log.events)

    def streams(self) -> Iterable[str]:
        return self._logs.keys()

    def size(self) -> int:
        return self._size
