"""INCONCLUSIVE in every report: the word, the reason, and how CI tools are told."""

import json
import re
import xml.etree.ElementTree as ET

from rich.console import Console

from tests.wsctl.report.reports import SATURATED, inconclusive_report
from tests.wsctl.report.test_html import embedded
from tests.wsctl.report.test_junit import check_schema
from tests.wsctl.report.test_markdown import table_rows
from wsctl.report import html_page, junit_xml, markdown, report_json, verdict_line
from wsctl.report.console import print_report

DOUBTED = ("reconnect_time.p99", "connect_time.p50")  # the two timing criteria


def test_verdict_line_counts_inconclusive_criteria():
    """The run is INCONCLUSIVE, not PASSED, and the line says how many were."""
    line = verdict_line(inconclusive_report())
    assert line.startswith("INCONCLUSIVE: suite ep-0001, 1 of 2 scenarios and 4 of 6 "
                           "criteria passed")
    assert line.endswith("(2 inconclusive)")


def test_console_says_inconclusive_and_why():
    """Each doubted row says INCONCLUSIVE; the reason is printed under the table."""
    console = Console(record=True, width=120, force_terminal=False, color_system=None)
    print_report(inconclusive_report(), console)
    text = console.export_text()
    lines = text.splitlines()
    for key in DOUBTED:
        row = [ln for ln in lines if f" {key} " in ln and "│" in ln]
        assert len(row) == 1 and "INCONCLUSIVE" in row[0] and "PASS" not in row[0], row
        assert f"INCONCLUSIVE {key}: {SATURATED}" in text
    assert "reconnect-storm — INCONCLUSIVE" in text
    assert lines[-1].startswith("INCONCLUSIVE: suite ep-0001")


def test_json_has_the_status_the_reason_and_the_verdict():
    """criteria[].status is "inconclusive" with the reason as message; verdicts sum up."""
    obj = json.loads(report_json(inconclusive_report()))
    assert obj["verdict"] == "inconclusive"
    storm = obj["scenarios"][1]
    assert storm["verdict"] == "inconclusive"
    by_key = {c["metric"]: c for c in storm["criteria"]}
    for key in DOUBTED:
        assert by_key[key]["status"] == "inconclusive"
        assert by_key[key]["message"] == SATURATED
        assert by_key[key]["measured"] is not None
    assert by_key["messages.lost"]["status"] == "pass"


def test_junit_marks_inconclusive_as_skipped_with_the_reason():
    """<skipped message="inconclusive: REASON"> per doubted criterion, counted as skipped,
    never as a failure or an error."""
    root = ET.fromstring(junit_xml(inconclusive_report()))
    check_schema(root)
    storm = [s for s in root if s.get("name") == "reconnect-storm"][0]
    assert (storm.get("tests"), storm.get("failures"), storm.get("errors"),
            storm.get("skipped")) == ("3", "0", "0", "2")
    assert (root.get("tests"), root.get("failures"), root.get("errors"),
            root.get("skipped")) == ("6", "0", "0", "2")
    for case in storm.iter("testcase"):
        skipped = case.find("skipped")
        if case.get("name", "").split()[0] in DOUBTED:
            assert skipped is not None
            assert skipped.get("message") == f"inconclusive: {SATURATED}"
            assert case.find("failure") is None and case.find("error") is None
        else:
            assert skipped is None


def test_markdown_rows_and_notes_say_inconclusive():
    """The row ends with ❔ INCONCLUSIVE, a note gives the reason, the heading the verdict."""
    text = markdown(inconclusive_report())
    assert text.startswith("## ❔ wsctl run ep-0001: INCONCLUSIVE")
    assert "### ❔ reconnect-storm — INCONCLUSIVE" in text
    rows = [r for r in table_rows(text) if any(f"`{k}`" in r for k in DOUBTED)]
    assert len(rows) == 2
    assert all(r.rstrip().endswith("❔ INCONCLUSIVE |") for r in rows)
    for key in DOUBTED:
        assert f"- ❔ `{key}`: the probes' event loop ran 630 ms late (p99); use " \
               "probes.processes" in text


def test_html_marks_rows_badges_and_dots_inconclusive():
    """Rows carry class "inconclusive" and "? INCONCLUSIVE"; badge and nav dot too; the
    stylesheet colours each of them; the embedded JSON keeps the reason."""
    page = html_page(inconclusive_report())
    assert len(re.findall(r'<tr class="inconclusive">', page)) == 2
    assert page.count('<span class="status inconclusive">? INCONCLUSIVE</span>') == 2
    assert '<span class="badge inconclusive">INCONCLUSIVE</span>' in page
    assert '<span class="dot inconclusive"></span>reconnect-storm' in page
    assert SATURATED.replace("'", "&#x27;") in page  # the note under the EP sentence
    for selector in (".badge.inconclusive", ".dot.inconclusive", "tr.inconclusive",
                     ".status.inconclusive", ".limit.inconclusive"):
        assert selector in page, selector
    report = embedded(page, "wsctl-report")
    assert isinstance(report, dict) and report["verdict"] == "inconclusive"
