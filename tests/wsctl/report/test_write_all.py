"""write_all: one directory with every report."""

import json
import xml.etree.ElementTree as ET

import pytest

import wsctl.report
from tests.wsctl.report.reports import full_report
from wsctl.errors import InvalidInput
from wsctl.report import write_all


def test_write_all_creates_the_directory_and_four_reports(tmp_path):
    """DIR (with parents) gets report.json, junit.xml, summary.md and report.html."""
    target = tmp_path / "out" / "run-1"
    paths = write_all(full_report(), target)
    assert [p.name for p in paths] == ["report.json", "junit.xml", "summary.md", "report.html"]
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in paths)
    assert json.loads(paths[0].read_text(encoding="utf-8"))["kind"] == "run-report"
    ET.parse(paths[1])
    assert paths[2].read_text(encoding="utf-8").startswith("## ")
    assert "wsctl-report" in paths[3].read_text(encoding="utf-8")


def test_directory_that_is_a_file_is_invalid_input(tmp_path):
    """A report directory that cannot be created raises InvalidInput naming it."""
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    with pytest.raises(InvalidInput, match="taken"):
        write_all(full_report(), blocker / "reports")


def test_public_names_are_listed():
    """__all__ is the API the runner codes against."""
    for name in ("write_json", "write_junit", "write_markdown", "write_html", "write_all",
                 "append_step_summary", "markdown"):
        assert name in wsctl.report.__all__
        assert callable(getattr(wsctl.report, name))


def test_page_and_json_written_together_hold_the_same_report(tmp_path):
    """write_all builds the report object once: the page embeds exactly report.json."""
    from tests.wsctl.report.test_html import embedded

    paths = write_all(full_report(), tmp_path)
    page = paths[3].read_text(encoding="utf-8")
    assert embedded(page, "wsctl-report") == json.loads(paths[0].read_text(encoding="utf-8"))
    charts = embedded(page, "wsctl-charts")
    assert isinstance(charts, dict)
    summary = charts["scenarios"][0]["distributions"]["reconnect_time"]["summary"]
    assert summary["count"] == 200 and summary["p99"] is not None
