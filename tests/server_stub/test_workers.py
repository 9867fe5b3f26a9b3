"""``--workers N``: a supervisor and N worker processes on one port (server_stub/workers.py),
as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from server_stub.command import main
from server_stub.workers import RESTART_DELAY, STABLE_AFTER, restart_delay
from tests.server_stub.helpers import closed_going_away, recv_message
from tests.serverproc import ServerProcess
from wsctl import protocol as p
from wsctl.cli.main import app

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="--workers needs Linux (SO_REUSEPORT)")


def _health(server: ServerProcess) -> dict:
    """One /ws/health document, over a fresh connection (the kernel picks the worker)."""
    with urllib.request.urlopen(f"{server.http}/ws/health", timeout=5) as response:
        return json.loads(response.read())


def _by_worker(server: ServerProcess, tries: int = 60) -> dict[int, dict]:
    """The latest health document of each worker, by index, from ``tries`` fresh requests."""
    seen: dict[int, dict] = {}
    for _ in range(tries):
        health = _health(server)
        seen[health["worker"]] = health
    return seen


def _gone(pid: int) -> bool:
    """The process ``pid`` has exited (a zombie not yet reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


async def test_two_workers_serve_one_port_and_stop_on_sigterm(server_process):
    """--port 0 --workers 2 announces one URL; connections land on both workers (each counts
    its own); SIGTERM closes every client with 1001 and a retry hint, stops every worker and
    exits 0."""
    server = server_process("--workers", "2", "--job-rate", "20", "--retry-hint", "1500ms")
    clients = [await connect(f"{server.url}/ws/s{i}") for i in range(12)]
    for ws in clients:
        assert isinstance(await recv_message(ws), p.Welcome)
    workers = await asyncio.to_thread(_by_worker, server)
    assert set(workers) == {0, 1}
    pids = {health["pid"] for health in workers.values()}
    assert len(pids) == 2 and server.proc.pid not in pids
    assert {child.pid for child in psutil.Process(server.proc.pid).children()} == pids
    assert sum(health["connections"] for health in workers.values()) == 12
    server.signal(signal.SIGTERM)
    await closed_going_away(clients, 1500, 10)
    assert await asyncio.to_thread(server.proc.wait, 15) == 0
    assert all(_gone(pid) for pid in pids)


def test_a_killed_worker_is_restarted(server_process):
    """SIGKILL of one worker: the supervisor logs it and starts another in its place; the
    port keeps answering and the supervisor keeps running."""
    server = server_process("--workers", "2")
    before = _by_worker(server)
    killed = before[0]["pid"]
    psutil.Process(killed).kill()
    assert _wait(lambda: _gone(killed))

    def replaced() -> bool:
        try:
            now = _by_worker(server, tries=20)
        except OSError:  # a connection the kernel dealt to the dying worker: reset, retry
            return False
        return 0 in now and now[0]["pid"] != killed

    assert _wait(replaced, 15), server.logs()
    assert server.proc.poll() is None
    assert f"worker 0 (pid {killed}) died with signal 9" in server.logs()
    assert _by_worker(server)[1]["pid"] == before[1]["pid"]  # the other one untouched


def test_killing_the_supervisor_leaves_no_worker(server_process):
    """SIGKILL of the supervisor: its workers die too (PR_SET_PDEATHSIG), the port is free."""
    server = server_process("--workers", "2")
    pids = [child.pid for child in psutil.Process(server.proc.pid).children()]
    assert len(pids) == 2
    server.kill()
    assert _wait(lambda: all(_gone(pid) for pid in pids)), pids
    again = ServerProcess("--workers", "2", port=server.port)  # the port is free again
    again.close()


def test_a_port_held_by_workers_is_refused_to_another_server(server_process):
    """A second server (with or without workers) on a --workers server's port exits 3 in
    one line rather than silently sharing the port through SO_REUSEPORT."""
    first = server_process("--workers", "2")
    for extra in (["--workers", "2"], []):
        result = subprocess.run(
            [sys.executable, "-m", "server_stub", "--port", str(first.port), *extra],
            capture_output=True, text=True, timeout=30)
        assert result.returncode == 3, result.stderr
        assert result.stderr.count("\n") == 1 and "address already in use" in result.stderr


def test_a_worker_that_cannot_start_stops_the_server_in_one_line(tmp_path):
    """A worker failing at start (an unreadable certificate) ends the server with that
    worker's one-line error and exit status, and no process is left."""
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server_stub", "--port", "0", "--workers", "3",
         "--certfile", str(bad), "--keyfile", str(bad)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = []
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(proc.pid).children()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == ""
    assert err.count("\n") == 1 and "cannot load TLS certificate" in err, err
    assert all(_gone(child.pid) for child in children)


@pytest.fixture
def started(monkeypatch):
    """What would have run (nothing is started): ("run" | "supervise", config)."""
    seen: list[tuple[str, object]] = []
    monkeypatch.setattr("server_stub.main.run", lambda c: seen.append(("run", c)) or 0)
    monkeypatch.setattr("server_stub.workers.supervise",
                        lambda c: seen.append(("supervise", c)) or 0)
    monkeypatch.setattr("server_stub.logs.setup_logging", lambda *args: None)
    return seen


def test_one_worker_is_the_single_process_server(started, monkeypatch):
    """--workers 1 (the default) runs today's single process; 2, WSCTL_WORKERS=3 or
    ``wsctl serve --workers 4`` the supervisor."""
    assert main([]) == 0 and main(["--workers", "2"]) == 0
    assert CliRunner().invoke(app, ["serve", "--workers", "4"], env={}).exit_code == 0
    monkeypatch.setenv("WSCTL_WORKERS", "3")
    assert main([]) == 0
    assert [(how, config.workers) for how, config in started] == [  # type: ignore[attr-defined]
        ("run", 1), ("supervise", 2), ("supervise", 4), ("supervise", 3)]


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "0"], "--workers: 0 is not in the range 1<=x<=64"),
    (["--workers", "65"], "--workers: 65 is not in the range 1<=x<=64"),
    (["--workers", "2", "--store", "sqlite:/tmp/x.db"], "use --store redis://"),
    (["--workers", "2", "--profile", "baseline"], "needs --profile reference"),
])
def test_bad_workers_are_one_line_exit_2(args, message, started, capsys):
    """--workers out of range, with a sqlite store (one writer per file) or with the
    baseline profile: one line, exit 2, nothing starts."""
    with pytest.raises(SystemExit) as stopped:
        sys.exit(main(args))
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith("wsctl: error: ") and err.count("\n") == 1, err
    assert message in err and started == [] and out == ""


def test_restart_delay_backs_off_only_for_quick_deaths():
    """A worker that lived STABLE_AFTER seconds restarts at once; quick deaths in a row
    double the delay, capped."""
    assert restart_delay(STABLE_AFTER, 7) == 0.0
    assert [restart_delay(0.1, n) for n in range(3)] == [
        RESTART_DELAY, 2 * RESTART_DELAY, 4 * RESTART_DELAY]
    assert restart_delay(0.1, 50) == 30.0


def test_a_worker_names_itself_in_every_log_line(monkeypatch):
    """After name_worker(3), text lines carry ``worker=3`` and JSON lines ``"worker": 3``;
    a process that is no worker logs neither."""
    import logging

    from server_stub.logs import JsonFormatter, TextFormatter, name_worker

    record = logging.LogRecord("server_stub", logging.INFO, "", 0, "opened %s", ("s1",), None)
    assert "worker" not in TextFormatter().format(record)
    assert "worker" not in json.loads(JsonFormatter().format(record))
    handler = logging.StreamHandler()
    handler.setFormatter(TextFormatter())
    json_handler = logging.StreamHandler()
    json_handler.setFormatter(JsonFormatter())
    monkeypatch.setattr(logging.getLogger("server_stub"), "handlers", [handler, json_handler])
    name_worker(3)
    assert " INFO worker=3 opened s1" in handler.format(record)
    assert json.loads(json_handler.format(record))["worker"] == 3
