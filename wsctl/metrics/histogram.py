"""Duration and count histograms on HdrHistogram, with summaries and lossless merging.

Durations are recorded in microseconds (DESIGN.md section 6) and reported in seconds;
counts are recorded and reported as they are. A histogram travels between processes as
HdrHistogram's compressed base64 encoding, so merged results are exact — percentiles
are never averaged.
"""

from __future__ import annotations

from typing import Any, Literal

from hdrh.histogram import HdrHistogram

Unit = Literal["s", "count"]

# Largest recordable value per unit: one hour in microseconds, a million for counts.
HIGHEST = {"s": 3_600_000_000, "count": 1_000_000}
SIGNIFICANT_FIGURES = 3
SCALE = {"s": 1_000_000, "count": 1}
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


class Histogram:
    """One metric's distribution. ``record`` takes seconds (unit "s") or counts."""

    __slots__ = ("name", "unit", "_hdr", "clamped")

    def __init__(self, name: str, unit: Unit = "s") -> None:
        if unit not in SCALE:
            raise ValueError(f"unit must be 's' or 'count', not {unit!r}")
        self.name = name
        self.unit: Unit = unit
        self._hdr = HdrHistogram(1, HIGHEST[unit], SIGNIFICANT_FIGURES)
        self.clamped = 0  # values outside [0, highest] recorded at the nearest bound

    def record(self, value: float) -> None:
        """Record one value in the histogram's unit (negative and huge values are clamped)."""
        raw = round(value * SCALE[self.unit])
        if raw < 0 or raw > HIGHEST[self.unit]:
            self.clamped += 1
            raw = min(max(raw, 0), HIGHEST[self.unit])
        self._hdr.record_value(raw)

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def merge(self, other: Histogram) -> None:
        """Add every value of ``other`` (same unit) into this histogram."""
        if other.unit != self.unit:
            raise ValueError(f"cannot merge {other.unit} histogram into {self.unit} histogram")
        self._hdr.add(other._hdr)
        self.clamped += other.clamped

    def _recorded(self) -> tuple[list[int], list[int], list[int]]:
        """Lowest value, highest value and count of every non-empty HDR bucket, in order.

        One pass over the counts array at C speed; hdrhistogram's own iterators walk all
        of it in Python (~100 ms a call), which would stall a loop serving many probes.
        Buckets are contiguous, so a bucket's highest value is the next one's lowest - 1.
        """
        hdr = self._hdr
        counts = hdr.counts[:]
        last = len(counts) - 1
        indexes = [i for i in range(len(counts)) if counts[i]]
        lows = [hdr.get_value_from_index(i) for i in indexes]
        highs = [hdr.get_value_from_index(i + 1) - 1 if i < last
                 else hdr.get_highest_equivalent_value(low)
                 for i, low in zip(indexes, lows, strict=True)]
        return lows, highs, [counts[i] for i in indexes]

    def buckets(self) -> list[tuple[float, float, int]]:
        """Lowest value, highest value and count of every non-empty bucket, in order and
        in the unit (seconds or counts): the distribution for charts, without HDR."""
        scale = SCALE[self.unit]
        lows, highs, counts = self._recorded()
        return [(low / scale, high / scale, int(n))
                for low, high, n in zip(lows, highs, counts, strict=True)]

    def summary(self) -> dict[str, Any]:
        """count, mean, min, p50, p90, p99, p99.9, max in the unit; ``None`` when empty."""
        count = self.count
        out: dict[str, Any] = {"count": count}
        if count == 0:
            out.update(dict.fromkeys(("mean", "min", *(n for n, _ in PERCENTILES), "max")))
            return out
        scale = SCALE[self.unit]
        hdr = self._hdr
        lows, highs, counts = self._recorded()
        # HDR's mean: each value counts as the middle of its bucket.
        total = sum(n * (lo + ((hi - lo + 1) >> 1))
                    for lo, hi, n in zip(lows, highs, counts, strict=True))
        out["mean"] = total / count / scale
        out["min"] = hdr.get_min_value() / scale
        for name, pct in PERCENTILES:
            target = hdr.get_target_count_at_percentile(pct)
            seen = 0
            for high, n in zip(highs, counts, strict=True):
                seen += n
                if seen >= target:
                    out[name] = high / scale
                    break
        out["max"] = hdr.get_max_value() / scale
        return out

    def cumulative(self, bounds: list[float]) -> list[int]:
        """How many values are <= each bound (in the unit), for Prometheus buckets."""
        scale = SCALE[self.unit]
        _, highs, counts = self._recorded()
        return [sum(n for high, n in zip(highs, counts, strict=True) if high <= bound * scale)
                for bound in bounds]

    @property
    def total(self) -> float:
        """Sum of recorded values in the unit (mean x count; HDR-precision)."""
        mean = self.summary()["mean"]
        return mean * self.count if mean is not None else 0.0

    def encode(self) -> str:
        """HdrHistogram's compressed base64 form, for merging in another process."""
        return self._hdr.encode().decode("ascii")

    @classmethod
    def decode(cls, name: str, unit: Unit, encoded: str) -> Histogram:
        """Rebuild a histogram from ``encode()`` output."""
        hist = cls(name, unit)
        hist._hdr.add(HdrHistogram.decode(encoded.encode("ascii")))
        return hist

    def __repr__(self) -> str:
        return f"Histogram({self.name!r}, unit={self.unit!r}, count={self.count})"
