"""wsctl bench --engine locust: a real Locust master and workers in their own processes.

Locust (gevent, monkey-patching) is never imported here: ``run_locust`` only spawns
``python -m locust`` children, and the pure parts are tested on their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import wsctl.bench.locust as bench_locust
from tests.serverproc import ServerProcess
from wsctl.bench.locust import (
    LocustPlan,
    WorkerReport,
    locust_commands,
    merge_reports,
    run_locust,
)
from wsctl.errors import InvalidInput, RunFailed
from wsctl.metrics import MetricSet, Result, validate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def echo_url() -> Iterator[str]:
    """A bare websockets echo server in its own process on 127.0.0.1."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "_bare_echo.py")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ws://127.0.0.1:" in line, line
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _locust_children() -> list[psutil.Process]:
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "locust" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


def test_importing_the_module_does_not_import_locust_or_gevent() -> None:
    """wsctl.bench.locust and the Locust user's clients can be imported by an asyncio
    process: no locust, no gevent."""
    code = ("import sys, wsctl.bench.locust, wsctl.bench.locust_client; "
            "print([m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
    assert "locust" not in sys.modules and "gevent" not in sys.modules


def test_master_and_two_workers_produce_a_bench_result(echo_url: str) -> None:
    """One master + two workers for 3 s: a valid bench result with connect and rtt samples
    from both workers, counts that agree, and no Locust process left behind."""
    plan = LocustPlan(echo_url, users=6, spawn_rate=50, workers=2, duration=3,
                      mode="echo", message_rate=10)
    result = run_locust(plan)
    obj = result.to_dict()
    validate(obj)
    assert obj["kind"] == "bench"
    assert obj["details"]["engine"] == "locust" and obj["details"]["workers"] == 2
    assert obj["details"]["client"] == "gevent"
    assert len(obj["details"]["processes"]) == 2  # every worker reported its histograms
    metrics = obj["metrics"]
    assert metrics["connect_time"]["count"] == 6
    assert metrics["connections.opened"]["value"] == 6
    assert metrics["connections.held"]["value"] == 6
    assert metrics["rtt"]["count"] > 50  # 6 users x 10/s for ~3 s
    assert metrics["rtt"]["count"] == metrics["messages.received"]["value"]
    sent = metrics["messages.sent"]["value"]
    # users stop while awaiting an echo: at most one unanswered message each
    assert 0 <= sent - metrics["messages.received"]["value"] <= 6
    # rtt counts from the intended send, so it is never below the uncorrected round trip
    assert metrics["rtt"]["count"] == metrics["rtt.uncorrected"]["count"]
    assert metrics["rtt"]["p50"] >= metrics["rtt.uncorrected"]["p50"]
    assert metrics["generator.cpu"]["value"] > 0
    assert metrics["generator.sends_per_cpu_s"]["value"] == pytest.approx(
        sent / obj["details"]["cpu_s"], rel=0.01)
    # Locust's own statistics saw the same echoes as the HDR histograms
    assert obj["details"]["locust_requests"]["WS echo"]["requests"] == \
        metrics["messages.received"]["value"]
    assert obj["details"]["locust_requests"]["WS connect"]["failures"] == 0
    assert _locust_children() == []


def test_resume_mode_reads_reference_server_events_in_one_process() -> None:
    """Standalone Locust (no workers) in resume mode: every user gets its own stream from
    the reference server and delivery_latency counts each event it received."""
    server = ServerProcess("--job-rate", "10")
    try:
        plan = LocustPlan(server.url + "/ws/locust-{n}", users=3, spawn_rate=30, workers=0,
                          duration=2, mode="resume")
        result = run_locust(plan)
    finally:
        server.close()
    metrics = result.to_dict()["metrics"]
    assert metrics["connections.opened"]["value"] == 3
    assert metrics["delivery_latency"]["count"] == metrics["messages.received"]["value"] > 10
    assert "rtt" not in metrics and metrics["messages.sent"]["value"] == 0
    assert result.details["workers"] == 0 and len(result.details["processes"]) == 1
    assert result.details["locust_requests"]["WS event"]["requests"] == \
        metrics["messages.received"]["value"]
    assert _locust_children() == []


def test_sync_client_option_measures_round_trips_too(
    monkeypatch: pytest.MonkeyPatch, echo_url: str
) -> None:
    """WSCTL_LOCUST_CLIENT=sync (websockets' sync client) gives the same kind of result as
    the default gevent-driven client."""
    monkeypatch.setenv("WSCTL_LOCUST_CLIENT", "sync")
    result = run_locust(LocustPlan(echo_url, users=2, spawn_rate=20, workers=0, duration=1,
                                   message_rate=20))
    assert result.details["client"] == "sync"
    assert result.value("connections.opened") == 2
    rtt_count = result.value("rtt.count")
    assert isinstance(rtt_count, int) and rtt_count >= 10
    assert rtt_count == result.value("messages.received")


def test_locust_failure_is_run_failed_with_its_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, echo_url: str
) -> None:
    """A locustfile that cannot load fails the run as RunFailed naming the error; no child
    survives."""
    broken = tmp_path / "locustfile.py"
    broken.write_text("raise RuntimeError('locustfile exploded on purpose')\n")
    monkeypatch.setattr(bench_locust, "LOCUSTFILE", broken)
    with pytest.raises(RunFailed, match="exploded on purpose"):
        run_locust(LocustPlan(echo_url, users=1, spawn_rate=1, workers=1, duration=1))
    assert _locust_children() == []


def test_locust_not_installed_is_invalid_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Locust the error says how to install it, and nothing is started."""
    real = bench_locust.importlib.util.find_spec
    monkeypatch.setattr(bench_locust.importlib.util, "find_spec",
                        lambda name, *a: None if name == "locust" else real(name, *a))
    with pytest.raises(InvalidInput, match=r"pip install 'wsctl\[locust\]'"):
        run_locust(LocustPlan("ws://127.0.0.1:9", users=1, spawn_rate=1))


@pytest.mark.parametrize(("change", "words"), [
    ({"url": "http://127.0.0.1:1"}, "ws://"),
    ({"users": 0}, "--users"),
    ({"spawn_rate": 0}, "--spawn-rate"),
    ({"workers": -1}, "--workers"),
    ({"duration": 0.5}, "--duration"),
    ({"mode": "chat"}, "mode"),
    ({"message_rate": float("nan")}, "--message-rate"),
    ({"stream": "job-{m}"}, "{n}"),
])
def test_bad_plans_are_invalid_input(change: dict[str, object], words: str) -> None:
    """Each bad field is named before anything starts."""
    fields: dict[str, object] = {"url": "ws://127.0.0.1:1", "users": 1, "spawn_rate": 1.0,
                                 **change}
    with pytest.raises(InvalidInput, match=words.replace("{", r"\{").replace("}", r"\}")):
        run_locust(LocustPlan(**fields))  # type: ignore[arg-type]


def test_command_lines_bind_to_loopback_and_round_the_duration_up() -> None:
    """The master listens on 127.0.0.1 and expects K workers; workers join it there;
    -t is whole seconds, rounded up; a standalone plan has no master flags."""
    plan = LocustPlan("ws://127.0.0.1:8765", users=100, spawn_rate=25, workers=3,
                      duration=2.2)
    master, worker = locust_commands(plan, 5599, Path("/tmp/x.json"))
    assert master[1:3] == ["-m", "locust"]
    joined = " ".join(master)
    for part in ("--headless", "--master-bind-host 127.0.0.1", "--master-bind-port 5599",
                 "--expect-workers 3", "-u 100", "-r 25", "-t 3s",
                 "--host ws://127.0.0.1:8765", "--exit-code-on-error 0"):
        assert part in joined
    assert " ".join(worker).endswith("--worker --master-host 127.0.0.1 --master-port 5599")
    alone, _ = locust_commands(LocustPlan("ws://h:1", users=1, spawn_rate=1, workers=0),
                               1, Path("/tmp/y.json"))
    assert "--master" not in alone


def _report(values: list[float], sent: int, held: int, cpu: float) -> WorkerReport:
    metrics = MetricSet([("rtt", "s"), ("connect_time", "s")], ["messages.sent"])
    for value in values:
        metrics.record("rtt", value)
    metrics.record("connect_time", 0.002)
    metrics.add("messages.sent", sent)
    return WorkerReport.of(metrics, held, cpu, f"w{held}")


def test_merged_reports_equal_one_histogram_of_all_samples() -> None:
    """Merging two workers' reports (through the message form) gives the percentiles of
    all samples together, and cluster-wide CPU figures including the master."""
    fast, slow = [0.001] * 90, [0.100] * 10
    reports = [WorkerReport.from_message(json.loads(json.dumps(r.to_message())))
               for r in (_report(fast, 900, 3, 1.5), _report(slow, 100, 2, 0.5))]
    result = merge_reports(reports, started_at=1000.0, duration=10.0, target="ws://x",
                           master_cpu_s=0.5, expected=3)
    together = MetricSet([("rtt", "s")])
    for value in fast + slow:
        together.record("rtt", value)
    assert result.metrics.histograms["rtt"].summary() == together.histograms["rtt"].summary()
    assert result.value("rtt.p90") == pytest.approx(0.001, rel=0.01)  # not an average
    assert result.value("rtt.p99") == pytest.approx(0.100, rel=0.01)
    assert result.value("messages.sent") == 1000
    assert result.value("connections.held") == 5
    assert result.value("generator.cpu") == pytest.approx(0.25)  # 2.5 CPU-s over 10 s
    assert result.value("generator.sends_per_cpu_s") == pytest.approx(400.0)
    assert result.details["missing_reports"] == 1
    assert Result.from_dict(result.to_dict()).value("rtt.p99") == result.value("rtt.p99")


def test_locust_cpu_warnings_are_picked_from_every_log(tmp_path: Path) -> None:
    """Locust's 'CPU usage above 90%' (standalone or worker) and the master's 'exceeded
    cpu threshold' lines are surfaced; ordinary lines are not."""
    (tmp_path / "master.log").write_text(
        "[t] vm/INFO/locust.main: Starting Locust\n"
        "[t] vm/WARNING/locust.runners: Worker w1 (index 0) exceeded cpu threshold\n")
    (tmp_path / "worker0.log").write_text(
        "[t] vm/WARNING/root: CPU usage above 90%! This may constrain your throughput\n")
    found = bench_locust._cpu_warnings([tmp_path / "master.log", tmp_path / "worker0.log",
                                        tmp_path / "missing.log"])
    assert len(found) == 2
    assert found[0].startswith("Worker w1") and found[1].startswith("CPU usage above 90%")


def test_a_process_report_has_every_error_kind_and_its_buffered_samples() -> None:
    """A Locust process's report carries each fixed errors.<kind> (zero when nothing failed,
    so a criterion on one is measured) and the latencies still in its buffers."""
    from wsctl.bench.locust import Measurements
    from wsctl.errors import CONNECT_KINDS

    process = Measurements()
    process.reset("resume")
    process.samples["delivery_latency"].add(0.25)
    process.metrics.add("errors.refused")
    metrics = process.report("local").metrics()
    assert {f"errors.{k}" for k in CONNECT_KINDS} <= set(metrics.counters)
    assert metrics.counters["errors.refused"] == 1 and metrics.counters["errors.timeout"] == 0
    assert metrics.histograms["delivery_latency"].count == 1
    assert "rtt" not in metrics.histograms
