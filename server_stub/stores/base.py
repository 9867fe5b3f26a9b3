"""StreamStore: the numbered history of every stream, and the durable-append contract.

Offsets start at 1 and have no holes. An ``epoch`` names one unbroken history: when a
stream's history is lost (a new store, a wiped stream) it gets a new epoch, so a client
holding an old epoch knows its offsets mean nothing here.

Durable append, in two steps (the manager is the only caller):

1. ``append`` is cheap and synchronous: it assigns the next offset and encodes the frame.
   The event is *pending*: ``head``, ``read`` and ``snapshot`` do not show it yet.
2. ``await commit()`` makes every pending event as durable as the store promises (one
   transaction for all of them: group commit) and then, in the same step of the event
   loop as its return, they become visible. The manager fans them out right after, with
   no ``await`` in between, so a client is never sent an offset the store could lose and
   a resume handshake (welcome + replay + subscribe, one loop step) sees either all of a
   batch or none of it.

Reads: ``read`` is synchronous and answers from memory only (the *hot window*, which for
the memory store is all of the history); ``first`` is the oldest offset it can return.
A resume whose gap starts before ``first`` awaits ``read_history`` (which may read a
file or a server) first, then runs the one-step handshake with that prefetch plus the
hot window (``websocket_manager.plan_resume``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# json.dumps(obj, separators=(",", ":")) without building an encoder on every call
compact_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as kept: its offset, server wall time, and the ready-to-send frame
    (UTF-8 bytes, encoded once and shared by every subscriber and replay)."""

    offset: int
    ts: float
    frame: bytes


class StreamStore(ABC):
    """What the WebSocketManager needs from a store of numbered stream events.

    ``commit_window`` is how long (s) the job runner lets due events gather before a
    commit: 0 for a store whose commit costs nothing, a few ms for one that writes.
    """

    commit_window: float = 0.0

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Load what the store holds (a durable store's streams survive restarts)."""

    async def close(self) -> None:
        """Commit what is pending and release files and connections."""
        await self.commit()

    @abstractmethod
    def append(self, stream: str, data: dict[str, Any],
               state: dict[str, Any] | None = None) -> StoredEvent:
        """Add an event after the stream's last appended one (creating the stream if
        needed); pending until ``commit``. ``state`` is what the stream's producer needs
        to continue after a restart (the job's number and step), kept with the event."""

    async def commit(self) -> None:  # noqa: B027 - the memory store's is immediate
        """Make every pending event durable, then visible (see the module docstring)."""

    @abstractmethod
    def read(self, stream: str, after: int, limit: int | None = None) -> list[StoredEvent]:
        """Events held in memory with offset > ``after``, in order, at most ``limit``."""

    async def read_history(self, stream: str, after: int,
                           limit: int | None = None) -> list[StoredEvent]:
        """Retained events with offset > ``after`` up to ``head``, wherever they are kept
        (a durable store reads its file); contiguous from the oldest retained one."""
        return self.read(stream, after, limit)

    @abstractmethod
    def epoch(self, stream: str) -> str:
        """The stream's current epoch (creates the stream if needed)."""

    @abstractmethod
    def head(self, stream: str) -> int:
        """Offset of the stream's latest committed event (0 when it has none)."""

    @abstractmethod
    def first(self, stream: str) -> int:
        """Offset of the oldest event ``read`` can return (head + 1 when none)."""

    @abstractmethod
    def snapshot(self, stream: str) -> dict[str, Any]:
        """The stream's current state: ``{"offset": head, "data": last data or None}``."""

    def snapshot_json(self, stream: str) -> str:
        """``snapshot`` as compact JSON text (what a ``welcome`` carries); a store that
        keeps its data serialised can answer without decoding it."""
        return compact_json(self.snapshot(stream))

    def state(self, stream: str) -> dict[str, Any] | None:
        """The producer state committed with the stream's latest event (None if none)."""
        return None

    # Shared stores (several server instances on one store: stores/redis_store.py).

    def produces(self, stream: str) -> bool:
        """Whether this instance produces ``stream``'s events now (it holds the stream's
        producer lease); the job of a stream produced elsewhere follows its state."""
        return True

    async def refresh(self, stream: str) -> None:  # noqa: B027 - nothing is shared
        """Catch up with what other instances appended, before a client attaches."""

    def watch(  # noqa: B027 - nothing is shared
            self, deliver: Callable[[str, list[StoredEvent]], None],
            reset: Callable[[str], None]) -> None:
        """Have events other instances commit handed to ``deliver(stream, events)``, and
        a stream whose history changed under this instance to ``reset(stream)``."""

    def problem(self) -> str | None:
        """Why the store is degraded now (it cannot reach its server), else None."""
        return None

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
