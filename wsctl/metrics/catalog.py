"""Every metric name wsctl can report, with its kind and unit: the public contract that
criteria are checked against before anything runs (DESIGN.md section 6, docs/metrics.md).

A component that records a new metric adds it here; ``lookup`` also answers for the
families whose last part is open (``errors.status_<code>``, ``closes.<code>``, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wsctl.errors import CONNECT_KINDS, STATUS_KIND_PREFIX

Kind = Literal["histogram", "counter", "gauge"]
MetricUnit = Literal["s", "count", "bytes", "ratio", "per_s"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What a metric is: ``histogram`` (stats count, mean, p50 … in ``unit``), ``counter``
    (an integer) or ``gauge`` (one measured figure)."""

    name: str
    kind: Kind
    unit: MetricUnit
    description: str


def _entries() -> list[MetricInfo]:
    h: Kind = "histogram"
    c: Kind = "counter"
    g: Kind = "gauge"
    rows: list[tuple[str, Kind, MetricUnit, str]] = [
        # Probes (DESIGN.md section 6; docs/probe.md)
        ("connect_time", h, "s", "TCP connect + opening handshake of a fresh connection"),
        ("detect_time", h, "s", "fault injected -> the probe notices the loss"),
        ("reconnect_time", h, "s", "loss noticed -> a new connection is open"),
        ("resume_time", h, "s", "loss noticed -> welcome received (state synchronized)"),
        ("outage_time", h, "s", "last event before the loss -> first event after resume"),
        ("reconnect_attempts", h, "count", "connection attempts per recovery"),
        ("delivery_latency", h, "s", "event ts -> received (bench --mode resume too)"),
        ("rtt", h, "s",
         "ping -> pong, or echo sent -> received (bench: from the intended send instant)"),
        ("rtt.uncorrected", h, "s",
         "bench: echo actually sent -> received (no coordinated-omission correction)"),
        ("messages.received", c, "count", "events or echoes received"),
        ("messages.lost", c, "count", "offsets never delivered and not covered by a resync"),
        ("messages.duplicated", c, "count", "offsets delivered twice on one connection"),
        ("messages.reordered", c, "count", "offsets delivered out of order"),
        ("messages.replayed", c, "count", "events replayed after a resume"),
        ("messages.sent", c, "count", "messages sent by the clients"),
        ("messages.invalid", c, "count", "frames that broke the protocol"),
        ("probes.gave_up", c, "count", "probes that stopped retrying"),
        ("resyncs", c, "count", "welcomes with recovered: false"),
        ("connections.opened", c, "count", "connections opened"),
        ("connections.failed", c, "count", "connection attempts that failed"),
        ("connections.lost", c, "count", "open connections that were lost"),
        # Server under test (docs/server.md; from /metrics, /ws/health or the process)
        ("server.rss_per_connection", g, "bytes",
         "server RSS growth / connections held, at steady state"),
        ("server.rss", g, "bytes", "server resident memory at steady state"),
        ("server.cpu", g, "ratio", "server CPU time / wall time (1.0 = one core)"),
        ("server.connections", g, "count", "connections the server holds at steady state"),
        ("server.refused", c, "count", "handshakes the server refused (503)"),
        ("server.dead_detected", c, "count", "connections the server closed as dead (1011)"),
        # Scenarios (docs/scenarios.md)
        ("reconnect.peak_attempts_per_s", g, "per_s",
         "most connection attempts in any one second of the run"),
        ("reconnect.peak_server_attempts_per_s", g, "per_s",
         "most attempts that reached the server (not refused) in any one second"),
        ("probes.open", g, "count", "probes with an open connection when the run ended"),
        # Load generator (docs/bench.md)
        ("connections.held", g, "count", "most connections open at once"),
        ("messages.per_s", g, "per_s", "messages sent per second while holding"),
        ("generator.cpu", g, "ratio", "load generator CPU time / wall time (1.0 = one core)"),
        ("generator.sends_per_cpu_s", g, "per_s", "messages sent per CPU-second of generator"),
        ("generator.loop_lag", h, "s", "how late the generator's event loop woke up"),
    ]
    # Failed connects by kind (probes, bench, Locust): wsctl.errors.CONNECT_KINDS.
    rows += [(f"errors.{kind}", c, "count", f"failed connects: {meaning}")
             for kind, meaning in CONNECT_KINDS.items()]
    return [MetricInfo(*row) for row in rows]


METRICS: dict[str, MetricInfo] = {info.name: info for info in _entries()}

# Families whose last part is open: handshakes refused by HTTP status (errors.status_503),
# unexpected closes (errors.closed_1006), server error frames, closes by code (closes.1006).
# Any other errors.* name is a typo and is refused like an unknown metric.
FAMILIES: dict[str, MetricInfo] = {
    f"errors.{STATUS_KIND_PREFIX}": MetricInfo(
        f"errors.{STATUS_KIND_PREFIX}<code>", "counter", "count",
        "failed connects: the server answered the upgrade with this HTTP status"),
    "errors.closed_": MetricInfo("errors.closed_<code>", "counter", "count",
                                 "bench: open connections closed unexpectedly with this code "
                                 "(1006 = no close frame)"),
    "errors.server_": MetricInfo("errors.server_<code>", "counter", "count",
                                 "Locust resume mode: protocol error frames with this code"),
    "closes.": MetricInfo("closes.<code>", "counter", "count",
                          "connections closed with one close code"),
}

HISTOGRAM_STATS = ("count", "mean", "min", "p50", "p90", "p99", "p99.9", "max")


def lookup(name: str) -> MetricInfo | None:
    """The metric called ``name`` (no statistic suffix), or None when there is none."""
    info = METRICS.get(name)
    if info is not None:
        return info
    for prefix, family in FAMILIES.items():
        rest = name[len(prefix):]
        if name.startswith(prefix) and rest and "." not in rest:
            return MetricInfo(name, family.kind, family.unit, family.description)
    return None


def split(key: str) -> tuple[MetricInfo, str | None]:
    """Split a criterion key into metric and statistic: ``reconnect_time.p99.9`` ->
    (reconnect_time, "p99.9"); ``messages.lost`` -> (messages.lost, None).

    Raises ``KeyError`` with a message a person can act on.
    """
    info = lookup(key)
    if info is not None:
        if info.kind == "histogram":
            stats = ", ".join(f"{key}.{s}" for s in ("mean", "p50", "p99"))
            raise KeyError(f"{key} is a distribution: name a statistic, e.g. {stats}")
        return info, None
    for stat in HISTOGRAM_STATS:
        if key.endswith("." + stat):
            name = key[: -len(stat) - 1]
            info = lookup(name)
            if info is None:
                break
            if info.kind != "histogram":
                raise KeyError(f"{name} is a {info.kind}: it has no statistic {stat!r}")
            return info, stat
    raise KeyError(f"unknown metric {key!r}{_suggest(key)}")


def _suggest(key: str) -> str:
    import difflib

    names = [*METRICS, *(f"{n}.{s}" for n, i in METRICS.items() if i.kind == "histogram"
                         for s in ("mean", "p50", "p99"))]
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]!r}? see docs/metrics.md)" if close else \
        " (see docs/metrics.md for the names)"
