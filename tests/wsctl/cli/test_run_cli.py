"""``wsctl run`` end to end: reports, exit codes, input checks, and Ctrl-C with no child
process left behind."""

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from tests.verdicts import settled
from tests.wsctl.scenario.groups import group_alive, pids_in, running
from wsctl.cli import run as run_cli
from wsctl.cli.main import app
from wsctl.metrics import validate

pytestmark = pytest.mark.timeout(60)
cli = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "scenario" / "data"
MAIN = "import sys; from wsctl.cli.main import run; sys.argv[0] = 'wsctl'; run()"
FAST_SERVER = "server: {ping_interval: 1s, ping_timeout: 1s, job_rate: 20}"


def wsctl(*args, **kw):
    env = {**os.environ, "NO_PROXY": "*", **kw.pop("env", {})}
    return subprocess.Popen([sys.executable, "-c", MAIN, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **kw)


def interrupt_when(proc, ready, what):
    """SIGINT to ``proc`` once ``ready(its psutil.Process)`` holds (20 s at most; else
    fails with ``what``); its stdout and stderr. It never outlives the test."""
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 20
        while not ready(parent):
            assert time.monotonic() < deadline, what
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def scenario_file(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_short_scenario_end_to_end_writes_every_report(tmp_path):
    """kill + start and a toxic with for, through the proxy: the JSON report has the
    timeline as it happened, the metrics and the verdicts; JUnit parses; the HTML page
    embeds the same report; the step summary gets the Markdown."""
    summary = tmp_path / "step-summary.md"
    out = tmp_path / "out"
    proc = wsctl("run", DATA / "short.yaml", "--json", tmp_path / "r.json", "--junit",
                 tmp_path / "j.xml", "--html", tmp_path / "r.html", "--report-dir", out,
                 env={"GITHUB_STEP_SUMMARY": str(summary)})
    stdout, stderr = proc.communicate(timeout=50)
    # 4: a busy machine made the probes' loops late, and timing was not judged
    assert proc.returncode in (0, 4), stdout + stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "run-report"
    assert report["verdict"] == ("passed" if proc.returncode == 0 else "inconclusive")
    scenario = report["scenarios"][0]
    timeline = scenario["timeline"]
    assert [e["do"] for e in timeline] == ["server.kill", "server.start", "toxic",
                                            "toxic.remove"]
    for entry in timeline:
        assert entry["at"] >= entry["planned"] - 1e-3 and entry["error"] is None
    assert [e["planned"] for e in timeline[:3]] == [3.5, 4.5, 6.0]
    assert timeline[3]["at"] - timeline[2]["at"] == pytest.approx(1.0, abs=0.25)
    metrics = scenario["result"]["metrics"]
    assert scenario["result"]["kind"] == "run"
    validate(scenario["result"])  # the run Result is a valid versioned result object
    assert metrics["reconnect_time"]["count"] > 0
    assert metrics["messages.lost"]["value"] == 0
    assert metrics["detect_time"]["count"] > 0
    assert metrics["server.rss_per_connection"]["unit"] == "bytes"
    assert metrics["reconnect.peak_attempts_per_s"]["value"] >= 5
    assert [settled(c) for c in scenario["criteria"]] == ["pass"] * 4
    series = scenario["series"]
    assert len(series["t"]) >= 8 and 0 in series["connections"] and 5 in series["connections"]
    suites = ET.parse(tmp_path / "j.xml").getroot()
    assert len(suites.findall(".//testcase")) == 4
    page = (tmp_path / "r.html").read_text()
    embedded = re.search(r'<script type="application/json" id="wsctl-report">(.*?)</script>',
                         page, re.S)
    assert embedded is not None
    assert json.loads(html.unescape(embedded.group(1)))["scenarios"][0]["name"] == \
        "kill-and-toxic"
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html",
                                                     "report.json", "summary.md"]
    assert "kill-and-toxic" in summary.read_text()


def test_a_failing_criterion_exits_1(tmp_path):
    """A criterion that does not hold fails the run with exit 1, and says which."""
    path = scenario_file(tmp_path, f"""
name: failing
duration: 1500ms
{FAST_SERVER}
probes: {{count: 2, stream: "fail-{{n}}"}}
criteria:
  probes.gave_up: "> 0"
  messages.lost: "== 0"
""")
    result = cli.invoke(app, ["run", str(path), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    statuses = [c["status"] for c in report["scenarios"][0]["criteria"]]
    assert statuses == ["fail", "pass"]
    assert "FAILED" in result.stdout


def test_ctrl_c_mid_run_exits_130_and_leaves_no_child_process(tmp_path):
    """SIGINT to ``wsctl run`` while the server (paused, even) and probes run: it stops,
    reports what finished, exits 130, and every child it had is gone."""
    path = scenario_file(tmp_path, f"""
name: long
duration: 40s
{FAST_SERVER}
proxy: true
probes: {{count: 3, stream: "long-{{n}}"}}
timeline:
  - {{at: 1s, do: server.pause}}
""")
    proc = wsctl("run", path, "--json", tmp_path / "r.json")
    children: list[psutil.Process] = []

    def paused(parent: psutil.Process) -> bool:
        children[:] = parent.children(recursive=True)
        return any(c.status() == psutil.STATUS_STOPPED for c in children)

    stdout, stderr = interrupt_when(proc, paused, "the server never started and paused")
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted; 0 of 1 scenarios finished" in stderr
    assert "Traceback" not in stderr
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, alive
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["scenarios"][0]["error"].startswith("interrupted")


def test_process_actions_against_a_url_server_are_refused_before_running(tmp_path):
    """With server.url wsctl owns no process: server.kill is invalid input, exit 2."""
    path = scenario_file(tmp_path, """
name: url
duration: 5s
server: {url: "ws://127.0.0.1:9/ws/{stream}"}
timeline:
  - {at: 1s, do: server.kill}
""")
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert re.match(rf"wsctl: error: {re.escape(str(path))}:6: timeline\[0\]\.do: "
                    r"server\.kill needs a server wsctl runs", result.stderr)


def test_an_invalid_file_stops_everything_even_with_a_valid_one_first(tmp_path):
    """Every file is validated before anything starts: the bad one is named with its line."""
    good = scenario_file(tmp_path, "name: good\nduration: 1s\n", "good.yaml")
    bad = scenario_file(tmp_path, "name: bad\nduration: soon\n", "bad.yaml")
    started = time.monotonic()
    result = cli.invoke(app, ["run", str(good), str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"wsctl: error: {bad}:2: duration")
    assert time.monotonic() - started < 5  # good.yaml's second was never run


def test_list_shows_names_durations_and_descriptions(tmp_path):
    """--list prints every scenario and runs nothing."""
    path = scenario_file(tmp_path, """
name: two
scenarios:
  - {name: first, duration: 2s, description: The first one.}
  - {name: second, duration: 1m}
""")
    result = cli.invoke(app, ["run", str(path), "--list"])
    assert result.exit_code == 0
    assert re.search(r"first\s+2s\s+The first one\.", result.stdout)
    assert re.search(r"second\s+60s", result.stdout)


def test_unknown_scenario_name_lists_the_names(tmp_path):
    """--scenario with a name no file has: exit 2 with the names there are."""
    path = scenario_file(tmp_path, "name: only\nduration: 1s\n")
    result = cli.invoke(app, ["run", str(path), "--scenario", "nope"])
    assert result.exit_code == 2
    assert "no scenario named 'nope'; the files have: only" in result.stderr


def test_baseline_criterion_without_a_baseline_is_exit_2(tmp_path):
    """A relative criterion with nothing to compare with is named before anything runs."""
    path = scenario_file(tmp_path, """
name: rel
duration: 1s
criteria:
  connect_time.p50: "<= 0.8 * baseline"
""")
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "criterion connect_time.p50" in result.stderr and "--baseline" in result.stderr


@pytest.mark.parametrize("option", ["--json", "--junit", "--markdown", "--html"])
def test_an_unwritable_report_path_is_exit_2_before_running(tmp_path, option):
    """A report that could not be written later is refused first."""
    path = scenario_file(tmp_path, "name: w\nduration: 30s\n")
    started = time.monotonic()
    result = cli.invoke(app, ["run", str(path), option, str(tmp_path / "missing" / "x")])
    assert result.exit_code == 2
    assert f"{option} {tmp_path / 'missing' / 'x'}: directory" in result.stderr
    assert time.monotonic() - started < 5


def test_an_unwritable_step_summary_is_exit_2_before_running(tmp_path, monkeypatch):
    """$GITHUB_STEP_SUMMARY naming a file in a missing directory: refused before the run,
    not discovered after it (which would turn a finished run into exit 2)."""
    path = scenario_file(tmp_path, "name: w\nduration: 30s\n")
    target = tmp_path / "missing" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    started = time.monotonic()
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert f"$GITHUB_STEP_SUMMARY {target}: directory" in result.stderr
    assert time.monotonic() - started < 5


def test_a_baseline_file_that_is_not_json_is_exit_2(tmp_path):
    """--baseline must hold a wsctl report or result."""
    path = scenario_file(tmp_path, "name: b\nduration: 1s\n")
    (tmp_path / "base.json").write_text("not json")
    result = cli.invoke(app, ["run", str(path), "--baseline", str(tmp_path / "base.json")])
    assert result.exit_code == 2
    assert "--baseline" in result.stderr and "not JSON" in result.stderr


def test_no_file_and_no_bundled_suite_is_exit_2(tmp_path, monkeypatch):
    """Without FILE, the bundled suite is run; if it is missing, say so."""
    monkeypatch.setattr(run_cli, "bundled_suite", lambda: tmp_path / "ep-0001.yaml")
    result = cli.invoke(app, ["run"])
    assert result.exit_code == 2
    assert "bundled suite" in result.stderr and "wsctl run FILE.yaml" in result.stderr


def test_help_documents_the_exit_codes():
    """--help lists 0, 1, 2, 3 and 130."""
    result = cli.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.stdout.split())
    for code in ("0 every criterion passed", "1 a criterion failed", "2 usage or invalid",
                 "3 a scenario could not run", "130 interrupted"):
        assert code in text


def test_an_unreachable_url_server_is_exit_3_saying_why(tmp_path):
    """No probe ever connected: the scenario could not run (exit 3), not 'failed'."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    path = scenario_file(tmp_path, f"""
name: nobody
duration: 1500ms
server: {{url: "ws://127.0.0.1:{port}/ws/{{stream}}"}}
probes: {{count: 2}}
criteria:
  messages.lost: "== 0"
""")
    result = cli.invoke(app, ["run", str(path), "--quiet"])
    assert result.exit_code == 3, result.output
    assert (f"wsctl: error: scenario nobody: could not connect to "
            f"ws://127.0.0.1:{port}/ws/{{stream}}: connection refused") in result.stderr


def test_a_baseline_file_feeds_relative_criteria(tmp_path):
    """--baseline with one wsctl result: 'k * baseline' is judged against its figure."""
    from wsctl.metrics import MetricSet, Result

    metrics = MetricSet()
    metrics.histogram("connect_time").record(0.25)
    (tmp_path / "base.json").write_text(json.dumps(Result("probe", metrics).to_dict()))
    path = scenario_file(tmp_path, f"""
name: rel
duration: 1500ms
{FAST_SERVER}
probes: {{count: 2, stream: "rel-{{n}}"}}
criteria:
  connect_time.p50: "<= 1 * baseline"
  connect_time.max: "> 0.0001 * baseline"
""")
    result = cli.invoke(app, ["run", str(path), "--baseline", str(tmp_path / "base.json"),
                              "--json", str(tmp_path / "r.json"), "--quiet"])
    assert result.exit_code in (0, 4), result.output  # 4: a busy machine, timing unjudged
    criteria = json.loads((tmp_path / "r.json").read_text())["scenarios"][0]["criteria"]
    assert [settled(c) for c in criteria] == ["pass", "pass"]
    assert [c["baseline"] for c in criteria] == [pytest.approx(0.25, rel=0.01)] * 2
    assert criteria[0]["threshold"] == pytest.approx(0.25, rel=0.01)


# -- the team's own service (server.command, --server-command) ---------------------------

SEQ_SERVER = Path(__file__).resolve().parents[2] / "services" / "seq_server.py"
SEQ_COMMAND = f"{sys.executable} {SEQ_SERVER} {{port}}"
SEQ_URL = "ws://127.0.0.1:{port}/ws/{stream}"
SEQ_READY = "http://127.0.0.1:{port}/ws/health"


def test_ctrl_c_leaves_no_process_of_a_command_service_group(tmp_path):
    """SIGINT to a real ``wsctl run`` while its service (a parent and two workers, in
    their own process group) runs: exit 130, and no process of that group survives."""
    command = json.dumps([sys.executable, str(SEQ_SERVER), "{port}", "--workers", "2"])
    path = scenario_file(tmp_path, f"""
name: long
duration: 40s
server: {{command: {command}, url: "{SEQ_URL}", ready: "{SEQ_READY}"}}
probes: {{count: 2, mode: listen}}
timeline:
  - {{at: 1s, do: server.pause}}
""")
    proc = wsctl("run", path, "--report-dir", tmp_path / "rep")
    group: list[int] = []

    def paused(parent: psutil.Process) -> bool:
        leaders = [c for c in parent.children() if "seq_server" in " ".join(c.cmdline())]
        group[:] = group_alive(leaders[0].pid) if leaders else []
        return len(group) == 3 and all(psutil.Process(p).status() == psutil.STATUS_STOPPED
                                       for p in group)

    stdout, stderr = interrupt_when(proc, paused, "the service never started with its two "
                                    "workers and paused")
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert group_alive(group[0]) == [] and running(group) == []
    assert "listening on" in (tmp_path / "rep" / "long.service.log").read_text()


def test_server_flags_replace_the_server_and_a_failed_criterion_leaves_nothing(tmp_path):
    """--server-command/--server-url/--server-ready run the service for a scenario written
    for the embedded server; a failed criterion exits 1 and the service is gone."""
    path = scenario_file(tmp_path, """
name: flags
duration: 5s
probes: {count: 2, mode: listen, heartbeat: {kind: protocol, interval: 300ms, timeout: 300ms}}
timeline:
  - {at: 1s, do: server.kill}
  - {at: 1500ms, do: server.start}
criteria:
  reconnect_time.max: "< 5s"
  connections.lost: "== 0"
""")
    result = cli.invoke(app, ["run", str(path), "--server-command", SEQ_COMMAND,
                              "--server-url", SEQ_URL, "--server-ready", SEQ_READY,
                              "--report-dir", str(tmp_path / "rep"), "--quiet"])
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    scenario = report["scenarios"][0]
    assert [settled(c) for c in scenario["criteria"]] == ["pass", "fail"]
    server = scenario["result"]["details"]["server"]
    assert server["incarnations"] == 2 and server["log"].endswith("flags.service.log")
    pids = pids_in(Path(server["log"]))
    assert len(pids) == 2 and running(pids) == []


@pytest.mark.parametrize(("flags", "message"), [
    (["--server-command", "node s.js"], "--server-command and --server-ready need "
                                        "--server-url"),
    (["--server-ready", SEQ_READY, "--server-url", SEQ_URL], "--server-ready needs "
                                                             "--server-command"),
    (["--server-command", "node s.js", "--server-url", SEQ_URL],
     "--server-url: the url uses {port} but the command does not"),
    (["--server-command", "x {port}", "--server-url", SEQ_URL, "--server-ready", "x"],
     "--server-ready: ready 'x': write http://"),
    (["--server-url", "http://h:1/"], "--server-url: Value error, must be a ws://"),
    (["--server-url", "ws://127.0.0.1:9/ws/{stream}"],
     "s.yaml:6: scenario k: with --server-url alone, server.kill needs a server wsctl runs"),
])
def test_bad_server_flags_are_one_line_and_exit_2(tmp_path, flags, message):
    """A bad combination of server flags, or a url-only server for a scenario that kills
    its server, is exit 2 with one line, before anything starts."""
    path = scenario_file(tmp_path, """
name: k
duration: 3s
probes: {count: 1}
timeline:
  - {at: 1s, do: server.kill}
""")
    result = cli.invoke(app, ["run", str(path), *flags])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("wsctl: error: ") and message in result.stderr, \
        result.stderr
    assert result.stderr.count("\n") == 1


def test_the_last_resort_cleanup_kills_a_service_whatever_ended_the_run(tmp_path,
                                                                        monkeypatch):
    """A run that dies of an unexpected error after starting a service: the CLI's
    ``finally`` (service.kill_all) still ends its process group."""
    import asyncio

    from wsctl.scenario import runner as runner_module
    from wsctl.scenario import service

    started: list[int] = []

    async def broken_run(self, suites, only=None):
        svc = service.ServiceProcess(
            service.service_from([sys.executable, str(SEQ_SERVER), "{port}", "--workers",
                                  "1"], SEQ_URL, SEQ_READY), tmp_path / "svc.log")
        await svc.start()
        started.append(svc.pid())
        await asyncio.sleep(0)
        raise RuntimeError("the runner broke")

    monkeypatch.setattr(runner_module.Runner, "run", broken_run)
    path = scenario_file(tmp_path, "name: b\nduration: 2s\nprobes: {count: 1}\n")
    result = cli.invoke(app, ["run", str(path), "--quiet"])
    assert isinstance(result.exception, RuntimeError)
    assert started and group_alive(started[0]) == []
    assert not service.LIVE
