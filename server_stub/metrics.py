"""``GET /metrics``: the reference server in Prometheus text format.

Imported on the first scrape, not at start-up: ``prometheus_client`` is the largest
import of the server, and a server that is never scraped should not pay for it (start-up
time matters for restart scenarios). Everything is computed at scrape time from the
server's own counters, with no lock per message. ``main`` imports this module, so the
collector names what it reads of the server as a protocol (``Server``), not the class.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from server_stub.config import ServerConfig
    from server_stub.connection_pool import ConnectionPool
    from server_stub.health_monitor import HealthMonitor
    from server_stub.jobs import JobSchedule
    from server_stub.streams import StreamStore
    from server_stub.websocket_manager import WebSocketManager
    from wsctl.runtime import PacedCollector

AGE_BUCKETS = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0)


class Server(Protocol):
    """What the collector reads of the server (``server_stub.main.ReferenceServer``)."""

    @property
    def config(self) -> ServerConfig: ...
    @property
    def pool(self) -> ConnectionPool: ...
    @property
    def manager(self) -> WebSocketManager: ...
    @property
    def monitor(self) -> HealthMonitor | None: ...
    @property
    def jobs(self) -> JobSchedule: ...
    @property
    def store(self) -> StreamStore: ...
    @property
    def dead_detected(self) -> int: ...
    @property
    def draining(self) -> bool: ...
    @property
    def started(self) -> float: ...
    @property
    def collector(self) -> PacedCollector | None: ...


def registry_for(server: Server) -> CollectorRegistry:
    """A registry with the server's figures and prometheus_client's process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServerCollector(server))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[str, str]:
    """The scrape body and its content type."""
    return generate_latest(registry).decode(), CONTENT_TYPE_LATEST


class _ServerCollector:
    """Prometheus view of the server, computed at scrape time (no lock per message)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterable[Metric]:
        s = self.server
        c = s.pool.counters
        yield GaugeMetricFamily("wsctl_server_connections", "Open WebSocket connections.",
                                value=len(s.pool))
        yield GaugeMetricFamily("wsctl_server_max_connections",
                                "Connection limit (0 = none).", value=s.config.max_connections)
        yield CounterMetricFamily("wsctl_server_connections_opened",
                                  "Connections admitted.", value=c.opened)
        closed = CounterMetricFamily("wsctl_server_connections_closed",
                                     "Connections closed, by close code.", labels=["code"])
        for code, n in sorted(c.closed_by_code.items()):
            closed.add_metric([str(code)], n)
        yield closed
        refused = CounterMetricFamily("wsctl_server_refused",
                                      "Handshakes refused, by reason.", labels=["reason"])
        for kind in ("capacity", "per_client", "draining", "streams", "streams_per_client",
                     "auth", "origin", "bad_request"):
            refused.add_metric([kind], c.refused_by_kind.get(kind, 0))
        yield refused
        yield CounterMetricFamily("wsctl_server_dead_detected",
                                  "Connections closed 1011 for missing pongs.",
                                  value=s.dead_detected)
        yield CounterMetricFamily("wsctl_server_slow_consumers",
                                  "Connections closed for not keeping up.",
                                  value=s.manager.slow_consumers)
        resumes = CounterMetricFamily("wsctl_server_resumes", "Stream handshakes by outcome.",
                                      labels=["outcome"])
        for outcome, n in s.manager.resumes.items():
            resumes.add_metric([outcome], n)
        yield resumes
        messages = CounterMetricFamily("wsctl_server_messages", "WebSocket messages.",
                                       labels=["direction"])
        messages.add_metric(["in"], c.messages_in)
        messages.add_metric(["out"], c.messages_out)
        yield messages
        data = CounterMetricFamily("wsctl_server_bytes", "Message payload bytes.",
                                   labels=["direction"])
        data.add_metric(["in"], c.bytes_in)
        data.add_metric(["out"], c.bytes_out)
        yield data
        yield GaugeMetricFamily("wsctl_server_streams", "Streams with a running job.",
                                value=len(s.jobs))
        yield GaugeMetricFamily("wsctl_server_store_events", "Events retained for replay.",
                                value=s.store.size())
        yield GaugeMetricFamily("wsctl_server_late_connections",
                                "Connections with a ping outstanding past half the timeout.",
                                value=s.monitor.counts()["late"] if s.monitor else 0)
        ages = sorted(s.pool.ages())
        buckets, i = [], 0
        for bound in AGE_BUCKETS:
            while i < len(ages) and ages[i] <= bound:
                i += 1
            buckets.append((str(bound), i))
        buckets.append(("+Inf", len(ages)))
        yield HistogramMetricFamily(
            "wsctl_server_connection_age_seconds",
            "Age of the connections open now (computed at scrape time).",
            buckets=buckets, sum_value=sum(ages),
        )
        yield GaugeMetricFamily("wsctl_server_draining", "1 while shutting down.",
                                value=int(s.draining))
        yield GaugeMetricFamily("wsctl_server_uptime_seconds", "Seconds since start.",
                                value=time.monotonic() - s.started)
        if s.collector is not None:  # the process's collector is paced by the server
            runs = CounterMetricFamily("wsctl_server_gc_collections",
                                       "Garbage collections, by generation (2 = full).",
                                       labels=["generation"])
            longest = GaugeMetricFamily("wsctl_server_gc_pause_max_seconds",
                                        "Longest collection pause so far, by generation.",
                                        labels=["generation"])
            for generation in range(3):
                runs.add_metric([str(generation)], s.collector.collections[generation])
                longest.add_metric([str(generation)], s.collector.longest[generation])
            yield runs
            yield longest
