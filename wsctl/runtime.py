"""Tuning of the interpreter for processes that hold thousands of connections.

``quiet_gc()`` is for a process that owns its interpreter (the CLI, bench workers,
benchmarks) once its long-lived objects exist: it freezes the heap and makes young
collections rarer. With thousands of connections a full collection otherwise stalls the
event loop for ~0.5 s — long enough to miss pongs and report a healthy server as dead.
Leaving the block unfreezes the heap and restores the thresholds it found.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator

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


__all__ = ["QUIET_THRESHOLDS", "LoopFactory", "loop_factory", "quiet_gc"]
