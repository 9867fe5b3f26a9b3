"""``wsctl bench`` reports: the same JSON, JUnit, Markdown, HTML and console table as
``wsctl run``, made from a bench's result (library level and end to end)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
from rich.console import Console

from tests.serverproc import ServerProcess
from tests.wsctl.report.test_html import embedded
from tests.wsctl.report.test_junit import check_schema
from tests.wsctl.report.test_markdown import table_rows
from wsctl.bench.report import bench_report, judge
from wsctl.cli._common import run_app
from wsctl.cli.main import app
from wsctl.metrics import MetricSet, Result
from wsctl.report import markdown, verdict_line, write_all
from wsctl.report.markdown import escape
from wsctl.results.criteria import downgrade, parse
from wsctl.results.outcome import baseline_results

WSCTL = str(Path(sys.executable).with_name("wsctl"))
URL = "ws://127.0.0.1:8765/ws/bench-{n}"


def bench_result(opened: int = 20) -> Result:
    """A bench's result as the engine makes it: connect and round-trip times, counters,
    the plan as config and per-second series in the details."""
    m = MetricSet()
    for i in range(opened):
        m.histogram("connect_time").record(0.002 + i / 10_000)
    for i in range(300):
        m.histogram("rtt").record(0.0005 + (i % 30) / 100_000)
    m.add("connections.opened", opened)
    m.add("errors.refused", 0 if opened else 5)
    m.add("messages.sent", 300)
    m.set_gauge("connections.held", float(opened), "count")
    config = {"url": URL, "connections": 20, "connect_rate": 50.0, "message_rate": 10.0,
              "mode": "echo"}
    details = {"series": {"interval": 1.0, "t": [1.0, 2.0, 3.0],
                          "connections_held": [10, 20, 20], "messages_per_s": [0, 150, 200]}}
    return Result("bench", m, started_at=1_764_140_000.0, duration=3.0, target=URL,
                  config=config, details=details)


def criteria() -> list:
    return [parse("connect_time.p50", "< 50ms"), parse("errors.refused", "== 0"),
            parse("rtt.p99", "< 100us")]  # the last one fails


def test_bench_report_is_one_scenario_with_the_bench_result_and_its_verdicts():
    """The run report of a bench: command bench, the target as suite, the plan described,
    connections held as the report's connections series, verdicts in the result too."""
    result = bench_result()
    verdicts = judge(criteria(), result, None)
    report = bench_report(result, verdicts)
    assert (report.command, report.suite, report.verdict, report.exit_code) == (
        "bench", URL, "failed", 1)
    (outcome,) = report.scenarios
    assert outcome.name == "bench" and outcome.result is result
    assert outcome.description == "20 connections at 50/s, echo, 10 message/s each"
    assert outcome.series.t == [1.0, 2.0, 3.0]
    assert outcome.series.columns == {"connections": [10, 20, 20],
                                      "messages_per_s": [0, 150, 200]}
    assert [c["status"] for c in result.details["criteria"]] == ["pass", "pass", "fail"]
    assert verdict_line(report) == (f"FAILED: wsctl bench {URL}, 2 of 3 criteria passed in "
                                    "3 s (1 failed)")


def test_write_all_gives_a_bench_every_report(tmp_path: Path):
    """report.json (a run report usable as --baseline), JUnit with one testcase per
    criterion, Markdown with the run table, and an HTML page with bench charts."""
    result = bench_result()
    report = bench_report(result, judge(criteria(), result, None))
    paths = write_all(report, tmp_path)
    obj = json.loads(paths[0].read_text(encoding="utf-8"))
    assert (obj["kind"], obj["command"], obj["verdict"]) == ("run-report", "bench", "failed")
    found = baseline_results(obj, "report.json")
    assert isinstance(found, dict) and found["bench"].metrics.counters["messages.sent"] == 300

    root = ET.parse(paths[1]).getroot()
    check_schema(root)
    assert root.get("name") == f"wsctl bench {URL}"
    cases = list(root.iter("testcase"))
    assert [c.get("name") for c in cases] == ["connect_time.p50 < 50ms", "errors.refused == 0",
                                              "rtt.p99 < 100us"]
    assert [c.find("failure") is not None for c in cases] == [False, False, True]

    text = paths[2].read_text(encoding="utf-8")
    assert text.startswith(f"## ❌ wsctl bench {escape(URL)}: FAILED")
    assert text == markdown(report)
    rows = table_rows(text)
    assert [r.split(" | ")[-1] for r in rows] == ["✅ PASS |", "✅ PASS |", "❌ FAIL |"]

    page = paths[3].read_text(encoding="utf-8")
    assert "wsctl bench" in page and '<span class="badge failed">FAILED</span>' in page
    charts = embedded(page, "wsctl-charts")
    assert isinstance(charts, dict)
    assert {"connect_time", "rtt"} <= set(charts["scenarios"][0]["distributions"])
    assert embedded(page, "wsctl-report") == obj


def test_inconclusive_bench_exits_4_and_reports_it(tmp_path: Path, monkeypatch,
                                                   capsys: pytest.CaptureFixture[str]):
    """When the judge says INCONCLUSIVE and nothing failed: every report says so, the
    console table shows it and the command exits 4 with one line naming the criteria."""
    import wsctl.bench.report
    from wsctl.cli.bench import _report

    real_judge = wsctl.bench.report.judge
    monkeypatch.setattr(wsctl.bench.report, "judge", lambda c, r, b: downgrade(
        real_judge(c, r, b), "the generator used 98% of a core"))
    console = Console(record=True, width=80, force_terminal=False, color_system=None)
    crit = criteria()[:2]
    with pytest.raises(typer.Exit) as exited:
        _report(bench_result(), crit, None, console, None,
                {"junit": tmp_path / "j.xml", "markdown": None, "html": None}, None)
    assert exited.value.exit_code == 4
    err = capsys.readouterr().err
    assert "1 of 2 criteria inconclusive: connect_time.p50" in err
    text = " ".join(console.export_text().split())  # lines unwrapped
    assert "INCONCLUSIVE connect_time.p50: the generator used 98% of a core" in text
    assert f"INCONCLUSIVE: wsctl bench {URL}, 1 of 2 criteria passed" in text
    skipped = ET.parse(tmp_path / "j.xml").getroot().find(".//skipped")
    assert skipped is not None
    assert skipped.get("message") == "inconclusive: the generator used 98% of a core"


def test_an_unwritable_report_path_is_refused_before_anything_starts(
        capsys: pytest.CaptureFixture[str]):
    """--html in a missing directory: exit 2 and one line, nothing was started."""
    with pytest.raises(SystemExit) as exited:
        run_app(app, ["bench", "ws://127.0.0.1:1/", "--html", "/nonexistent/dir/r.html"],
                prog_name="wsctl")
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["wsctl: error: --html /nonexistent/dir/r.html: directory /nonexistent/dir "
                   "does not exist"]


def test_bench_writes_junit_markdown_html_and_the_step_summary(tmp_path: Path):
    """A real 1 s bench with gates and every report option: each file is written, the
    step summary gets the Markdown, and the terminal shows wsctl run's criteria table."""
    summary = tmp_path / "step-summary.md"
    server = ServerProcess()
    try:
        done = bench_with_reports(server.url, tmp_path, summary)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "result.json").read_text())["kind"] == "bench"
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "0", "0")
    md = (tmp_path / "s.md").read_text(encoding="utf-8")
    assert "## ✅ wsctl bench" in md and md.count("✅ PASS |") == 2
    assert summary.read_text(encoding="utf-8").strip() == md.strip()
    assert "wsctl-report" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "junit.xml", "report.html", "report.json", "summary.md"]
    assert "bench — PASSED" in done.stdout
    assert "│ connections.opened" in done.stdout and "PASS" in done.stdout
    assert "PASSED: wsctl bench ws://" in done.stdout
    assert "…" not in done.stdout


def bench_with_reports(url: str, tmp_path: Path,
                       summary: Path) -> subprocess.CompletedProcess[str]:
    """``wsctl bench`` for 1 s with two gates and every report option."""
    return subprocess.run(
        [WSCTL, "bench", f"{url}/ws/reports-{{n}}", "-c", "5", "--connect-rate", "50",
         "--message-rate", "5", "--duration", "1s",
         "--criteria", "connections.opened: >= 5", "--criteria", "errors.refused: == 0",
         "--json", str(tmp_path / "result.json"), "--junit", str(tmp_path / "j.xml"),
         "--markdown", str(tmp_path / "s.md"), "--html", str(tmp_path / "r.html"),
         "--report-dir", str(tmp_path / "all")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "COLUMNS": "80"})


def test_unreachable_bench_writes_reports_saying_it_could_not_run(tmp_path: Path):
    """Nothing listening: exit 3, and the JUnit holds the one 'run' testcase in error."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [WSCTL, "bench", f"ws://127.0.0.1:{port}/", "-c", "3", "--connect-rate", "100",
         "--duration", "30s", "--criteria", "errors.refused: == 0", "--report-dir",
         str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "refused" in done.stderr
    case = ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase")
    assert case is not None and case.get("name") == "run"
    error = case.find("error")
    assert error is not None and "could not connect" in (error.get("message") or "")
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "error"
