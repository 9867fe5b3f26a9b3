"""What a person sees while probes run: a live rich view on a TTY, plain lines otherwise,
and a summary table at the end. Reads the fleet; never changes it."""

from __future__ import annotations

import asyncio
import time
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from wsctl.metrics import Result
from wsctl.metrics.instrument import Instrument
from wsctl.probe.machine import HISTOGRAMS, State
from wsctl.probe.workers import AnyFleet

STATE_STYLE = {
    State.OPEN: "green", State.CONNECTING: "yellow", State.BACKOFF: "yellow",
    State.LOST: "red", State.CLOSED: "dim", State.GAVE_UP: "bold red",
}
MAX_ROWS = 20


def _ms(seconds: float | None) -> str:
    """Short duration: ``0.9ms``, ``838ms``, ``1.24s``."""
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    return f"{seconds * 1000:.1f}ms" if seconds < 0.1 else f"{seconds * 1000:.0f}ms"


def status_line(fleet: AnyFleet) -> str:
    """One line: elapsed time, probes by state, messages and the latest percentiles."""
    states = fleet.states()
    counters = fleet.metrics.counters
    rtt_hist = fleet.metrics.histograms.get("rtt")
    rtt = rtt_hist.summary() if rtt_hist is not None else {"count": 0}
    elapsed = fleet.clock.now() - fleet.started_mono
    parts = [f"t={elapsed:.1f}s"]
    parts += [f"{name}={n}" for name, n in states.items() if n]
    parts.append(f"received={counters['messages.received']}")
    if "messages.lost" in counters:  # only where a sequence says what is missing
        parts.append(f"lost={counters['messages.lost']}")
    parts.append(f"reconnects={sum(p.machine.reconnects for p in fleet.probes)}")
    if rtt["count"]:
        parts.append(f"rtt_p50={_ms(rtt['p50'])} rtt_p99={_ms(rtt['p99'])}")
    return " ".join(parts)


def live_table(fleet: AnyFleet) -> Group:
    """The live view: the status line, then one row per probe (the first ``MAX_ROWS``)."""
    table = Table(expand=False, box=None, pad_edge=False)
    for column in ("probe", "state", "reconnects", "rtt", "latency", "last error"):
        table.add_column(column)
    for probe in fleet.probes[:MAX_ROWS]:
        m = probe.machine
        table.add_row(
            str(m.index), Text(m.state.value, style=STATE_STYLE[m.state]), str(m.reconnects),
            _ms(m.last_rtt), _ms(m.last_latency), m.last_error[:60],
        )
    rest = len(fleet.probes) - MAX_ROWS
    footer = Text(f"… and {rest} more probes" if rest > 0 else "", style="dim")
    return Group(Text(status_line(fleet)), table, footer)


async def show_live(fleet: AnyFleet, console: Console, refresh: float = 0.5) -> None:
    """Redraw the live view until cancelled."""
    with Live(live_table(fleet), console=console, auto_refresh=False, transient=True) as live:
        while True:
            await asyncio.sleep(refresh)
            live.update(live_table(fleet), refresh=True)


async def print_progress(fleet: AnyFleet, out: IO[str], interval: float) -> None:
    """Print ``status_line`` every ``interval`` seconds until cancelled."""
    next_at = time.monotonic() + interval
    while True:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        print(status_line(fleet), file=out, flush=True)


def summary(result: Result) -> Group:
    """The end-of-run summary: durations table, counters, probe states."""
    table = Table(title="probe summary", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for column in ("count", "mean", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, unit in HISTOGRAMS:
        hist = result.metrics.histograms.get(name)
        s = hist.summary() if hist is not None else {"count": 0}
        if not s["count"]:
            continue
        if unit == "s":
            cells = [_ms(s[k]) for k in ("mean", "p50", "p90", "p99", "p99.9", "max")]
        else:
            cells = [f"{s[k]:g}" for k in ("mean", "p50", "p90", "p99", "p99.9", "max")]
        table.add_row(name, str(s["count"]), *cells)
    counters = "  ".join(f"{k}={v}" for k, v in sorted(result.metrics.counters.items())
                         if v or not k.startswith("errors."))  # failure kinds when seen
    states = result.details.get("states", {})
    state_line = "  ".join(f"{k}={v}" for k, v in states.items() if v)
    lines: list[Table | Text] = [table] if table.row_count else [Text("no durations recorded")]
    lines += [Text(counters), Text(f"probes: {state_line}")]
    saturated = Instrument.from_json(result.details.get("instrument") or []).saturation()
    if saturated is not None:  # the bounds and the wording are wsctl.metrics.instrument's
        lines.append(Text(f"warning: {saturated}; missed pongs may be its fault too",
                          style="yellow"))
    errors = result.details.get("errors") or {}
    if errors:
        lines.append(Text("last errors: " + "; ".join(f"{e} (x{n})" for e, n in errors.items())))
    return Group(*lines)
