"""``report.html``: one self-contained page a person opens offline, with charts.

The page embeds the run report exactly as ``report.json`` holds it
(``<script type="application/json" id="wsctl-report">``) and, beside it, what the charts
need that JSON readers don't (``id="wsctl-charts"``: each histogram's non-empty buckets,
decoded from HDR here). The criteria tables are plain HTML, readable without JavaScript;
inline vanilla JavaScript draws the SVG charts: the reconnect-time distribution, and
connections and message rate over time with every timeline action marked. No CDN, no
fonts, no requests: a Content-Security-Policy forbids the page to fetch anything. The
stylesheet and script are package data (``assets/report.css``, ``assets/report.js``),
read once and inlined.
"""

from __future__ import annotations

import functools
import html
import json
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from wsctl.metrics.catalog import lookup
from wsctl.report._common import (
    VERDICT_WORD,
    finite,
    rows,
    scenario_line,
    seconds,
    tally,
    timeline_items,
    title,
    verdict_line,
    write_text,
)
from wsctl.results.criteria import describe_threshold
from wsctl.results.outcome import RunReport, ScenarioOutcome

# Distributions worth a chart, first the one the EP's criteria are about.
DISTRIBUTIONS = ("reconnect_time", "resume_time", "detect_time", "outage_time",
                 "connect_time", "reconnect_attempts", "delivery_latency", "rtt")
Y_LABEL = {"reconnect_time": "recoveries", "resume_time": "recoveries",
           "outage_time": "recoveries", "reconnect_attempts": "recoveries",
           "detect_time": "losses detected", "connect_time": "connections"}
MAX_BUCKETS = 400  # more adjacent HDR buckets are merged: the page stays small
STATUS_ICON = {"pass": "✓", "fail": "✗", "error": "!", "inconclusive": "?"}
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:")


@functools.cache
def asset(name: str) -> str:
    """The text of ``assets/<name>`` (the page's stylesheet or script), shipped as package
    data. The script reads the page's two JSON blocks and draws SVG charts with the DOM API
    only: user text reaches the page through ``textContent`` and attributes, never markup."""
    return files("wsctl.report").joinpath("assets", name).read_text(encoding="utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def embed_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element: ``<``, ``>`` and ``&`` as \\u escapes
    (still the same JSON value), so no text can close the element."""
    text = json.dumps(finite(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _coarsen(buckets: list[tuple[float, float, int]]) -> list[list[float]]:
    """At most MAX_BUCKETS buckets: neighbours merged (low of the first, high of the last)."""
    if len(buckets) <= MAX_BUCKETS:
        return [[lo, hi, n] for lo, hi, n in buckets]
    group = -(-len(buckets) // MAX_BUCKETS)
    out = []
    for i in range(0, len(buckets), group):
        part = buckets[i:i + group]
        out.append([part[0][0], part[-1][1], sum(n for _, _, n in part)])
    return out


def _thresholds(outcome: ScenarioOutcome, name: str) -> list[dict[str, Any]]:
    """The criteria on statistics of histogram ``name``, to draw on its distribution."""
    out = []
    for verdict in outcome.verdicts:
        c = verdict.criterion
        if c.metric.name != name or c.stat in (None, "count") or verdict.threshold is None:
            continue
        out.append({"label": f"{c.stat} {describe_threshold(verdict)}",
                    "value": verdict.threshold, "status": verdict.status})
    return out


def chart_data(outcome: ScenarioOutcome,
               summaries: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the charts of one scenario need beyond the report: distributions by metric.
    ``summaries``: the result's metrics as ``to_dict`` gave them (saves recomputing)."""
    distributions: dict[str, Any] = {}
    summaries = summaries or {}
    if outcome.result is not None:
        histograms = outcome.result.metrics.histograms
        names = [n for n in DISTRIBUTIONS if n in histograms]
        names += sorted(n for n in histograms if n not in DISTRIBUTIONS)
        for name in names:
            hist = histograms[name]
            if not hist.count:
                continue
            info = lookup(name)
            distributions[name] = {
                "thresholds": _thresholds(outcome, name),
                "unit": hist.unit,
                "description": info.description if info else "",
                "y_label": Y_LABEL.get(name, "samples"),
                "summary": _summary(summaries.get(name)) or hist.summary(),
                "buckets": _coarsen(hist.buckets()),
            }
    return {"name": outcome.name, "distributions": distributions}


def _criteria_table(outcome: ScenarioOutcome) -> str:
    body = []
    for r in rows(outcome):
        note = f'<div class="note">{_e(r.message)}</div>' if r.message else ""
        body.append(
            f'<tr class="{r.status}"><td>{_e(r.ep) or "—"}{note}</td>'
            f"<td><code>{_e(r.metric)}</code></td><td>{_e(r.threshold)}</td>"
            f'<td class="num">{_e(r.measured)}</td>'
            f'<td class="result"><span class="status {r.status}">'
            f"{STATUS_ICON[r.status]} {r.word}</span></td></tr>")
    if not body:
        return ""
    return ('<table class="criteria"><thead><tr><th>EP criterion</th><th>metric</th>'
            '<th>threshold</th><th class="num">measured</th><th>result</th></tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _scenario(outcome: ScenarioOutcome, index: int) -> str:
    parts = [f'<section class="scenario" id="scenario-{index}">',
             f'<h2><span class="badge {outcome.verdict}">{VERDICT_WORD[outcome.verdict]}</span> '
             f"{_e(outcome.name)}</h2>"]
    if outcome.description:
        parts.append(f'<p class="description">{_e(outcome.description)}</p>')
    if outcome.error is not None:
        parts.append(f'<p class="run-error"><strong>Could not run:</strong> '
                     f"{_e(outcome.error)}</p>")
    parts.append(_criteria_table(outcome))
    items = timeline_items(outcome)
    if items:
        lis = "".join(f'<li class="{"failed" if e.error else ""}">{_e(text)}</li>'
                      for e, text in zip(outcome.timeline, items, strict=True))
        parts.append(f'<div class="timeline"><span>Timeline</span><ol>{lis}</ol></div>')
    parts.append(f'<div class="charts" data-scenario="{index}"><noscript>The charts need '
                 "JavaScript; the figures are in the table above and in the embedded JSON."
                 "</noscript></div>")
    parts.append(f'<p class="scenario-verdict">{_e(scenario_line(outcome))}</p></section>')
    return "\n".join(parts)


def _summary(metric: dict[str, Any] | None) -> dict[str, Any] | None:
    if not metric or metric.get("type") != "histogram":
        return None
    return {k: metric.get(k) for k in ("count", "mean", "min", "p50", "p90", "p99", "p99.9",
                                       "max")}


def html_page(report: RunReport, report_dict: dict[str, Any] | None = None) -> str:
    """The whole page as text; ``report_dict`` is ``report.to_dict()`` if already made."""
    obj = report_dict if report_dict is not None else report.to_dict()
    t = tally(report)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.started_at))
    nav = "".join(
        f'<li><a href="#scenario-{i}"><span class="dot {s.verdict}"></span>{_e(s.name)}</a></li>'
        for i, s in enumerate(report.scenarios))
    scenarios = "\n".join(_scenario(s, i) for i, s in enumerate(report.scenarios))
    scenario_count = (f"<div><dt>scenarios</dt><dd>{t.scenarios_passed} / {t.scenarios} "
                      "passed</dd></div>\n" if report.command == "run" else "")
    file = (f"<div><dt>file</dt><dd><code>{_e(report.file)}</code></dd></div>\n"
            if report.file else "")
    charts = {"scenarios": [
        chart_data(s, (d.get("result") or {}).get("metrics"))
        for s, d in zip(report.scenarios, obj["scenarios"], strict=True)]}
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{_e(title(report))}: {VERDICT_WORD[report.verdict]}</title>
<style>{asset("report.css")}</style>
</head>
<body>
<header>
<h1><span class="badge {report.verdict}">{VERDICT_WORD[report.verdict]}</span>
wsctl {_e(report.command)} <span class="suite">{_e(report.suite)}</span></h1>
<p class="verdict-line">{_e(verdict_line(report))}</p>
<dl class="facts">
{scenario_count}<div><dt>criteria</dt><dd>{t.criteria_passed} / {t.criteria} passed</dd></div>
<div><dt>started</dt><dd>{_e(started)}</dd></div>
<div><dt>took</dt><dd>{_e(seconds(report.duration))}</dd></div>
{file}<div><dt>tool</dt><dd>{_e(report.tool)}</dd></div>
</dl>
<nav><ol>{nav}</ol></nav>
</header>
<main>
{scenarios}
</main>
<footer>Made by {_e(report.tool)}. The run report is embedded in this page as JSON
(<code>script#wsctl-report</code>); the same object as <code>report.json</code>.</footer>
<script type="application/json" id="wsctl-report">{embed_json(obj)}</script>
<script type="application/json" id="wsctl-charts">{embed_json(charts)}</script>
<script>{asset("report.js")}</script>
</body>
</html>
"""


def write_html(report: RunReport, path: Path) -> None:
    """Write ``html_page(report)`` to ``path`` (InvalidInput when it cannot be written)."""
    write_text(path, html_page(report))
