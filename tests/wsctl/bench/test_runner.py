"""Per-process figures: when the generator calls itself the bottleneck, and its limits."""

from __future__ import annotations

import pytest

from wsctl.bench.resources import ServerSample, server_figures
from wsctl.bench.runner import bottleneck_warnings, loop_factory
from wsctl.errors import InvalidInput
from wsctl.serverwatch import parse_metrics


def proc(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"pid": 7, "cpu": 0.5, "loop_lag_p99": 0.01, "never_finished": 0}
    base.update(kw)
    return base


def test_warnings_name_a_busy_or_late_generator_and_only_then() -> None:
    """Past the instrument's bounds (wsctl.metrics.instrument: > 90 % of a core, loop lag
    p99 > 20 ms or max > 250 ms) warns once per process in its wording; a healthy one does
    not; connections still connecting at the end are reported."""
    assert bottleneck_warnings([proc(cpu=0.9, loop_lag_p99=0.02, loop_lag_max=0.25)]) == []
    busy = bottleneck_warnings([proc(cpu=0.95)])
    assert len(busy) == 1 and "95% of a core (bound 90%)" in busy[0] and "pid 7" in busy[0]
    late = bottleneck_warnings([proc(loop_lag_p99=0.025), proc(pid=8)])
    assert len(late) == 1 and "25 ms late at p99 (bound 20 ms)" in late[0]
    stalled = bottleneck_warnings([proc(loop_lag_max=0.3)])
    assert len(stalled) == 1 and "stall lasted 300 ms" in stalled[0]
    both = bottleneck_warnings([proc(cpu=0.95, loop_lag_p99=0.2)])
    assert len(both) == 1 and "late" in both[0] and "core" in both[0]
    pending = bottleneck_warnings([proc(never_finished=3), proc(never_finished=2)])
    assert len(pending) == 1 and pending[0].startswith("5 connection(s)")


def test_unknown_loop_is_invalid_input() -> None:
    """--loop must name asyncio or uvloop."""
    assert loop_factory("asyncio") is None
    with pytest.raises(InvalidInput, match="asyncio or uvloop"):
        loop_factory("trio")


def test_server_figures_from_two_samples() -> None:
    """RSS per connection is the growth over the connections the server holds; CPU is
    CPU seconds over wall seconds; nothing is made up when a source is missing."""
    page = ("# HELP x\nprocess_resident_memory_bytes 4.0e+07\nprocess_cpu_seconds_total 3.5\n"
            "wsctl_server_connections 100.0\n"
            'wsctl_server_refused_total{reason="capacity"} 2.0\n'
            'wsctl_server_refused_total{reason="auth"} 1.0\n')
    assert parse_metrics(page) == {"rss": 4.0e7, "cpu_s": 3.5, "connections": 100.0,
                                      "refused": 3.0}
    before = ServerSample(at=10.0, rss=30e6, cpu_s=1.5, connections=0.0)
    steady = ServerSample(at=20.0, rss=32e6, cpu_s=3.5, connections=100.0)
    figures = server_figures(before, steady, held=90)
    assert figures["server.rss_per_connection"] == (20_000.0, "bytes")
    assert figures["server.cpu"] == (0.2, "ratio")
    assert figures["server.connections"] == (100.0, "count")
    # A server that does not count its connections: the generator's count is used.
    pid_only = server_figures(ServerSample(at=0, rss=1e6), ServerSample(at=1, rss=2e6), 50)
    assert pid_only == {"server.rss": (2e6, "bytes"),
                        "server.rss_per_connection": (20_000.0, "bytes")}
    assert server_figures(before, None, 10) == {}


def test_timing_criteria_of_a_saturated_generator_are_inconclusive() -> None:
    """A generator past the instrument's bounds (its details.instrument): a timing verdict
    is inconclusive, naming the process and the bound; a count is still judged."""
    from wsctl.bench.report import judge
    from wsctl.bench.runner import instrument_entry
    from wsctl.metrics import MetricSet, Result
    from wsctl.results.criteria import parse

    metrics = MetricSet([("connect_time", "s")], ["connections.opened"])
    metrics.record("connect_time", 0.01)
    metrics.counters["connections.opened"] = 5
    busy = proc(cpu=0.95, loop_lag_p99=0.001, loop_lag_max=0.002)
    result = Result(kind="bench", metrics=metrics,
                    details={"instrument": [instrument_entry(busy)]})
    timing, count = judge([parse("connect_time.p50", "< 1s"),
                           parse("connections.opened", ">= 5")], result, None)
    assert (timing.status, count.status) == ("inconclusive", "pass")
    assert "load generator (pid 7)" in (timing.message or "")
    assert "95% of a core (bound 90%)" in (timing.message or "")
    calm = dict(busy, cpu=0.2)
    result.details["instrument"] = [instrument_entry(calm)]
    assert [v.status for v in judge([parse("connect_time.p50", "< 1s")], result, None)] == \
        ["pass"]
