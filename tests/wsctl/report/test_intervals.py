"""A relative criterion judged on rounds shows its ratio and 95% interval in every report,
not one number; the console keeps it readable at 80 columns."""

import json
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from tests.wsctl.report.reports import STARTED
from tests.wsctl.report.test_markdown import table_rows
from wsctl.metrics import MetricSet, Result
from wsctl.report import html_page, junit_xml, markdown, report_json
from wsctl.report.console import print_report
from wsctl.results.criteria import judge_rounds, parse
from wsctl.results.outcome import RunReport, ScenarioOutcome

CONNECT = parse("connect_time.p50", "<= 0.8 * baseline",
                "Connection establishment time improved by 20%")
MEMORY = parse("server.rss_per_connection", "<= 0.85 * baseline",
               "Memory usage for WebSocket connections reduced by 15%")


def result(p50: float, rss: float) -> Result:
    metrics = MetricSet()
    for _ in range(10):
        metrics.histogram("connect_time").record(p50)
    metrics.set_gauge("server.rss_per_connection", rss, "bytes")
    return Result("run", metrics, started_at=STARTED, duration=5.0)


def report() -> RunReport:
    """after over 4 rounds: connect time inconclusive (0.54-1.16 straddles 0.8),
    memory a clear pass (about 0.35x)."""
    base = [result(0.010, 60e3), result(0.011, 62e3), result(0.009, 59e3),
            result(0.010, 61e3)]
    cand = [result(0.005, 21e3), result(0.011, 22e3), result(0.007, 20e3),
            result(0.009, 21.5e3)]
    verdicts = [judge_rounds(CONNECT, cand, base), judge_rounds(MEMORY, cand, base)]
    outcome = ScenarioOutcome("after", "", "scenarios/ep-0001.yaml", cand[0],
                              verdicts=verdicts)
    return RunReport(suite="ep-0001", file="scenarios/ep-0001.yaml", scenarios=[outcome],
                     started_at=STARTED, duration=40.0)


def figures(which: int) -> tuple[str, str, str]:
    """The ratio and the interval's bounds of verdict ``which`` as reports print them."""
    interval = report().scenarios[0].verdicts[which].interval
    assert interval is not None
    return (f"{interval['estimate']:.3f}", f"{interval['low']:.3f}",
            f"{interval['high']:.3f}")


def test_the_synthetic_report_is_inconclusive_and_passing():
    """The fixture itself: one straddling interval, one clear pass."""
    connect, memory = report().scenarios[0].verdicts
    assert (connect.status, memory.status) == ("inconclusive", "pass")


def test_console_at_80_columns_shows_ratio_and_interval_in_the_row():
    """The measured cell holds the ratio and, under it, the interval; nothing is cut,
    no line is wider than 80; the note spells out the interval and the rounds."""
    console = Console(record=True, width=80, force_terminal=False, color_system=None)
    print_report(report(), console)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines
             if line.startswith("│")]
    for which, key in enumerate(("connect_time.p50", "server.rss_per_connection")):
        ratio, low, high = figures(which)
        first = [i for i, c in enumerate(cells) if c[0] == key][0]
        assert cells[first][2] == f"{ratio}×"
        assert cells[first + 1][2] == f"{low}–{high}"
        assert cells[first][1] == f"{'<= 0.8' if which == 0 else '<= 0.85'} × baseline"
    assert cells[0][3] == "INCONCLUSIVE"
    ratio, low, high = figures(0)
    note = " ".join(text.split())
    assert (f"INCONCLUSIVE connect_time.p50: ratio {ratio} (95% interval {low} to {high} "
            "over 4 interleaved rounds; bound <= 0.8") in note


def test_markdown_html_and_junit_show_the_interval():
    """Markdown and HTML: the measured cell is "ratio× (95% CI low–high)" and the note
    the full sentence; JUnit: the testcase's message carries the same figures."""
    ratio, low, high = figures(0)
    shown = f"{ratio}× (95% CI {low}–{high})"
    rows = [r for r in table_rows(markdown(report())) if "`connect_time.p50`" in r]
    assert len(rows) == 1 and f"| {shown} |" in rows[0]
    page = html_page(report())
    assert f'<td class="num">{shown}</td>' in page
    assert f"95% interval {low} to {high} over 4 interleaved rounds" in page
    root = ET.fromstring(junit_xml(report()))
    skipped = [case.find("skipped") for case in root.iter("testcase")
               if case.get("name", "").startswith("connect_time.p50")]
    assert skipped[0] is not None
    assert shown in (skipped[0].text or "")
    assert f"95% interval {low} to {high}" in skipped[0].get("message", "")


def test_json_carries_the_interval_beside_the_medians():
    """criteria[].interval: estimate, low, high, rounds, confidence, method, ratios and
    figures; measured and baseline are the medians of the rounds."""
    obj = json.loads(report_json(report()))
    criterion = obj["scenarios"][0]["criteria"][0]
    interval = criterion["interval"]
    assert set(interval) == {"estimate", "low", "high", "rounds", "confidence", "method",
                             "ratios", "figures"}
    assert interval["low"] < 0.8 < interval["high"] and interval["rounds"] == 4
    # HDR histograms keep 3 significant digits: medians of 8 ms and 10 ms.
    assert criterion["measured"] == pytest.approx(0.008, rel=1e-3)
    assert criterion["baseline"] == pytest.approx(0.010, rel=1e-3)
    assert criterion["threshold"] == pytest.approx(0.8 * criterion["baseline"])
