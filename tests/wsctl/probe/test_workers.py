"""A fleet split over worker processes: its pure parts, then real workers against a real
server (merging, fault instants in every worker, a dead worker, the CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from tests.serverproc import ServerProcess
from wsctl.backoff import BackoffPolicy
from wsctl.errors import RunFailed
from wsctl.metrics import Result
from wsctl.probe.machine import ProbeConfig, ProbeMachine, Record, State, new_metrics
from wsctl.probe.workers import (
    LossSpans,
    WorkerFleet,
    config_from_dict,
    config_to_dict,
    default_processes,
    merge_fleet,
    record_from_wire,
    record_to_wire,
    resolve_processes,
    share,
)

pytestmark = pytest.mark.timeout(90)


# -- pure parts -------------------------------------------------------------------------


def test_default_workers_keep_each_under_200_probes_within_the_cores() -> None:
    """<= 200 probes: one process; more: one per 200 started, capped by the cores; never
    more workers than probes; probes.add counts toward the default."""
    assert default_processes(200, cores=8) == 1
    assert default_processes(201, cores=8) == 2
    assert default_processes(550, cores=8) == 3
    assert default_processes(5000, cores=2) == 2
    assert resolve_processes(3, 8) == 3
    assert resolve_processes(50, None, added=500) == min(3, os.cpu_count() or 1)
    assert resolve_processes(50, 1, added=500) == 1


def test_interleaved_shares_cover_every_probe_once() -> None:
    """Worker i of K runs i, i+K, …: together every probe number exactly once."""
    shares = [share(10, 3, w) for w in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(n for s in shares for n in s) == list(range(10))


class Dialect(BaseModel):
    """A stand-in for a pydantic field of ProbeConfig (the protocol block)."""

    sequence: str = "seq"
    headers: dict[str, str] = {}


@dataclass(frozen=True)
class WithModel:
    url: str
    backoff: BackoffPolicy = BackoffPolicy()
    dialect: Dialect | None = None


def test_config_crosses_processes_with_dataclass_and_pydantic_fields() -> None:
    """ProbeConfig (and any dataclass config with pydantic fields) survives JSON."""
    config = ProbeConfig("ws://h/ws/{n}", mode="echo", backoff=BackoffPolicy(base=0.2, cap=3),
                         heartbeat_interval=1.5, duration=4.0)
    wire = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(ProbeConfig, wire) == config
    other = WithModel("u", dialect=Dialect(headers={"A": "b"}))
    assert config_from_dict(WithModel, json.loads(json.dumps(config_to_dict(other)))) == other
    with pytest.raises(ValueError, match="no field nope"):
        config_from_dict(ProbeConfig, {**wire, "nope": 1})


def test_records_cross_processes_unchanged() -> None:
    """A record survives its wire form."""
    record = Record(12.5, 7, State.CONNECTING, State.BACKOFF, "refused", None, "refused")
    assert record_from_wire(json.loads(json.dumps(record_to_wire(record)))) == record


def part(counts: dict[str, list[float]], counters: dict[str, int], **details: object
         ) -> Result:
    metrics = new_metrics()
    for name, values in counts.items():
        for value in values:
            metrics.record(name, value)
    for name, value in counters.items():
        metrics.counters[name] = value
    return Result(kind="probe", metrics=metrics, started_at=100.0, duration=5.0,
                  details=dict(details))


def test_merge_sums_counts_keeps_the_max_and_lists_every_process() -> None:
    """Merged histogram counts are the sum and the max is the max (HDR merge); counters,
    states, errors and never-opened probes add up; every worker's health is listed."""
    a = part({"reconnect_time": [0.1, 0.2, 0.3]}, {"messages.received": 5},
             probes=2, states={"open": 2}, never_opened=0, errors={"refused": 1},
             loop_lag={"p99": 0.001}, instrument=[{"name": "w0"}])
    b = part({"reconnect_time": [0.05, 1.5]}, {"messages.received": 7},
             probes=1, states={"open": 0, "gave_up": 1}, never_opened=1,
             errors={"refused": 2, "timeout": 1}, loop_lag={"p99": 0.004},
             instrument=[{"name": "w1"}])
    merged = merge_fleet([Result.from_dict(a.to_dict()), Result.from_dict(b.to_dict())],
                         {"url": "u"}, count=3, seed=9, parent={"name": "proxy"})
    hist = merged.metrics.histograms["reconnect_time"].summary()
    assert hist["count"] == 5
    assert hist["max"] == pytest.approx(1.5, rel=1e-3)
    assert merged.metrics.counters["messages.received"] == 12
    d = merged.details
    assert (d["probes"], d["never_opened"]) == (3, 1)
    assert d["states"]["open"] == 2 and d["states"]["gave_up"] == 1
    assert d["errors"] == {"refused": 3, "timeout": 1}
    assert d["loop_lag"] == {"p99": 0.004}
    assert [p["name"] for p in d["instrument"]] == ["w0", "w1", "proxy"]
    assert merged.config == {"url": "u", "count": 3, "seed": 9, "processes": 2}


def test_a_fault_instant_arriving_late_still_times_the_losses_since() -> None:
    """A worker told of a fault at t=5.0 only at t=5.01: a probe that lost its connection
    (open since before) at 5.004 has detect_time 4 ms; one still open is told; one that
    opened after the fault, or lost before it, is not."""
    config = ProbeConfig("ws://h/ws/{n}")
    metrics = new_metrics()
    machines = [ProbeMachine(i, config, metrics, _Rng(), 0.0) for i in range(4)]
    spans = LossSpans()
    spans.note([
        Record(1.0, 0, State.CONNECTING, State.OPEN), Record(5.004, 0, State.OPEN, State.LOST),
        Record(1.0, 1, State.CONNECTING, State.OPEN),
        Record(5.006, 2, State.CONNECTING, State.OPEN),
        Record(1.0, 3, State.CONNECTING, State.OPEN), Record(4.9, 3, State.OPEN, State.LOST),
    ])
    machines[0].state = State.LOST
    machines[1].state = machines[2].state = State.OPEN
    machines[3].state = State.BACKOFF
    fleet = SimpleNamespace(metrics=metrics, probes=[SimpleNamespace(machine=m)
                                                     for m in machines])
    assert spans.fault(5.0, fleet) == 1  # type: ignore[arg-type]
    detect = metrics.histograms["detect_time"].summary()
    assert detect["count"] == 1 and detect["max"] == pytest.approx(0.004, abs=1e-5)
    assert [m.fault_at for m in machines] == [None, 5.0, None, None]


class _Rng:
    def uniform(self, a: float, b: float) -> float:
        return a


# -- real workers against a real server ---------------------------------------------------


@pytest.fixture
def server():
    srv = ServerProcess("--job-rate", "10", "--job-steps", "100000",
                        "--ping-interval", "1", "--ping-timeout", "1")
    yield srv
    srv.close()


def config_for(url: str, duration: float) -> ProbeConfig:
    return ProbeConfig(url + "/ws/w-{n}", duration=duration, heartbeat_interval=0.5,
                       heartbeat_timeout=0.5, backoff=BackoffPolicy(base=0.05, cap=0.2))


async def wait_open(fleet: WorkerFleet, count: int, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if fleet.states().get("open") == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not all open: {fleet.states()}")


async def test_workers_merge_to_the_sum_and_max_of_their_parts(server) -> None:
    """7 probes over 3 real workers, 2 added mid-run: every probe number runs once on the
    worker it falls to, records stream to the sink, and the merged result's counts are
    the workers' sums and its maxima their maxima."""
    records: list[Record] = []
    fleet = WorkerFleet(config_for(server.url, 3.0), 7, 3, seed=4, sink=records.extend)
    await fleet.spawn()
    task = asyncio.create_task(fleet.run())
    await wait_open(fleet, 7)
    fleet.add(2)
    result = await task
    parts = fleet.parts
    assert len(parts) == 3
    assert [p.config["indices"] for p in parts] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert {r.probe for r in records} == set(range(9))
    for name in ("connect_time", "rtt", "delivery_latency"):
        merged = result.metrics.histograms[name].summary()
        own = [p.metrics.histograms[name].summary() for p in parts]
        assert merged["count"] == sum(s["count"] for s in own) > 0
        assert merged["max"] == max(s["max"] for s in own if s["count"])
    for name in ("connections.opened", "messages.received"):
        assert result.metrics.counters[name] == sum(p.metrics.counters[name] for p in parts)
    assert result.metrics.counters["connections.opened"] == 9
    assert result.details["probes"] == 9 and result.details["states"]["closed"] == 9
    names = [p["name"] for p in result.details["instrument"]]
    assert [n.split(" (pid")[0] for n in names] == [f"probes worker {i}" for i in range(3)]
    assert all(p["loop_lag_p99"] is not None and p["cpu"] is not None
               for p in result.details["instrument"])


async def test_a_fault_instant_reaches_every_worker(server) -> None:
    """inject_fault then SIGKILL of the server: detect_time samples come from every
    worker's probes, one per probe."""
    fleet = WorkerFleet(config_for(server.url, 4.0), 6, 3, seed=1)
    task = asyncio.create_task(fleet.run())
    await wait_open(fleet, 6, timeout=20)
    fleet.inject_fault()
    server.proc.kill()
    await task
    counts = [p.metrics.histograms["detect_time"].count for p in fleet.parts]
    assert counts == [2, 2, 2]
    assert fleet.result().metrics.histograms["detect_time"].count == 6


async def test_a_worker_that_dies_is_an_error_naming_it(server) -> None:
    """A worker killed mid-run ends the run with RunFailed naming that worker and pid."""
    fleet = WorkerFleet(config_for(server.url, 30.0), 4, 2, seed=1)
    task = asyncio.create_task(fleet.run())
    await wait_open(fleet, 4)
    victim = fleet.pids[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(RunFailed, match=rf"probes worker 1 \(pid {victim}\) died"):
        await asyncio.wait_for(task, 20)
    assert all(p.returncode is not None for p in (w.proc for w in fleet._workers))


def test_cli_processes_runs_workers_and_lists_their_health(server, tmp_path) -> None:
    """wsctl probe --processes 2: one JSON result for all probes, both workers in
    details.instrument, and --records numbered as in one process."""
    records = tmp_path / "records.jsonl"
    wsctl = str(Path(sys.executable).with_name("wsctl"))
    done = subprocess.run(
        [wsctl, "probe", server.url + "/ws/cli-{n}", "-n", "4", "--processes", "2",
         "--duration", "2s", "--view", "quiet", "--json", "-", "--records", str(records)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    obj = json.loads(done.stdout)
    assert obj["config"]["processes"] == 2 and obj["details"]["probes"] == 4
    assert obj["metrics"]["connections.opened"]["value"] == 4
    assert len(obj["details"]["instrument"]) == 2
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert {line["probe"] for line in lines} == {0, 1, 2, 3}
    assert all(abs(line["t"] - obj["started_at"]) < 30 for line in lines)  # wall time
