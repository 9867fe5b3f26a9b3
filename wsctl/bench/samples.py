"""Latencies on their way into HDR histograms, cheaply: integer microseconds are appended
to an array on the hot path and recorded in bulk, one HDR call per distinct value (hdrh's
pure-Python ``record_value`` costs many appends). Used by the engine and the Locust user.
"""

from __future__ import annotations

from array import array
from collections import Counter

from wsctl.metrics import Histogram
from wsctl.metrics.histogram import HIGHEST

__all__ = ["Samples", "record_many"]


def record_many(hist: Histogram, values_us: array) -> None:
    """Put integer microseconds into ``hist`` (unit "s"), one HDR call per distinct value;
    values outside the histogram's range are clamped and counted in ``hist.clamped``."""
    hdr = hist._hdr  # bulk recording: Histogram.record takes one value at a time
    top = HIGHEST["s"]
    for value, count in Counter(values_us).items():
        if value < 0 or value > top:
            hist.clamped += count
            value = min(max(value, 0), top)
        hdr.record_value(value, count)


class Samples:
    """A buffer of latencies in seconds for one histogram, flushed into it when ``LIMIT``
    values are waiting and whenever the owner asks (before every report)."""

    __slots__ = ("hist", "buf")
    LIMIT = 200_000

    def __init__(self, hist: Histogram) -> None:
        self.hist = hist
        self.buf = array("q")

    def add(self, seconds: float) -> None:
        self.buf.append(int(seconds * 1_000_000))
        if len(self.buf) >= self.LIMIT:
            self.flush()

    def flush(self) -> None:
        record_many(self.hist, self.buf)
        self.buf = array("q")
