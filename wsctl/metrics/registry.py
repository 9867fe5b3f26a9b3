"""A named set of histograms and counters that one run (or one process of a run) fills."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from wsctl.metrics.histogram import Histogram, Unit

GaugeUnit = Literal["count", "bytes", "ratio", "per_s", "s"]
GAUGE_UNITS: tuple[GaugeUnit, ...] = ("count", "bytes", "ratio", "per_s", "s")


@dataclass(slots=True)
class Gauge:
    """One measured figure that is not a distribution: RSS per connection, a peak rate."""

    value: float
    unit: GaugeUnit = "count"


class MetricSet:
    """Histograms, integer counters and gauges by metric name (DESIGN.md section 6).

    Recording is plain attribute work with no I/O, so one set can be shared by thousands
    of probes in one event loop; sets from several processes combine with ``merge``.
    """

    __slots__ = ("histograms", "counters", "gauges")

    def __init__(
        self, histograms: Iterable[tuple[str, Unit]] = (), counters: Iterable[str] = ()
    ) -> None:
        self.histograms: dict[str, Histogram] = {n: Histogram(n, u) for n, u in histograms}
        self.counters: dict[str, int] = dict.fromkeys(counters, 0)
        self.gauges: dict[str, Gauge] = {}

    def histogram(self, name: str, unit: Unit = "s") -> Histogram:
        """The histogram called ``name``, created on first use."""
        hist = self.histograms.get(name)
        if hist is None:
            hist = self.histograms[name] = Histogram(name, unit)
        return hist

    def record(self, name: str, value: float) -> None:
        """Record ``value`` in the existing histogram ``name``."""
        self.histograms[name].record(value)

    def add(self, name: str, amount: int = 1) -> None:
        """Increase counter ``name`` (created at zero on first use)."""
        self.counters[name] = self.counters.get(name, 0) + amount

    def set_gauge(self, name: str, value: float, unit: GaugeUnit = "count") -> None:
        """Set gauge ``name`` to ``value`` (replacing any earlier value)."""
        if unit not in GAUGE_UNITS:
            raise ValueError(f"gauge unit must be one of {', '.join(GAUGE_UNITS)}")
        self.gauges[name] = Gauge(float(value), unit)

    def merge(self, other: MetricSet) -> None:
        """Add every histogram value, counter and gauge of ``other`` into this set.

        Gauges are added too: split over processes, each process holds a share of one
        whole (connections held, CPU used). A figure that must not be summed (a peak, a
        per-connection ratio) is computed after merging, from the merged parts.
        """
        for name, hist in other.histograms.items():
            self.histogram(name, hist.unit).merge(hist)
        for name, value in other.counters.items():
            self.add(name, value)
        for name, gauge in other.gauges.items():
            mine = self.gauges.get(name)
            total = gauge.value + (mine.value if mine is not None else 0.0)
            self.gauges[name] = Gauge(total, gauge.unit)

    def __repr__(self) -> str:
        return (f"MetricSet(histograms={sorted(self.histograms)}, counters={self.counters}, "
                f"gauges={self.gauges})")
