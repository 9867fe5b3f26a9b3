"""Console: criteria tables with the result word, and run progress for terminals and logs."""

import io

from rich.console import Console

from tests.wsctl.report.reports import could_not_run, failing, full_report, passing
from wsctl.report.console import RunProgress, print_report
from wsctl.results.outcome import RunReport


def recorded(width: int = 120) -> Console:
    return Console(record=True, width=width, force_terminal=False, color_system=None)


def test_print_report_has_a_row_with_the_word_per_criterion():
    """Each criterion's line names its metric and says PASS, FAIL or ERROR."""
    word = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}
    for outcome in full_report().scenarios:
        console = recorded()
        print_report(RunReport(suite="s", file="f.yaml", scenarios=[outcome]), console)
        lines = console.export_text().splitlines()
        for verdict in outcome.verdicts:
            key = verdict.criterion.key
            hits = [ln for ln in lines if f" {key} " in ln and "│" in ln]
            assert len(hits) == 1, (outcome.name, key, hits)
            assert word[verdict.status] in hits[0]
            others = set(word.values()) - {word[verdict.status]}
            assert not any(w in hits[0] for w in others)


def test_print_report_shows_figures_timeline_errors_and_verdict():
    """Threshold and measured as criteria prints them; the timeline; the final verdict line."""
    console = recorded()
    print_report(full_report(), console)
    text = console.export_text()
    assert "1.44 s" in text and "< 5 s" in text and "27.7 KiB" in text
    assert "timeline: 5.00 s server.kill (SIGKILL pid 4242)" in text
    assert "could not run: server would not start: port 8765 is taken" in text
    assert "ERROR detect_time.p99: detect_time.p99 has no samples" in text
    last = " ".join(text.split("timeline: 3.00 s cut")[-1].split())  # unwrapped
    assert last.endswith("ERROR: suite ep-0001, 2 of 4 scenarios and 4 of 7 criteria passed "
                         "in 61.5 s (2 failed, 1 not measured, 1 scenario could not run)")


def test_markup_in_names_is_printed_literally():
    """A scenario named like rich markup is shown as written, not interpreted."""
    report = full_report()
    report.scenarios[0].name = "[bold red]oops[/]"
    console = recorded()
    print_report(report, console)
    assert "[bold red]oops[/]" in console.export_text()


def test_plain_progress_prints_starts_actions_status_every_5s_and_ends():
    """live=False: a start line, an action line, one status line per 5 s, an end line."""
    console = recorded(width=200)
    with RunProgress(console, live=False) as progress:
        progress.start_scenario("server-restart", 1, 2, 12.0)
        for quarter in range(1, 49):  # 0.25 s … 12 s, four updates a second
            elapsed = quarter / 4
            progress.update(elapsed, {"open": 190, "backoff": 10, "gave_up": 0},
                            {"received": quarter * 10, "lost": 0})
            if elapsed == 5.0:
                progress.action("server.kill")
        progress.end_scenario(passing())
        progress.start_scenario("graceful-restart", 2, 2, 30.0)
        progress.end_scenario(could_not_run())
    lines = console.export_text().splitlines()
    assert lines[0] == "[1/2] server-restart: started (12 s)"
    status = [ln for ln in lines if "open=190" in ln]
    assert [ln.split()[1] for ln in status] == ["t=5.0s", "t=10.0s"]
    assert "gave_up=0" not in status[0]  # zero states are left out
    assert "received=200 lost=0" in status[0]
    assert "[1/2]   t=5.0s server.kill" in lines
    assert "[1/2] server-restart: PASSED, 3 of 3 criteria (20 s)" in lines
    assert lines[-1] == ("[2/2] graceful-restart: ERROR: could not run: server would not "
                         "start: port 8765 is taken (0 ms)")


def test_live_progress_draws_and_prints_finished_scenarios():
    """live=True on a terminal: the display shows scenario and counters; results persist."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with RunProgress(console, live=True) as progress:
        progress.start_scenario("server-restart", 1, 1, 20.0)
        progress.update(10.0, {"open": 200}, {"received": 1234})
        progress.action("server.kill")
        text = out.getvalue()
        assert "scenario 1/1" in text and "server-restart" in text
        assert "open=200" in text and "received=1234" in text
        assert "last action: t=10.0s server.kill" in text
        progress.end_scenario(failing())
    assert "[1/1] <script>alert(1)</script>: FAILED, 0 of 3 criteria (15 s)" in out.getvalue()


def test_tables_read_fully_at_80_columns(monkeypatch):
    """COLUMNS=80: no cell is cut with an ellipsis, no line is wider than 80, every metric,
    figure and result word is whole on its row, and each EP sentence reads in full."""
    from tests.wsctl.report.reports import inconclusive
    from wsctl.results.criteria import judge, parse

    monkeypatch.setenv("COLUMNS", "80")
    report = full_report()
    report.scenarios.append(inconclusive())
    outcome = report.scenarios[0]
    result = outcome.result
    assert result is not None
    outcome.verdicts += [
        judge(parse("connect_time.p50", "<= 0.8 * baseline",
                    "REQ-5.1.4: connection set-up at least 20% faster than before the "
                    "change, measured on the same machine"), result, result),
        judge(parse("server.rss_per_connection", "<= 0.85 * baseline",
                    "Memory per connection at least 15% lower"), result, result),
    ]
    console = Console(record=True, force_terminal=False, color_system=None)
    assert console.width == 80
    print_report(report, console)
    lines = console.export_text().splitlines()
    assert "…" not in "\n".join(lines)
    assert max(len(line) for line in lines) <= 80
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines
             if line.startswith("│")]
    words = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "inconclusive": "INCONCLUSIVE"}
    first_column = " ".join(c[0] for c in cells)
    verdicts = [v for s in report.scenarios for v in s.verdicts]
    rows = [c for c in cells if c[3]]  # a row's first line: the one with the result word
    assert [r[0] for r in rows] == [v.criterion.key for v in verdicts]
    for row, verdict in zip(rows, verdicts, strict=True):
        assert row[3] == words[verdict.status]
        assert row[1].startswith(verdict.criterion.op)
        if verdict.criterion.ep:
            assert verdict.criterion.ep in first_column, verdict.criterion.ep
    assert "<= 0.8 × baseline" in [c[1] for c in cells]  # the figure on its own line
    assert any(c[1].startswith("(") and c[1].endswith("KiB)") for c in cells)
