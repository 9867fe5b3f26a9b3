"""report.html in a real browser: the charts draw offline, with no errors and no requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import screenshot
from tests.wsctl.report.reports import XSS_NAME, full_report
from wsctl.report import write_html


def open_report(page: Any, tmp_path: Path) -> tuple[list[str], list[str], list[str]]:
    """Write the fixture report, open it, and return console errors, requests and dialogs."""
    path = tmp_path / "report.html"
    write_html(full_report(), path)
    errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: requests.append(req.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-charts=drawn]")
    return errors, [r for r in requests if r != path.as_uri()], dialogs


def test_charts_render_offline_without_errors(page, tmp_path):
    """Every scenario gets its SVG charts; no console errors, no requests, no alert ran."""
    errors, requests, dialogs = open_report(page, tmp_path)
    scenarios = page.locator("section.scenario")
    charts = [scenarios.nth(i).locator("svg.plot").count() for i in range(4)]
    # distribution + connections + messages + memory; no memory column; could not run;
    # a distribution but no series
    assert charts == [4, 3, 0, 1]
    first = scenarios.nth(0)
    assert first.locator("svg.plot").first.locator("rect.bar").count() > 5
    connections = first.locator("svg.plot").nth(1)
    assert connections.locator("path.line").count() == 3  # open, attempts/s, lost/s
    assert connections.locator("line.mark").count() == 3  # one per timeline action
    labels = connections.locator("text.mark-label").all_text_contents()
    assert labels == ["server.kill", "server.start", "toxic"]
    assert "No time series was recorded" in scenarios.nth(3).inner_text()
    heading = scenarios.nth(1).locator("h2").inner_text()
    assert XSS_NAME in heading  # shown as text, never run
    screenshot(page, "report-html")
    assert errors == [] and requests == [] and dialogs == []


def test_distribution_switches_metric_and_marks_the_threshold(page, tmp_path):
    """The failing p99 criterion is drawn on the distribution; the select redraws it."""
    open_report(page, tmp_path)
    failed = page.locator("section.scenario").nth(1)
    chart = failed.locator("figure.chart").first
    assert chart.locator("line.limit.fail").count() == 1
    assert chart.locator("text.limit-label").text_content() == "criterion: p99 < 1 s"
    chart.locator("select").select_option("resume_time")
    assert chart.locator("svg.plot").get_attribute("aria-label") == "distribution of resume_time"
    assert chart.locator("rect.bar").count() > 5


def test_hover_shows_values_and_dark_scheme_changes_colours(page, tmp_path):
    """Moving over a time chart shows a tooltip; the dark scheme has a dark background."""
    open_report(page, tmp_path)
    chart = page.locator("section.scenario").nth(0).locator("svg.plot").nth(1)
    chart.locator("rect.overlay").hover(position={"x": 300, "y": 60})
    tip = chart.locator("g.tip")
    assert tip.get_attribute("visibility") == "visible"
    assert "connections open:" in tip.inner_html()
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    tick = page.evaluate("getComputedStyle(document.querySelector('svg.plot .tick')).fill")
    assert light == "rgb(255, 255, 255)" and dark == "rgb(13, 17, 23)"
    assert tick == "rgb(145, 152, 161)"  # muted light grey on the dark page
    screenshot(page, "report-html-dark")


def test_odd_data_still_draws_without_errors(page, tmp_path):
    """One sample, ragged or unknown columns, one repeated value, counts only: no errors."""
    from wsctl.metrics import MetricSet, Result
    from wsctl.results.criteria import judge_all, parse
    from wsctl.results.outcome import RunReport, ScenarioOutcome, Series

    metrics = MetricSet()
    for _ in range(5):
        metrics.histogram("reconnect_time").record(0.000_002)  # one value, tiny
        metrics.histogram("reconnect_attempts", "count").record(1)
    result = Result("run", metrics, duration=1.0)
    criteria = [parse("reconnect_attempts.p99", "<= 3"), parse("reconnect_time.p99", "< 1s")]
    ragged = Series(interval=0.5, t=[0.5, 1.0, 1.5],
                    columns={"connections": [1.0, 2.0], "custom_level": [3.0, 3.0, 3.0]})
    report = RunReport(suite="odd", file="odd.yaml", scenarios=[
        ScenarioOutcome("ragged", "", "odd.yaml", result, judge_all(criteria, result),
                        series=ragged),
        ScenarioOutcome("single", "", "odd.yaml", result,
                        series=Series(t=[1.0], columns={"messages": [0.0]})),
    ])
    path = tmp_path / "odd.html"
    write_html(report, path)
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-charts=drawn]")
    ragged_charts = page.locator("section.scenario").nth(0).locator("svg.plot")
    assert ragged_charts.count() == 3  # distribution, connections, custom_level
    single = page.locator("section.scenario").nth(1)
    assert single.locator("svg.plot circle").count() == 1  # one sample is a dot, not a line
    chart = page.locator("figure.chart").first
    chart.locator("select").select_option("reconnect_attempts")
    ticks = chart.locator("text.tick").all_text_contents()
    assert "1" in ticks and not any("." in t for t in ticks)  # whole attempts only
