"""Latencies on their way into HDR histograms, cheaply: integer microseconds are appended
to an array on the hot path and recorded in bulk, one HDR call per non-empty HDR bucket
(hdrh's pure-Python ``record_value`` costs many appends). Used by the engine and the
Locust user.
"""

from __future__ import annotations

from array import array
from collections import Counter

from wsctl.metrics import Histogram
from wsctl.metrics.histogram import HIGHEST

__all__ = ["Samples", "lowest_equivalent", "record_many"]


def lowest_equivalent(hdr: object, value: int) -> int:
    """The smallest value HDR files in the same bucket as ``value`` (``value`` >= 0).

    Recording it instead of ``value`` fills the same counter, and the summaries read a
    bucket's bounds, never the value itself: the histogram is identical. Computed here
    with a shift instead of hdrh's ``get_lowest_equivalent_value`` (several Python calls).
    """
    unit = hdr.unit_magnitude  # type: ignore[attr-defined]
    bits = hdr.sub_bucket_half_count_magnitude + 1  # type: ignore[attr-defined]
    shift = max((value >> unit).bit_length() - bits, 0) + unit
    return value >> shift << shift


def record_many(hist: Histogram, values_us: array) -> None:
    """Put integer microseconds into ``hist`` (unit "s"), one HDR call per bucket; values
    outside the histogram's range are clamped and counted in ``hist.clamped``."""
    hdr = hist._hdr  # bulk recording: Histogram.record takes one value at a time
    top = HIGHEST["s"]
    buckets: Counter[int] = Counter()
    # Two steps: Counter counts the (many) values at C speed, then the (fewer) distinct
    # ones are folded into their buckets, so hdrh is called once per bucket.
    for value, count in Counter(values_us).items():
        if value < 0 or value > top:
            hist.clamped += count
            value = min(max(value, 0), top)
        buckets[lowest_equivalent(hdr, value)] += count
    for value, count in buckets.items():
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
