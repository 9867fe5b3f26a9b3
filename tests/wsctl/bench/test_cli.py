"""``wsctl bench`` end to end: real runs against the reference server subprocess, gates and
exit codes, and bad input refused before anything starts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess
from wsctl.cli._common import run_app
from wsctl.cli.main import app
from wsctl.metrics import validate

WSCTL = str(Path(sys.executable).with_name("wsctl"))

DOCUMENTED = [
    "connect_time", "rtt", "rtt.uncorrected", "generator.loop_lag", "messages.sent",
    "messages.received", "connections.opened", "connections.failed", "errors.refused",
    "errors.timeout", "connections.held", "messages.per_s", "generator.cpu",
    "generator.sends_per_cpu_s", "server.rss", "server.rss_per_connection", "server.cpu",
    "server.connections",
]


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WSCTL, "bench", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    srv = ServerProcess()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def base(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("bench") / "base.json"
    done = bench(f"{server.url}/ws/base-{{n}}", "-c", "20", "--connect-rate", "50",
                 "--message-rate", "10", "--duration", "3s", "--json", str(path))
    assert done.returncode == 0, done.stderr
    return {"path": path, "obj": json.loads(path.read_text()), "stderr": done.stderr,
            "stdout": done.stdout}


def test_short_run_writes_the_documented_result(base: dict) -> None:
    """A 3 s echo run against the reference server: a valid bench result with every
    documented metric, all 20 connections held, round trips counted, and the details."""
    obj = base["obj"]
    validate(obj)
    assert obj["kind"] == "bench"
    metrics = obj["metrics"]
    missing = [name for name in DOCUMENTED if name not in metrics]
    assert not missing, missing
    assert metrics["connections.opened"]["value"] == 20
    assert metrics["connections.held"]["value"] == 20
    assert metrics["messages.sent"]["value"] >= 400  # 20 x 10/s x 3 s = 600 planned
    assert metrics["rtt"]["count"] == metrics["messages.received"]["value"] > 0
    assert metrics["server.connections"]["value"] == 20
    assert metrics["server.rss_per_connection"]["value"] > 0
    details = obj["details"]
    assert details["series"]["connections_held"][-1] == 20
    assert len(details["processes"]) == 1 and "warnings" in details
    proc = details["processes"][0]
    assert (proc["transport"], proc["loop"]) == ("picows", "uvloop")  # the defaults
    assert details["server"]["reference"] is True
    assert "connect_time" in base["stdout"]  # the summary table


def test_baseline_comparison_that_passes(server: ServerProcess, base: dict) -> None:
    """Criteria relative to a baseline that hold: exit 0 and a table of verdicts."""
    done = bench(f"{server.url}/ws/pass-{{n}}", "-c", "20", "--connect-rate", "50",
                 "--duration", "2s", "--baseline", str(base["path"]),
                 "--criteria", "connections.opened: >= 1.0 * baseline",
                 "--criteria", "errors.refused: == 0")
    assert done.returncode == 0, done.stderr
    assert "pass" in done.stdout and "FAIL" not in done.stdout


def test_baseline_comparison_that_fails_exits_1(server: ServerProcess, base: dict,
                                                tmp_path: Path) -> None:
    """A criterion that cannot hold (twice the baseline's connections from half as many):
    exit 1, the failing row in the table, and the verdicts in the JSON. (A count, not a
    timing: a timing this close to its bound is inconclusive on a busy generator.)"""
    out = tmp_path / "r.json"
    done = bench(f"{server.url}/ws/fail-{{n}}", "-c", "10", "--connect-rate", "50",
                 "--duration", "2s", "--baseline", str(base["path"]), "--json", str(out),
                 "--criteria", "connections.opened: >= 2 * baseline")
    assert done.returncode == 1, done.stderr
    assert "FAIL" in done.stdout
    assert "criteria failed: connections.opened" in done.stderr
    verdicts = json.loads(out.read_text())["details"]["criteria"]
    assert [v["status"] for v in verdicts] == ["fail"]


def test_two_processes_merge_their_counts(server: ServerProcess, tmp_path: Path) -> None:
    """--processes 2 in resume mode: both workers' connections and messages add up in one
    result, with event delivery latencies, and both workers are listed. This run uses the
    websockets transport on asyncio's loop (the others use the defaults, picows on uvloop)."""
    out = tmp_path / "r.json"
    done = bench(f"{server.url}/ws/two-{{n}}", "-c", "30", "--connect-rate", "60",
                 "--mode", "resume", "--message-rate", "5", "--duration", "3s",
                 "--processes", "2", "--transport", "websockets", "--loop", "asyncio",
                 "--json", str(out))
    assert done.returncode == 0, done.stderr
    obj = json.loads(out.read_text())
    m = obj["metrics"]
    workers = [p for p in obj["details"]["processes"] if p.get("role") != "parent"]
    assert len(workers) == 2 and sorted(p["connections"] for p in workers) == [15, 15]
    assert {(p["transport"], p["loop"]) for p in workers} == {("websockets", "asyncio")}
    assert m["connections.opened"]["value"] == 30
    assert m["messages.sent"]["value"] == sum(p["sent"] for p in workers) > 0
    assert m["delivery_latency"]["count"] > 0
    assert m["server.connections"]["value"] == 30


def test_unreachable_target_exits_3() -> None:
    """Nothing listening: exit 3 with what the attempts met (refused), quickly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = bench(f"ws://127.0.0.1:{port}/", "-c", "5", "--connect-rate", "100",
                 "--duration", "30s", timeout=30)
    assert done.returncode == 3, done.stderr
    assert "refused" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["http://127.0.0.1:1/"], "ws:// or wss://"),
    (["ws://127.0.0.1:1/", "--criteria", "conect_time.p50: < 1s"], "unknown metric"),
    (["ws://127.0.0.1:1/", "--criteria", "connect_time.p50: <= 1.2 * baseline"],
     "--baseline"),
    (["ws://127.0.0.1:1/", "--criteria", "connect_time.p50"], "METRIC: EXPRESSION"),
    (["ws://127.0.0.1:1/", "--duration", "soon"], "duration"),
    (["ws://127.0.0.1:1/", "--connections", "0"], "connections"),
    (["ws://127.0.0.1:1/", "--connections", "30000"], "--processes"),
    (["ws://127.0.0.1:1/", "--baseline", "/nonexistent/base.json"], "--baseline"),
    (["ws://127.0.0.1:1/", "--json", "/nonexistent/dir/r.json"], "does not exist"),
    (["ws://127.0.0.1:1/", "--server-pid", "999999999"], "no such process"),
])
def test_bad_input_exits_2_with_one_line(args: list[str], says: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Bad input: exit 2 and one 'wsctl: error:' line naming the problem; nothing runs."""
    with pytest.raises(SystemExit) as exited:
        run_app(app, ["bench", *args], prog_name="wsctl")
    captured = capsys.readouterr()
    assert exited.value.code == 2, captured
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("wsctl: error:"), captured.err
    assert says in lines[0], captured.err
    assert captured.out == ""
