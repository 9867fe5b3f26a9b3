"""HealthMonitor: ping/pong liveness of every connection, from one scheduler.

A connection is pinged ``interval`` seconds after its previous ping was answered. If no
pong arrives within ``timeout`` of a ping, the peer is dead (half-open: TCP says
nothing) and is closed with 1011, so detection takes at most ``interval + timeout``
after the peer's last answer. States: ``healthy`` (no ping outstanding, or one younger
than ``timeout / 2``), ``late`` (outstanding longer than that), ``dead``.

``LivenessTracker`` is the pure core (no I/O, times passed in); ``HealthMonitor`` drives
it on a clock and talks to connections through two callables.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from wsctl.clock import Clock, MonotonicClock

HEALTHY, LATE, DEAD = "healthy", "late", "dead"


@dataclass(slots=True)
class _Peer:
    ping_sent: float | None = None
    last_pong: float | None = None
    generation: int = 0


class LivenessTracker:
    """Pure liveness bookkeeping for many peers, driven by ``due(now)``."""

    def __init__(self, interval: float, timeout: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("ping interval and timeout must be positive")
        self.interval = interval
        self.timeout = timeout
        self._peers: dict[Hashable, _Peer] = {}
        self._heap: list[tuple[float, int, Hashable, int]] = []
        self._seq = itertools.count()
        self.dead_detected = 0

    def __len__(self) -> int:
        return len(self._peers)

    def _schedule(self, when: float, key: Hashable, peer: _Peer) -> None:
        peer.generation += 1
        heapq.heappush(self._heap, (when, next(self._seq), key, peer.generation))

    def add(self, key: Hashable, now: float) -> None:
        """Track a new peer; its first ping is due one interval from now."""
        peer = _Peer()
        self._peers[key] = peer
        self._schedule(now + self.interval, key, peer)

    def remove(self, key: Hashable) -> None:
        """Stop tracking a peer (closed for any reason)."""
        self._peers.pop(key, None)

    def pong(self, key: Hashable, now: float) -> float | None:
        """Record a pong; returns the round-trip time, or None if no ping was outstanding."""
        peer = self._peers.get(key)
        if peer is None or peer.ping_sent is None:
            return None
        rtt = now - peer.ping_sent
        peer.last_pong = now
        self._schedule(max(now, peer.ping_sent + self.interval), key, peer)
        peer.ping_sent = None
        return rtt

    def due(self, now: float) -> tuple[list[Hashable], list[Hashable]]:
        """Peers to ping now, and peers found dead now (no longer tracked after this)."""
        to_ping: list[Hashable] = []
        dead: list[Hashable] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, key, generation = heapq.heappop(heap)
            peer = self._peers.get(key)
            if peer is None or peer.generation != generation:
                continue
            if peer.ping_sent is None:
                peer.ping_sent = now
                self._schedule(now + self.timeout, key, peer)
                to_ping.append(key)
            else:
                del self._peers[key]
                self.dead_detected += 1
                dead.append(key)
        return to_ping, dead

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def state(self, key: Hashable, now: float) -> str:
        peer = self._peers.get(key)
        if peer is None:
            return DEAD
        if peer.ping_sent is not None and now - peer.ping_sent > self.timeout / 2:
            return LATE
        return HEALTHY

    def counts(self, now: float) -> dict[str, int]:
        """How many tracked peers are healthy and late right now."""
        late = sum(
            1
            for peer in self._peers.values()
            if peer.ping_sent is not None and now - peer.ping_sent > self.timeout / 2
        )
        return {HEALTHY: len(self._peers) - late, LATE: late}


class HealthMonitor:
    """Runs a ``LivenessTracker`` for all connections in one task.

    ``send_ping(key)`` must write a ping to the connection without blocking;
    ``close_dead(key)`` must close it with 1011. Pongs are reported with ``pong(key)``.
    """

    def __init__(
        self,
        interval: float,
        timeout: float,
        send_ping: Callable[[Hashable], None],
        close_dead: Callable[[Hashable], None],
        clock: Clock | None = None,
        max_tick: float = 0.1,
    ) -> None:
        self.tracker = LivenessTracker(interval, timeout)
        self.send_ping = send_ping
        self.close_dead = close_dead
        self.clock = clock or MonotonicClock()
        self.tick = min(max_tick, interval / 10, timeout / 10)

    def __repr__(self) -> str:
        return f"HealthMonitor(interval={self.tracker.interval}, timeout={self.tracker.timeout})"

    @property
    def dead_detected(self) -> int:
        return self.tracker.dead_detected

    def add(self, key: Hashable) -> None:
        self.tracker.add(key, self.clock.now())

    def remove(self, key: Hashable) -> None:
        self.tracker.remove(key)

    def pong(self, key: Hashable) -> float | None:
        return self.tracker.pong(key, self.clock.now())

    def counts(self) -> dict[str, int]:
        return self.tracker.counts(self.clock.now())

    def step(self) -> None:
        """Send the pings that are due and close the peers found dead."""
        to_ping, dead = self.tracker.due(self.clock.now())
        for key in to_ping:
            self.send_ping(key)
        for key in dead:
            self.close_dead(key)

    async def run(self) -> None:
        """Check liveness forever, waking exactly when the next ping or deadline is due
        (and at least every tick); cancel the task to stop."""
        while True:
            self.step()
            delay = self.tick
            next_due = self.tracker.next_due()
            if next_due is not None:
                delay = min(delay, max(0.0, next_due - self.clock.now()))
            await self.clock.sleep(delay)
