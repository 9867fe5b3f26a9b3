"""A named set of histograms and counters that one run (or one process of a run) fills."""

from __future__ import annotations

from collections.abc import Iterable

from wsctl.metrics.histogram import Histogram, Unit


class MetricSet:
    """Histograms and integer counters by metric name (names as in DESIGN.md section 6).

    Recording is plain attribute work with no I/O, so one set can be shared by thousands
    of probes in one event loop; sets from several processes combine with ``merge``.
    """

    __slots__ = ("histograms", "counters")

    def __init__(
        self, histograms: Iterable[tuple[str, Unit]] = (), counters: Iterable[str] = ()
    ) -> None:
        self.histograms: dict[str, Histogram] = {n: Histogram(n, u) for n, u in histograms}
        self.counters: dict[str, int] = dict.fromkeys(counters, 0)

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

    def merge(self, other: MetricSet) -> None:
        """Add every histogram value and counter of ``other`` into this set."""
        for name, hist in other.histograms.items():
            self.histogram(name, hist.unit).merge(hist)
        for name, value in other.counters.items():
            self.add(name, value)

    def __repr__(self) -> str:
        return f"MetricSet(histograms={sorted(self.histograms)}, counters={self.counters})"
