"""Scenarios against the team's own service (``server: {command: ...}``): every
``server.*`` action on a real process group, the figures measured from its tree, its log,
and nothing left running afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from tests.verdicts import settled
from tests.wsctl.scenario.groups import group_alive, pids_in, running
from wsctl.clock import MonotonicClock
from wsctl.errors import InvalidInput
from wsctl.scenario import service as service_module
from wsctl.scenario.actions import perform
from wsctl.scenario.model import loads
from wsctl.scenario.runner import Runner, run_suite
from wsctl.scenario.stage import Stage

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[3]
SEQ_SERVER = ROOT / "tests" / "services" / "seq_server.py"
EXAMPLES = ROOT / "examples"
# Backoff capped at 1 s: the faults below come faster than min_uptime (2 s) lets the
# attempt counter reset, so with the default 30 s cap the full-jitter ceiling could grow
# to 4 s and more by the last outage, and a "< 4s" reconnect passed or failed on the
# draw (it failed in 1 of 3 CI runs on 2026-12-03).
LISTEN = ("probes: {count: 3, stream: \"p-{n}\", mode: listen, "
          "heartbeat: {kind: protocol, interval: 300ms, timeout: 300ms}, "
          "backoff: {cap: 1s}}")


# Probes, a kill, a pause and a restart, and the criteria they must pass (10 s or more).
KILL_PAUSE_RESTART = f"""{LISTEN}
timeline:
  - {{at: 1500ms, do: server.kill}}
  - {{at: 2500ms, do: server.start}}
  - {{at: 4s, do: server.pause, for: 1s}}
  - {{at: 7500ms, do: server.restart}}
criteria:
  reconnect_time.max: "< 4s"
  detect_time.max: "< 2s"
"""


def seq_server(*extra: str, ready: str = "http://127.0.0.1:{port}/ws/health") -> str:
    """A ``server:`` block running tests/services/seq_server.py."""
    command = json.dumps([sys.executable, str(SEQ_SERVER), "{port}", *extra])
    return (f"server:\n  command: {command}\n  url: \"ws://127.0.0.1:{{port}}/ws/{{stream}}\"\n"
            f"  ready: \"{ready}\"\n  stop_timeout: 3s\n")


async def test_kill_term_pause_restart_a_command_service_and_judge_it(tmp_path):
    """Every server.* action works on a command service; reconnect_time and detect_time
    pass; its RSS is measured from its tree, /metrics counters are absent (never fake
    zeros); its log is in the log dir and named in the details; nothing is left."""
    suite = loads(f"""
name: own
duration: 10s
{seq_server()}{LISTEN}
timeline:
  - {{at: 1500ms, do: server.kill}}
  - {{at: 2500ms, do: server.start}}
  - {{at: 3500ms, do: server.term}}
  - {{at: 4s, do: server.start}}
  - {{at: 5s, do: server.pause, for: 1s}}
  - {{at: 7s, do: server.restart}}
criteria:
  reconnect_time.max: "< 4s"
  detect_time.max: "< 2s"
  probes.gave_up: "== 0"
  server.refused: "== 0"
""", str(tmp_path / "own.yaml"))
    report = await Runner(log_dir=tmp_path / "logs").run([suite])
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    assert [e.error for e in outcome.timeline] == [None] * 7
    assert [e.do for e in outcome.timeline] == [
        "server.kill", "server.start", "server.term", "server.start", "server.pause",
        "server.resume", "server.restart"]
    assert outcome.timeline[2].detail.startswith("SIGTERM to pid")
    # /metrics is not read from a command service: a criterion on it is never a pass.
    assert [settled(v) for v in outcome.verdicts] == ["pass"] * 3 + ["error"], \
        outcome.verdicts
    result = outcome.result
    assert result is not None
    metrics = result.metrics
    assert metrics.histograms["detect_time"].count >= 3 * 2  # faults noticed by probes
    assert metrics.gauges["server.rss"].value > 1_000_000
    assert "server.rss_per_connection" in metrics.gauges
    for scraped in ("server.refused", "server.dead_detected"):
        assert scraped not in metrics.counters
    assert "server.connections" not in metrics.gauges
    server = result.details["server"]
    log = tmp_path / "logs" / "own.service.log"
    assert server["log"] == str(log) and server["incarnations"] == 4
    assert server["command"][:2] == [sys.executable, str(SEQ_SERVER)]
    assert result.config["server"].startswith("command: ")
    pids = pids_in(log)
    assert len(set(pids)) == 4  # one process per incarnation
    assert running(pids) == []
    assert not service_module.LIVE


async def test_a_service_with_workers_is_paused_and_killed_as_a_group(tmp_path):
    """server.pause stops the parent and both workers; server.kill leaves none of them."""
    suite = loads(f"name: w\nduration: 5s\n{seq_server('--workers', '2')}",
                  str(tmp_path / "w.yaml"))
    stage = Stage(suite.scenarios[0], tmp_path, MonotonicClock(),
                  service_log=tmp_path / "w.log")
    try:
        await stage.open()
        assert stage.server is not None
        pgid = stage.server.pid()
        assert pgid is not None
        members = group_alive(pgid)
        assert len(members) == 3  # the parent and its two workers
        detail = await perform(stage, "server.pause", SimpleNamespace())
        assert detail == f"SIGSTOP to pid {pgid}"
        assert {psutil.Process(p).status() for p in members} == {psutil.STATUS_STOPPED}
        await perform(stage, "server.kill", SimpleNamespace())
        assert group_alive(pgid) == []
        await perform(stage, "server.start", SimpleNamespace())
        assert len(group_alive(stage.server.pid() or 0)) == 3
    finally:
        await stage.close(early=True, others=[])
    assert not service_module.LIVE


async def test_a_service_that_exits_at_start_is_a_run_error_naming_it(tmp_path):
    """A command that exits before it is ready: the scenario could not run (exit code 3)
    and the error names the command, its exit status and its last output."""
    command = json.dumps([sys.executable, "-c",
                          "import sys; print('boom: no config file'); sys.exit(7)", "{port}"])
    suite = loads(f"""
name: broken
duration: 3s
server: {{command: {command}, url: "ws://127.0.0.1:{{port}}/ws/{{stream}}"}}
""", str(tmp_path / "b.yaml"))
    report = await run_suite(suite)
    assert report.exit_code == 3
    error = report.scenarios[0].error or ""
    assert "exited with status 7" in error and "boom: no config file" in error
    assert sys.executable in error
    assert not service_module.LIVE


async def test_fastapi_under_uvicorn_killed_paused_and_restarted(tmp_path):
    """The FastAPI example under uvicorn (cwd relative to the scenario file): kill, pause
    and restart, reconnect_time and detect_time pass, the log holds uvicorn's output."""
    pytest.importorskip("fastapi")
    folder = tmp_path / "suite"
    folder.mkdir()
    suite = loads(f"""
name: fastapi
duration: 10s
server:
  command: [{json.dumps(sys.executable)}, -m, uvicorn, "app:app", --port, "{{port}}"]
  cwd: {json.dumps(os.path.relpath(EXAMPLES / "fastapi", folder))}
  url: "ws://127.0.0.1:{{port}}/ws/{{stream}}"
  ready: "http://127.0.0.1:{{port}}/ws/health"
  stop_timeout: 3s
{KILL_PAUSE_RESTART}""", str(folder / "f.yaml"))
    assert suite.scenarios[0].server.cwd == str((EXAMPLES / "fastapi").resolve())
    report = await Runner(log_dir=tmp_path).run([suite])
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    assert [settled(v) for v in outcome.verdicts] == ["pass", "pass"], outcome.verdicts
    assert outcome.result is not None
    assert outcome.result.metrics.counters["messages.received"] > 50
    assert "Uvicorn running on" in (tmp_path / "fastapi.service.log").read_text()
    assert not service_module.LIVE


async def test_node_ws_service_killed_paused_and_restarted(tmp_path):
    """The Node ws example (npm install in a copy): kill, pause and restart through its
    PORT variable; reconnect_time and detect_time pass."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the Node ws example (CI has them)")
    copy = tmp_path / "node-ws"
    shutil.copytree(EXAMPLES / "node-ws", copy, ignore=shutil.ignore_patterns("node_modules"))
    installed = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=copy,
                               capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    suite = loads(f"""
name: node
duration: 10s
server:
  command: [node, server.js]
  env: {{PORT: "{{port}}"}}
  url: "ws://127.0.0.1:{{port}}/{{stream}}"
  ready: "http://127.0.0.1:{{port}}/health"
  stop_timeout: 3s
{KILL_PAUSE_RESTART}""", str(copy / "scenario.yaml"))
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    assert [settled(v) for v in outcome.verdicts] == ["pass", "pass"], outcome.verdicts
    assert [e.error for e in outcome.timeline] == [None] * 5
    assert not service_module.LIVE


@pytest.mark.parametrize(("block", "line", "fragment"), [
    ('server: {command: [node, s.js]}', 3, "server.url: command needs url"),
    ('server:\n  command: [node, s.js]\n  url: "ws://127.0.0.1:{port}/"', 5,
     "server.url: the url uses {port} but the command does not"),
    ('server:\n  url: "ws://127.0.0.1:9/"\n  ready: "tcp://127.0.0.1:9"', 5,
     "server.ready: only with command"),
    ('server:\n  command: "node s.js"\n  url: "ws://h:1/"\n  ping_interval: 1s', 6,
     "server.ping_interval: only for the embedded server; with command"),
    ('server:\n  command: "node s.js"\n  url: "ws://h:1/"\n  ready: "ftp://x"', 6,
     "server.ready: ready 'ftp://x': write http://"),
    ('server:\n  command: "node s.js"\n  url: "ws://h:1/"\n  stop_signal: NOPE', 6,
     "server.stop_signal: stop_signal 'NOPE': not a signal name"),
    ('server:\n  command: "node s.js"\n  url: "ws://h:1/"\n  cwd: missing', 6,
     "server.cwd: no such directory"),
    ('server: {url: "ws://127.0.0.1:{port}/"}', 3, "server.url: {port} is for a server"),
])
def test_invalid_command_servers_name_file_line_and_field(tmp_path, block, line,
                                                          fragment):
    """Every mistake in a command server is one FILE:LINE: field: problem, before
    anything starts."""
    with pytest.raises(InvalidInput) as info:
        loads(f"name: x\nduration: 5s\n{block}\n", str(tmp_path / "x.yaml"))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'x.yaml'}:{line}: "), message
    assert fragment in message, message


def test_a_command_server_takes_server_actions_and_its_folder(tmp_path):
    """With command, server.* actions validate; cwd defaults to the file's folder and
    env values written as numbers are text."""
    suite = loads("""
name: ok
duration: 5s
server:
  command: [node, server.js, --port, "{port}", --workers, 2]
  url: "ws://127.0.0.1:{port}/{stream}"
  env: {WORKERS: 2}
timeline:
  - {at: 1s, do: server.pause, for: 1s}
""", str(tmp_path / "ok.yaml"))
    server = suite.scenarios[0].server
    assert server.owned and not server.embedded
    assert server.cwd == str(tmp_path.resolve()) and server.env == {"WORKERS": "2"}
    spec = server.service()
    assert spec.command == ("node", "server.js", "--port", "{port}", "--workers", "2")
    assert spec.chooses_port
    assert loads("name: s\nduration: 1s\nserver: {command: \"a '{port}' b\", url: "
                 "\"ws://h:{port}/\"}").scenarios[0].server.service().command == (
        "a", "{port}", "b")  # a string is split as a shell would
    assert server.args() == []
