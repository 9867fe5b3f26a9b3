"""Tuning of the interpreter for processes that hold thousands of connections.

``quiet_gc()`` is for a process that owns its interpreter (the CLI, bench workers,
benchmarks) once its long-lived objects exist: it freezes the heap and makes young
collections rarer. With thousands of connections a full collection otherwise stalls the
event loop for ~0.5 s — long enough to miss pongs and report a healthy server as dead.
Leaving the block unfreezes the heap and restores the thresholds it found.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

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


__all__ = ["QUIET_THRESHOLDS", "quiet_gc"]
