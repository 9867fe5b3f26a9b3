"""The server's side of a bench: RSS, CPU and connections before the ramp and at steady state.

Two sources, both optional:

* the reference server (``wsctl serve``): ``GET /metrics`` and ``GET /ws/health`` on the
  same host and port as the bench URL (``process_resident_memory_bytes``,
  ``process_cpu_seconds_total``, ``wsctl_server_connections``);
* any server: ``--server-pid PID``, read with psutil (RSS, CPU seconds).

``server.rss_per_connection`` = (RSS at steady state - RSS before the ramp) / connections
held at steady state. Both sources are read through ``wsctl.serverwatch`` (the one
watcher and Prometheus parser ``wsctl run`` uses too); the arithmetic is pure
(``server_figures``); only ``sample`` does I/O.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wsctl.errors import InvalidInput
from wsctl.metrics import MetricSet
from wsctl.serverwatch import FETCH_ERRORS, ServerWatcher, parse_metrics


@dataclass(slots=True)
class ServerSample:
    """One reading of the server; a figure is None when no source gave it."""

    at: float
    rss: float | None = None
    cpu_s: float | None = None
    connections: float | None = None
    refused: float | None = None
    dead_detected: float | None = None
    health: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "rss": self.rss, "cpu_s": self.cpu_s,
                "connections": self.connections, "sources": self.sources,
                "health": self.health}


def http_base(ws_url: str) -> str:
    """``ws://h:p/ws/x`` -> ``http://h:p`` (wss -> https)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


def check_pid(pid: int) -> None:
    """InvalidInput unless ``pid`` is a process we can read."""
    import psutil

    try:
        psutil.Process(pid).memory_info()
    except psutil.NoSuchProcess:
        raise InvalidInput(f"--server-pid {pid}: no such process") from None
    except psutil.AccessDenied:
        raise InvalidInput(f"--server-pid {pid}: not allowed to read that process") from None


class ServerWatch:
    """Samples the server before the ramp and at steady state (in a thread, on a timer)."""

    def __init__(self, url: str, pid: int | None = None, timeout: float = 5.0) -> None:
        self.watcher = ServerWatcher(http_base(url), pid)
        self.pid = pid
        self.timeout = timeout
        self.reference: bool | None = None  # unknown until the first scrape
        self.before: ServerSample | None = None
        self.steady: ServerSample | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    def sample(self) -> ServerSample:
        """Read every source now (in the calling thread, which runs no event loop)."""
        s = ServerSample(at=time.time())
        if self.reference is not False:
            asyncio.run(self._scrape(s))
        if self.pid is not None:
            self._read_pid(s)
        return s

    async def _scrape(self, s: ServerSample) -> None:
        watcher = self.watcher
        try:
            page = await watcher.get("/metrics", self.timeout)
            if page.status != 200 or "wsctl_server_" not in page.text:
                self.reference = False
                return
            figures = parse_metrics(page.text)
            health = await watcher.get("/ws/health", self.timeout)
            if health.content_type.startswith("application/json"):
                s.health = json.loads(health.text)
        except FETCH_ERRORS as exc:
            if self.reference is None:
                self.reference = False
            else:
                s.sources.append(f"metrics failed: {type(exc).__name__}")
            return
        self.reference = True
        s.sources.append("metrics")
        for key, value in figures.items():
            setattr(s, key, value)
        if s.connections is None and s.health is not None:
            s.connections = s.health.get("connections")

    def _read_pid(self, s: ServerSample) -> None:
        figures = self.watcher.process()
        if figures is None:
            return
        s.rss, s.cpu_s = figures
        s.sources.append(f"pid {self.pid}")

    def take_before(self) -> None:
        self.before = self.sample()

    def schedule_steady(self, at_wall: float, end_wall: float | None = None) -> None:
        """Take the steady-state sample at Unix time ``at_wall`` (in a thread); a scrape
        that fails is tried once more if that can still finish before ``end_wall``."""

        def later() -> None:
            if self._cancel.wait(max(0.0, at_wall - time.time())):
                return
            sample = self.sample()
            if (self.reference and "metrics" not in sample.sources
                    and (end_wall is None or time.time() + self.timeout < end_wall)):
                sample = self.sample()  # a busy server may miss one scrape; try once more
            self.steady = sample

        self._thread = threading.Thread(target=later, daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """Wait for a pending steady sample (cancel it if it is still in the future)."""
        if self._thread is not None:
            if self.steady is None and self._thread.is_alive():
                self._cancel.set()
            self._thread.join(self.timeout * 2 + 1)


def server_figures(
    before: ServerSample | None, steady: ServerSample | None, held: float
) -> dict[str, tuple[float, str]]:
    """server.* gauges (value, unit) from two samples; ``held`` = connections the generator
    held, used when the server does not report its own count."""
    out: dict[str, tuple[float, str]] = {}
    if steady is None:
        return out
    connections = steady.connections if steady.connections is not None else None
    if connections is not None:
        out["server.connections"] = (float(connections), "count")
    if steady.rss is not None:
        out["server.rss"] = (steady.rss, "bytes")
        count = connections if connections else held
        if before is not None and before.rss is not None and count:
            out["server.rss_per_connection"] = ((steady.rss - before.rss) / count, "bytes")
    if (before is not None and before.cpu_s is not None and steady.cpu_s is not None
            and steady.at > before.at):
        out["server.cpu"] = ((steady.cpu_s - before.cpu_s) / (steady.at - before.at), "ratio")
    return out


def apply(metrics: MetricSet, watch: ServerWatch, held: float) -> dict[str, Any]:
    """Put the server's gauges in ``metrics``; returns the details to keep in the Result."""
    for name, (value, unit) in server_figures(watch.before, watch.steady, held).items():
        metrics.set_gauge(name, value, unit)  # type: ignore[arg-type]
    steady = watch.steady
    if steady is not None and steady.refused is not None and watch.before is not None:
        before_refused = watch.before.refused or 0.0
        metrics.add("server.refused", int(steady.refused - before_refused))
    return {
        "reference": bool(watch.reference),
        "pid": watch.pid,
        "before": watch.before.to_dict() if watch.before else None,
        "steady": steady.to_dict() if steady else None,
    }
