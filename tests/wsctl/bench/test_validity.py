"""Failures never pass silently: a bench whose connections were dropped, failed or heard
nothing ends with a warning naming the cause and exit 1 (real runs through the CLI), and
the pure checks behind it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.wsctl.bench.pushserver import PushServer
from wsctl.bench.validity import check, findings
from wsctl.metrics import MetricSet, Result

WSCTL = str(Path(sys.executable).with_name("wsctl"))


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WSCTL, "bench", *args], capture_output=True, text=True, timeout=90)


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


@pytest.mark.parametrize("transport", ["websockets", "picows"])
def test_twenty_of_twenty_dropped_warns_and_exits_1(transport: str, tmp_path: Path) -> None:
    """Every connection aborted by the server 0.2 s after opening: exit 1, and the last
    line is a warning that says 20 of 20 were closed, with 1006 and its likely cause."""
    out = tmp_path / "r.json"
    with PushServer(count=0, wait_for=1, drop_after=0.2) as server:
        done = bench(server.url + "/ws/d-{n}", "-c", "20", "--connect-rate", "100",
                     "--mode", "listen", "--duration", "1.5s", "--transport", transport,
                     "--loop", "asyncio", "--json", str(out))
    assert done.returncode == 1, done.stderr
    line = last_line(done.stderr)
    assert line.startswith("wsctl bench: warning: the measurement is invalid: 20 of 20 "
                           "connections were closed before the end"), line
    assert "closes.1006 x20" in line and "without a close frame" in line
    details = json.loads(out.read_text())["details"]
    assert any("20 of 20" in text for text in details["invalid"])
    assert [v["metric"] for v in details["criteria"]] == ["connections.lost"]


def test_listen_that_hears_nothing_warns_and_exits_1() -> None:
    """A service that pushes nothing (it waits for more connections than come): exit 1,
    the warning suggests a subscribe message; a criterion that passed is still printed."""
    with PushServer(count=5, wait_for=99) as server:
        done = bench(server.url + "/ws/q-{n}", "-c", "3", "--mode", "listen",
                     "--duration", "1s", "--transport", "websockets", "--loop", "asyncio",
                     "--criteria", "connections.opened: == 3")
    assert done.returncode == 1, done.stderr
    line = last_line(done.stderr)
    assert "no message arrived on 3 open connection(s)" in line and "--on-open" in line
    assert "pass" in done.stdout


def test_listen_over_two_processes_merges_counts_and_loss(tmp_path: Path) -> None:
    """--processes 2 in listen mode with --sequence/--timestamp: the workers' counts,
    loss and latencies add up to what the server sent; exit 0 with no invalid finding."""
    out = tmp_path / "r.json"
    with PushServer(count=30, interval=0.03, skip={10}, wait_for=6) as server:
        done = bench(server.url + "/ws/p-{n}", "-c", "6", "--connect-rate", "100",
                     "--mode", "listen", "--sequence", "seq", "--timestamp", "ts",
                     "--duration", "3s", "--processes", "2", "--json", str(out),
                     "--criteria", "messages.lost: == 6")
        assert server.done.is_set()
    assert done.returncode == 0, done.stderr
    obj = json.loads(out.read_text())
    m, details = obj["metrics"], obj["details"]
    assert m["messages.received"]["value"] == sum(len(v) for v in server.sent.values()) == 174
    assert m["messages.lost"]["value"] == 6
    assert m["delivery_latency"]["count"] == 174
    assert details["per_connection"]["connections"] == 6
    assert details["per_connection"]["received"]["min"] == 29
    assert details["invalid"] == [] and details["merged_from"] == 2
    assert "messages.lost" not in details["unmeasured"]
    assert "rtt" in details["unmeasured"]


def test_invalid_frames_warn_and_exit_1() -> None:
    """Every message's sequence field is text that is not a number: most frames invalid."""
    with PushServer(count=10, interval=0.02, wait_for=2,
                    message=lambda seq: json.dumps({"seq": f"n{seq}"})) as server:
        done = bench(server.url + "/ws/i-{n}", "-c", "2", "--mode", "listen",
                     "--sequence", "seq", "--duration", "1.5s", "--transport", "websockets",
                     "--loop", "asyncio")
    assert done.returncode == 1, done.stderr
    assert "20 of 20 messages had a sequence 'seq' field" in last_line(done.stderr)


# --- pure checks --------------------------------------------------------------------------


def result(counters: dict[str, int], config: dict | None = None) -> Result:
    metrics = MetricSet()
    for name, value in counters.items():
        metrics.add(name, value)
    return Result(kind="bench", metrics=metrics, config=config or {"mode": "echo"})


def test_a_healthy_run_has_no_finding() -> None:
    """All connections open and held, nothing invalid: no finding, no verdict."""
    r = result({"connections.opened": 20, "connections.failed": 0, "connections.lost": 0,
                "messages.received": 100})
    assert check(r) == [] and r.details["invalid"] == []


def test_half_is_not_most() -> None:
    """10 of 20 failed or dropped is not most; 11 of 20 is."""
    ok = result({"connections.opened": 10, "connections.failed": 10, "connections.lost": 5})
    assert findings(ok) == []
    bad = result({"connections.opened": 9, "connections.failed": 11, "errors.status_503": 11})
    (key, expect, line), = findings(bad)
    assert (key, expect) == ("connections.failed", "<= 10")
    assert "11 of 20 connections failed to open (errors.status_503 x11)" in line
    assert "HTTP 503" in line


def test_nothing_opened_is_left_to_unreachable() -> None:
    """No connection opened at all is exit 3 (Unreachable), not an invalid measurement."""
    assert findings(result({"connections.opened": 0, "connections.failed": 20})) == []


def test_a_sequence_path_that_matches_nothing_is_an_error_verdict() -> None:
    """Listen mode with --sequence, messages received, none numbered (no messages.lost):
    an error verdict on messages.lost naming the path."""
    r = result({"connections.opened": 2, "messages.received": 50},
               {"mode": "listen", "protocol": {"sequence": "data.seq"}})
    (verdict,) = check(r)
    assert verdict.criterion.key == "messages.lost" and verdict.status == "error"
    assert "none of the 50 messages had a number at 'data.seq'" in verdict.message
