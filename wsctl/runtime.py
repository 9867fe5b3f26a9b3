"""Tuning of the interpreter for processes that hold thousands of connections.

``quiet_gc()`` is for a process that owns its interpreter (the CLI, probe workers,
benchmarks) once its long-lived objects exist: it freezes the heap and makes young
collections rarer. With thousands of connections a full collection otherwise stalls the
event loop for ~0.5 s — long enough to miss pongs and report a healthy server as dead.
Leaving the block unfreezes the heap and restores the thresholds it found.

``PacedCollector`` is for a process whose loop holds thousands of connections while it
measures or serves (the reference server, ``wsctl bench``): the collector is driven by
its event loop's clock instead of by allocation counts, and a full collection runs only
when connections have ended (class docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from wsctl.errors import InvalidInput

QUIET_THRESHOLDS = (50_000, 50, 1000)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect once, freeze what exists, and collect rarely until the block ends."""
    saved = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*QUIET_THRESHOLDS)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)


# Largest threshold CPython takes: the generation is never collected automatically.
NEVER = 2**31 - 1


def _rss() -> int:
    """This process's resident set in bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class PacedCollector:
    """CPython's cycle collector paced by the event loop, for a process that holds
    thousands of connections for good.

    Measured on the reference server at 10,000 connections (1 event/s each, Python 3.11),
    the default collector stalled the loop twice over:

    - **Young collections of 100,000+ objects (60-140 ms).** CPython starts one when
      allocations *minus deallocations* pass 700; a server that replaces old objects
      with new ones (a Future per receive, a frame per event) frees about as much as it
      allocates, so the count stays low while the young generation fills with live
      objects.
    - **A full collection every ~2.5 s (450-650 ms).** One runs when the objects promoted
      since the last pass a quarter of the old generation; a receive's Future lives until
      the peer's next message, so it is promoted, and 10,000 connections promote a
      quarter of their 600,000 objects in seconds. Every pass found nothing to free.

    Here the young generation is collected every ``young`` seconds of the loop (and the
    middle one every ``middle_every`` young passes), so each pass sees only what a few
    milliseconds made. A full collection runs when what it exists for may have
    happened: cyclic garbage outlives the young passes when long-lived things end (a
    closed connection leaves ~10 objects in cycles), so one runs once the connections
    ended since the last reach ``share`` of those open (and at least ``floor``), or when
    the process's RSS has doubled *and* grown by ``LEAK`` since the last (a backstop
    for garbage of any other origin; a plain doubling would fire during every ramp,
    where RSS grows with the connections). The automatic thresholds are kept only
    as a backstop against a loop that stops turning (``SAFETY``). Every collection's
    pause is recorded (``pauses``, ``longest``) so that the price stays visible.
    """

    SAFETY = 100_000  # young allocations (net) that still start a collection on their own
    LEAK = 512 * 2**20  # RSS growth (bytes, and at least doubled) that forces a full one

    def __init__(self, young: float = 0.02, middle_every: int = 10, share: float = 0.25,
                 floor: int = 1000, rss: Callable[[], int] = _rss) -> None:
        self.young = young
        self.middle_every = middle_every
        self.share = share
        self.floor = floor
        self._rss = rss
        self.ended_at_full = 0  # ended_total() at the last full collection
        self.rss_after_full = 0
        self.collections = [0, 0, 0]  # by generation, automatic ones included
        self.longest = [0.0, 0.0, 0.0]  # longest pause by generation, seconds
        self._saved: tuple[int, int, int] | None = None
        self._unfreeze = True
        self._began = 0.0

    def __repr__(self) -> str:
        return (f"PacedCollector(young={self.young}, share={self.share}, "
                f"floor={self.floor}, collections={self.collections})")

    def wants_full(self, open_now: int, ended_since: int, rss: int) -> bool:
        """Whether a full collection is worth its pause now, with ``open_now`` connections
        open, ``ended_since`` ended since the last full collection and ``rss`` bytes."""
        if ended_since >= max(self.floor, self.share * open_now):
            return True
        grown = rss - self.rss_after_full
        return bool(self.rss_after_full) and grown >= self.rss_after_full and grown >= self.LEAK

    def _timed(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        generation = info["generation"]
        pause = time.perf_counter() - self._began
        self.collections[generation] += 1
        if pause > self.longest[generation]:
            self.longest[generation] = pause

    def install(self) -> None:
        """Collect and freeze what start-up made, and take the collector's pacing over."""
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        self._unfreeze = gc.get_freeze_count() == 0  # else a quiet_gc() around us owns it
        gc.collect()
        gc.freeze()  # the imports' heap: never garbage, never scanned again
        self.rss_after_full = self._rss()
        gc.set_threshold(self.SAFETY, NEVER, NEVER)
        gc.callbacks.append(self._timed)

    def uninstall(self) -> None:
        """Give the collector back to CPython as it was."""
        if self._saved is None:
            return
        gc.callbacks.remove(self._timed)
        gc.set_threshold(*self._saved)
        if self._unfreeze:
            gc.unfreeze()
        self._saved = None

    def full(self, ended_total: int) -> None:
        gc.collect()
        self.ended_at_full = ended_total
        self.rss_after_full = self._rss()

    async def run(self, open_now: Callable[[], int], ended_total: Callable[[], int]) -> None:
        """Collect on the loop's clock until cancelled (``install`` first). ``open_now``:
        connections open; ``ended_total``: connections ended so far (never decreases)."""
        passes = 0
        while True:
            await asyncio.sleep(self.young)
            passes += 1
            if passes % 50 == 0:  # about once a second: is a full collection due?
                ended = ended_total()
                if self.wants_full(open_now(), ended - self.ended_at_full, self._rss()):
                    self.full(ended)
                    continue
            if passes % self.middle_every == 0:
                gc.collect(1)
            else:
                gc.collect(0)


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str) -> LoopFactory | None:
    """The event loop ``--loop NAME`` asks for, for ``asyncio.Runner(loop_factory=...)``:
    ``asyncio`` is asyncio's own (None), ``uvloop`` is uvloop (InvalidInput if it is not
    installed), ``auto`` is uvloop where installed, else asyncio's own."""
    if name == "asyncio":
        return None
    if name not in ("auto", "uvloop"):
        raise InvalidInput(f"unknown --loop {name!r}; choose auto, asyncio or uvloop")
    try:
        import uvloop
    except ImportError as exc:
        if name == "auto":
            return None
        raise InvalidInput("--loop uvloop needs the uvloop package: pip install uvloop "
                           "(or use --loop asyncio)") from exc
    factory: LoopFactory = uvloop.new_event_loop
    return factory


__all__ = ["QUIET_THRESHOLDS", "LoopFactory", "PacedCollector", "loop_factory", "quiet_gc"]
