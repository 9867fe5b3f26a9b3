"""Is the instrument itself trustworthy? Saturation of the measuring processes.

A probe or load-generator process stamps every instant in its event loop. When that
loop is late (busy with other probes, starved of CPU), the delay lands in the figures it
reports: a 600 ms-late loop adds up to 600 ms to a reconnect time. So every measuring
process reports its own loop lag (how late a 100 ms sleep wakes up) and its CPU share,
and a timing verdict is only given when the instrument was healthy:

- **saturated** — any measuring process had loop lag p99 above ``LAG_P99_BOUND`` or
  max above ``LAG_MAX_BOUND``, or used more than ``CPU_BOUND`` of a core: every timing
  criterion is INCONCLUSIVE, with the reason and what to change;
- **too close to call** — healthy, but the measured figure is nearer its bound than the
  largest delay the loop itself showed (its lag max): that criterion is INCONCLUSIVE.

The bounds are documented in docs/reports.md. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LAG_P99_BOUND = 0.020  # s: a late loop at the 99th percentile distorts ms-scale figures
LAG_MAX_BOUND = 0.250  # s: one stall this long moves a sub-second tail by as much
CPU_BOUND = 0.90  # share of one core over the run: past it the loop queues work


@dataclass(frozen=True, slots=True)
class ProcessHealth:
    """One measuring process: its CPU share of a core and its loop lag (seconds)."""

    name: str
    cpu: float | None
    lag_p99: float | None
    lag_max: float | None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], name: str = "probes") -> ProcessHealth:
        def number(key: str) -> float | None:
            value = obj.get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(str(obj.get("name", name)), number("cpu"), number("loop_lag_p99"),
                   number("loop_lag_max"))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "cpu": self.cpu, "loop_lag_p99": self.lag_p99,
                "loop_lag_max": self.lag_max}

    def problems(self) -> list[str]:
        out = []
        if self.lag_p99 is not None and self.lag_p99 > LAG_P99_BOUND:
            out.append(f"its event loop ran {self.lag_p99 * 1000:.0f} ms late at p99 "
                       f"(bound {LAG_P99_BOUND * 1000:.0f} ms)")
        if self.lag_max is not None and self.lag_max > LAG_MAX_BOUND:
            out.append(f"one loop stall lasted {self.lag_max * 1000:.0f} ms "
                       f"(bound {LAG_MAX_BOUND * 1000:.0f} ms)")
        if self.cpu is not None and self.cpu > CPU_BOUND:
            out.append(f"it used {self.cpu * 100:.0f}% of a core "
                       f"(bound {CPU_BOUND * 100:.0f}%)")
        return out


@dataclass(frozen=True, slots=True)
class Instrument:
    """The measuring processes of one run."""

    processes: tuple[ProcessHealth, ...]

    @classmethod
    def from_json(cls, items: Iterable[Mapping[str, Any]]) -> Instrument:
        return cls(tuple(ProcessHealth.from_json(item) for item in items))

    @property
    def measured(self) -> bool:
        """Whether any process reported its loop lag (else nothing can be said)."""
        return any(p.lag_p99 is not None for p in self.processes)

    def saturation(self) -> str | None:
        """Why the instrument was saturated, with what to change; None when it was not."""
        reasons = [f"{p.name}: {'; '.join(p.problems())}" for p in self.processes
                   if p.problems()]
        if not reasons:
            return None
        return ("the measuring side was saturated - " + " | ".join(reasons) +
                " - its timings include its own delay; run fewer probes per process "
                "(probes.processes / --processes) or give the run a quieter machine")

    @property
    def distortion(self) -> float:
        """The largest delay the instrument showed itself (its worst loop stall), s."""
        return max((p.lag_max for p in self.processes if p.lag_max is not None),
                   default=0.0)

    def too_close(self, measured: float, threshold: float) -> str | None:
        """Why a healthy instrument still cannot call ``measured`` against ``threshold``."""
        margin = abs(measured - threshold)
        stall = self.distortion
        if stall > 0 and margin <= stall:
            return (f"measured {measured:.4g}s is within {margin * 1000:.0f} ms of the bound, "
                    f"less than the instrument's own worst loop stall ({stall * 1000:.0f} ms)")
        return None


__all__ = ["CPU_BOUND", "LAG_MAX_BOUND", "LAG_P99_BOUND", "Instrument", "ProcessHealth"]
