"""What a person sees: a rich progress bar with live figures on a TTY, a plain line every
few seconds otherwise, and the summary table at the end (the criteria table is
``wsctl.report.console``'s, the same as ``wsctl run``'s)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wsctl.metrics import Result
from wsctl.results.criteria import format_value


def live_line(snap: dict[str, Any], connections: int) -> str:
    """The live figures in one line."""
    return (f"held {snap.get('held', 0):,}/{connections:,}  opened {snap.get('opened', 0):,}  "
            f"failed {snap.get('failed', 0):,}  sent {snap.get('sent', 0):,}  "
            f"received {snap.get('received', 0):,}  {snap.get('rate', 0):,.0f} msg/s")


class Display:
    """Progress while the bench runs. ``view``: live (rich bar), plain (a line every
    ``every`` seconds) or quiet (nothing). ``update`` may be called from any thread."""

    def __init__(self, console: Console, *, view: str, total: float, connections: int,
                 every: float = 5.0) -> None:
        self.console = console
        self.view = view
        self.total = total
        self.connections = connections
        self.every = every
        self._last_plain = 0.0
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> Display:
        if self.view == "live":
            self._progress = Progress(
                TextColumn("[bold]bench[/]"), BarColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=self.console, transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, snap: dict[str, Any]) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.update(self._task, completed=min(snap.get("t", 0.0), self.total),
                                      description=live_line(snap, self.connections))
            elif self.view == "plain":
                now = time.monotonic()
                if now - self._last_plain >= self.every:
                    self._last_plain = now
                    self.console.print(f"wsctl bench: t={snap.get('t', 0.0):.0f}s  "
                                       f"{live_line(snap, self.connections)}",
                                       highlight=False, soft_wrap=True)


def _stat(result: Result, name: str, stat: str) -> str:
    hist = result.metrics.histograms.get(name)
    if hist is None or hist.count == 0:
        return "—"
    return format_value(hist.summary()[stat], "s")


def summary(result: Result) -> Table:
    """The run's figures as a table."""
    m = result.metrics
    table = Table(title=f"wsctl bench: {result.target}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("connect_time", "rtt", "rtt.uncorrected", "delivery_latency",
                 "generator.loop_lag"):
        hist = m.histograms.get(name)
        if hist is None:
            continue
        figures = "  ".join(f"{s} {_stat(result, name, s)}" for s in ("p50", "p99", "max"))
        table.add_row(f"{name} ({hist.count:,})", figures)
    for name in sorted(m.counters):
        if name.startswith(("errors.", "closes.")) and m.counters[name] == 0 \
                and name not in ("errors.refused", "errors.timeout"):
            continue
        table.add_row(name, f"{m.counters[name]:,}")
    for name in sorted(m.gauges):
        gauge = m.gauges[name]
        table.add_row(name, format_value(gauge.value, gauge.unit))
    return table


