"""Injectable time: components take a ``Clock`` so tests can run on virtual time.

``MonotonicClock`` is the real one. ``FakeClock`` only moves when told to (``advance``)
or when something sleeps on it, so a "100-second" wait takes no real time and tests
can assert exact virtual instants.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """What components need from time: a monotonic reading and a sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "MonotonicClock()"


class FakeClock:
    """Virtual time for tests: sleepers wake in order of their deadlines on ``advance``.

    ``advance(dt)`` moves time forward, waking every sleeper whose deadline passed, in
    deadline order, and lets each woken task run before moving on.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def pending(self) -> int:
        """Number of tasks currently sleeping on this clock."""
        return sum(1 for *_, fut in self._sleepers if not fut.done())

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``, waking sleepers as their time comes."""
        target = self._now + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self._now = target

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"


async def _settle(rounds: int = 20) -> None:
    """Let ready tasks run until they block again (bounded number of loop turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
