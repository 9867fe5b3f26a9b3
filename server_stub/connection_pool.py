"""ConnectionPool: the one owner of every live connection.

It admits or refuses new connections (global and per-client-address limits), keeps the
registry of open sessions, and counts what happens to them. A slot is taken when the
handshake is admitted and given back exactly once, by ``release``, which the connection
calls when its transport is lost: whatever path a connection leaves by, it cannot leak.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from wsctl.clock import Clock, MonotonicClock


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a handshake is refused: HTTP status, a one-line reason, and a retry hint (s)."""

    status: int
    reason: str
    kind: str
    retry_after: int | None = None


@dataclass(slots=True, eq=False)
class Session:
    """One admitted connection: who it is, which stream it reads, where it is in it."""

    id: int
    conn: Any
    address: str
    opened_at: float
    stream: str | None = None
    acked: int = 0
    sent: int = 0
    closing: bool = False


@dataclass(slots=True)
class PoolCounters:
    """Monotonic counters, read by /metrics and /ws/health."""

    opened: int = 0
    closed_by_code: Counter[int] = field(default_factory=Counter)
    refused_by_kind: Counter[str] = field(default_factory=Counter)
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def refused(self) -> int:
        return sum(self.refused_by_kind.values())


class ConnectionPool:
    """Admission control, the session registry and lifecycle counters.

    ``max_connections`` / ``max_per_client`` of 0 mean unlimited.
    """

    def __init__(
        self,
        max_connections: int = 0,
        max_per_client: int = 0,
        retry_after: int = 1,
        clock: Clock | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.retry_after = retry_after
        self.clock = clock or MonotonicClock()
        self.counters = PoolCounters()
        self._sessions: dict[Any, Session] = {}
        self._per_address: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return (
            f"ConnectionPool(active={len(self)}, max_connections={self.max_connections}, "
            f"max_per_client={self.max_per_client})"
        )

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    @property
    def at_capacity(self) -> bool:
        return 0 < self.max_connections <= len(self._sessions)

    def check(self, address: str) -> Refusal | None:
        """Would a new connection from ``address`` be refused? (Takes nothing.)"""
        if self.at_capacity:
            return Refusal(
                503,
                f"server at capacity ({self.max_connections} connections); retry later",
                "capacity",
                self.retry_after,
            )
        if 0 < self.max_per_client <= self._per_address[address]:
            return Refusal(
                503,
                f"too many connections from {address} (limit {self.max_per_client})",
                "per_client",
                self.retry_after,
            )
        return None

    def refuse(self, refusal: Refusal) -> Refusal:
        """Count a refusal of any kind (capacity, auth, origin, ...)."""
        self.counters.refused_by_kind[refusal.kind] += 1
        return refusal

    def admit(self, conn: Any, address: str) -> Session | Refusal:
        """Take a slot for ``conn`` or say why not; a refusal is counted."""
        refusal = self.check(address)
        if refusal is not None:
            return self.refuse(refusal)
        session = Session(next(self._ids), conn, address, self.clock.now())
        self._sessions[conn] = session
        self._per_address[address] += 1
        self.counters.opened += 1
        return session

    def get(self, conn: Any) -> Session | None:
        return self._sessions.get(conn)

    def release(self, conn: Any, code: int | None) -> Session | None:
        """Give the slot back (idempotent) and count the close code."""
        session = self._sessions.pop(conn, None)
        if session is None:
            return None
        self._per_address[session.address] -= 1
        if self._per_address[session.address] <= 0:
            del self._per_address[session.address]
        self.counters.closed_by_code[code if code is not None else 1006] += 1
        return session

    def ages(self) -> list[float]:
        now = self.clock.now()
        return [now - s.opened_at for s in self._sessions.values()]
