"""Prometheus metrics for a long-running fleet (``wsctl probe --forever --metrics-port``).

Like a blackbox exporter for WebSockets: probes keep running and ``GET /metrics``
reports their states, counters and duration histograms (buckets computed from the
HDR histograms at scrape time). Served on the fleet's own event loop, so scrapes never
race the probes. ``POST /fault?at=UNIX_TIME`` says when a fault was injected (before or
after the probes noticed it): open probes measure ``detect_time`` from that instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from wsctl.probe.workers import AnyFleet

SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
COUNT_BUCKETS = [1, 2, 3, 5, 10, 20, 50, 100]


def fault_instant(text: str) -> float:
    """A fault instant written by a person or a script, as this process's monotonic time:
    a Unix time (``date +%s.%N``), or ``monotonic SECONDS`` for a ``time.monotonic()``
    reading (system-wide on Linux). ValueError if it is neither."""
    words = text.replace("=", " ").split()
    if len(words) == 2 and words[0] == "monotonic":
        value = float(words[1])
        if math.isfinite(value):
            return value
    elif len(words) == 1:
        value = float(words[0])
        if math.isfinite(value) and value > 0:
            return value - (time.time() - time.monotonic())
    raise ValueError(f"not a Unix time nor 'monotonic SECONDS': {text.strip()[:60]!r}")


def metric_name(name: str, unit: str = "") -> str:
    """``messages.lost`` -> ``wsctl_probe_messages_lost``; seconds get ``_seconds``."""
    base = "wsctl_probe_" + name.replace(".", "_")
    return base + ("_seconds" if unit == "s" else "")


class FleetCollector(Collector):
    """Reads the fleet at scrape time."""

    def __init__(self, fleet: AnyFleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[Metric]:
        fleet = self.fleet
        states = fleet.states()
        gauge = GaugeMetricFamily("wsctl_probe_probes", "Probes by state.", labels=["state"])
        for state, n in states.items():
            gauge.add_metric([state], n)
        yield gauge
        up = 1 if fleet.probes and states["open"] == len(fleet.probes) else 0
        yield GaugeMetricFamily("wsctl_probe_up", "1 when every probe is open.", value=up)
        for name, value in sorted(fleet.metrics.counters.items()):
            yield CounterMetricFamily(metric_name(name), f"wsctl probe counter {name}.",
                                      value=value)
        for name, hist in sorted(fleet.metrics.histograms.items()):
            bounds = SECONDS_BUCKETS if hist.unit == "s" else COUNT_BUCKETS
            cumulative = hist.cumulative([float(b) for b in bounds])
            buckets = [(f"{b:g}", c) for b, c in zip(bounds, cumulative, strict=True)]
            buckets.append(("+Inf", hist.count))
            yield HistogramMetricFamily(metric_name(name, hist.unit),
                                        f"wsctl probe {name} (see docs/probe.md).",
                                        buckets=buckets, sum_value=hist.total)


class MetricsServer:
    """A minimal HTTP/1.1 server on the event loop: ``GET /metrics``, and ``POST /fault``
    (``?at=`` a Unix time or ``monotonic=`` seconds; none: now) marking a fault."""

    def __init__(self, fleet: AnyFleet, host: str = "127.0.0.1", port: int = 9464) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FleetCollector(fleet))
        self.fleet = fleet
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _fault(self, query: str) -> tuple[bytes, bytes]:
        params = parse_qs(query)
        try:
            if "at" in params:
                at = fault_instant(params["at"][0])
            elif "monotonic" in params:
                at = fault_instant("monotonic " + params["monotonic"][0])
            else:
                at = time.monotonic()
        except ValueError as exc:
            return b"400 Bad Request", f"{exc}; try /fault?at=$(date +%s.%N)\n".encode()
        self.fleet.inject_fault(at)
        unix = at + time.time() - time.monotonic()
        return b"200 OK", f"fault marked at {unix:.6f}\n".encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].split()
            path, _, query = (parts[1] if len(parts) >= 2 else b"").partition(b"?")
            if len(parts) >= 2 and parts[0] == b"GET" and path == b"/metrics":
                body = generate_latest(self.registry)
                status, ctype = b"200 OK", CONTENT_TYPE_LATEST.encode()
            elif len(parts) >= 2 and parts[0] == b"POST" and path == b"/fault":
                status, body = self._fault(query.decode("latin-1"))
                ctype = b"text/plain"
            else:
                body, status, ctype = b"not found; try /metrics\n", b"404 Not Found", \
                    b"text/plain"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype +
                         b"\r\nContent-Length: " + str(len(body)).encode() +
                         b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
