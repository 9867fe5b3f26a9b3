"""Scenarios with the probes in worker processes, and judged by the instrument's health:
a measuring loop that stalled makes timing verdicts INCONCLUSIVE (exit 4)."""

import asyncio
import os
import time

import pytest

from tests.verdicts import settled
from wsctl.probe.fleet import LoopWatch
from wsctl.scenario.model import loads
from wsctl.scenario.runner import run_suite

pytestmark = pytest.mark.timeout(90)

FAST_SERVER = "server: {ping_interval: 1s, ping_timeout: 1s, job_rate: 20}"


async def test_probes_in_two_workers_are_cut_added_and_counted_as_one_fleet():
    """probes.processes 2 behind the proxy: a cut is detected in every probe of both
    workers, probes.add spreads over them, the series and the peak of attempts come from
    the streamed records, and the instrument lists both workers and this process."""
    suite = loads(f"""
name: workers
duration: 4s
{FAST_SERVER}
proxy: true
probes: {{count: 6, processes: 2, stream: "wk-{{n}}", backoff: {{base: 50ms, cap: 200ms}}}}
timeline:
  - {{at: 1500ms, do: cut}}
  - {{at: 2500ms, do: probes.add, count: 4}}
criteria:
  connections.lost: ">= 6"
  detect_time.count: ">= 6"
  probes.open: "== 10"
""", "workers.yaml")
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None
    assert result.config["processes"] == 2
    assert result.details["probes"] == 10 and result.details["added"] == 4
    assert [settled(v) for v in outcome.verdicts] == ["pass"] * 3, outcome.verdicts
    assert max(outcome.series.columns["connections"]) == 10
    assert result.metrics.gauges["reconnect.peak_attempts_per_s"].value >= 4
    names = [p["name"].split(" (pid")[0] for p in result.details["instrument"]]
    assert names == ["probes worker 0", "probes worker 1", "chaos proxy and scenario runner"]
    assert outcome.timeline[1].detail == "4 probes added at 1000/s (10 in all)"


async def test_a_stalled_measuring_loop_makes_timing_verdicts_inconclusive(monkeypatch):
    """The probes' loop (one process) blocked for 500 ms mid-run: the timing criterion is
    INCONCLUSIVE with the instrument's reason, the count criterion still passes, and the
    run's exit code is 4."""
    watch_start = LoopWatch.start

    def start_then_stall(self: LoopWatch, until: float | None = None) -> None:
        # 0.7 s into the measured span however long the server took to start (a full
        # suite on a loaded machine made a stall timed from the test's start miss it).
        watch_start(self, until)
        asyncio.get_running_loop().call_later(0.7, time.sleep, 0.5)

    monkeypatch.setattr(LoopWatch, "start", start_then_stall)
    suite = loads(f"""
name: stalled
duration: 2500ms
{FAST_SERVER}
probes: {{count: 3, processes: 1, stream: "st-{{n}}"}}
criteria:
  connect_time.max: "< 30s"
  connections.opened: ">= 3"
""", "stalled.yaml")
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    timing, count = outcome.verdicts
    assert timing.status == "inconclusive", timing
    assert "measuring side was saturated" in (timing.message or "")
    assert "stall lasted" in (timing.message or "")  # what was saturated …
    assert "probes.processes / --processes" in (timing.message or "")  # … what to change
    assert count.status == "pass"
    assert report.exit_code == 4
    (health,) = outcome.result.details["instrument"]
    assert health["name"] == f"probes (pid {os.getpid()})"
    assert health["loop_lag_max"] >= 0.25


async def test_one_process_is_the_fleet_in_this_process_as_before():
    """A small fleet runs in this process by default (processes 1): no workers, its own
    loop and CPU measured as the instrument."""
    suite = loads(f"""
name: small
duration: 1500ms
{FAST_SERVER}
probes: {{count: 3, stream: "sm-{{n}}"}}
criteria:
  connections.opened: ">= 3"
""", "small.yaml")
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result is not None and result.config["processes"] == 1
    assert result.details["probes"] == 3 and report.exit_code == 0
    (health,) = result.details["instrument"]
    assert health["name"] == f"probes (pid {os.getpid()})"
    assert health["cpu"] is not None and health["loop_lag_p99"] is not None
