"""report.html: one self-contained page that embeds the report and escapes user text."""

import json
import re

import pytest

from tests.wsctl.report.reports import XSS_NAME, full_report, passing_report
from wsctl.errors import InvalidInput
from wsctl.report import html_page, report_json, write_html
from wsctl.report.html import MAX_BUCKETS, _coarsen


def embedded(page: str, block: str) -> object:
    match = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', page,
                      re.S)
    assert match is not None, block
    return json.loads(match.group(1))


def test_page_references_nothing_on_the_network(tmp_path):
    """No http(s) URL, protocol-relative src/href, @import or url(): it opens offline."""
    path = tmp_path / "report.html"
    write_html(full_report(), path)
    page = path.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(?i)\b(src|href)\s*=\s*["']?\s*//""", page)
    assert "@import" not in page and "url(" not in page
    assert "<link" not in page and " src=" not in page
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing


def test_page_embeds_the_report_json_unchanged():
    """The JSON block parses back to the same object report.json holds."""
    report = full_report()
    assert embedded(html_page(report), "wsctl-report") == json.loads(report_json(report))


def test_chart_data_has_the_reconnect_distribution_from_the_hdr_histogram():
    """Bucket counts add up to the histogram's count; thresholds of its criteria ride along."""
    report = full_report()
    charts = embedded(html_page(report), "wsctl-charts")
    assert isinstance(charts, dict)
    first = charts["scenarios"][0]["distributions"]
    assert list(first)[0] == "reconnect_time"
    rt = first["reconnect_time"]
    assert sum(n for _, _, n in rt["buckets"]) == rt["summary"]["count"] == 200
    assert "detect_time" not in first  # no samples: nothing to draw
    failed = charts["scenarios"][1]["distributions"]["reconnect_time"]
    assert failed["thresholds"] == [{"label": "p99 < 1 s", "value": 1.0, "status": "fail"}]
    assert charts["scenarios"][2]["distributions"] == {}  # could not run


def test_script_in_a_scenario_name_is_escaped_everywhere():
    """The name appears only as text: escaped in HTML, \\u003c-escaped in the JSON blocks."""
    page = html_page(full_report())
    assert XSS_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 3  # two JSON blocks and the drawing script
    assert page.count("</script>") == 3
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in page


def test_description_that_closes_a_script_cannot_escape_the_json_block():
    """'</script>' in user text stays inside the JSON and parses back as written."""
    report = passing_report()
    report.scenarios[0].description = "</script><script>alert(2)</script> & more"
    page = html_page(report)
    obj = embedded(page, "wsctl-report")
    assert isinstance(obj, dict)
    assert obj["scenarios"][0]["description"] == "</script><script>alert(2)</script> & more"
    assert "alert(2)</script>" not in page


def test_criteria_table_is_html_with_a_row_per_criterion():
    """Rows are colour-coded by status class and carry the word, readable without JS."""
    page = html_page(full_report())
    assert len(re.findall(r'<tr class="(pass|fail|error)">', page)) == 7
    assert page.count('<span class="status fail">✗ FAIL</span>') == 2
    assert page.count('<span class="status error">! ERROR</span>') == 1
    assert "could not run:" in page.lower()


def test_many_buckets_are_merged_without_losing_counts():
    """A wide distribution is coarsened to MAX_BUCKETS, counts and range kept."""
    buckets = [(float(i), float(i) + 0.5, 2) for i in range(1000)]
    merged = _coarsen(buckets)
    assert len(merged) <= MAX_BUCKETS
    assert sum(n for _, _, n in merged) == 2000
    assert merged[0][0] == 0.0 and merged[-1][1] == 999.5


def test_unwritable_html_path_is_invalid_input(tmp_path):
    """write_html into a missing directory raises InvalidInput, not OSError."""
    with pytest.raises(InvalidInput, match="report.html"):
        write_html(full_report(), tmp_path / "no" / "report.html")


def test_stylesheet_and_script_are_package_data_inlined_whole():
    """assets/report.css and assets/report.js are files of the package (read through
    importlib.resources), listed as package data, and the page inlines both unchanged."""
    import fnmatch
    import tomllib
    from importlib.resources import files
    from pathlib import Path

    assets = files("wsctl.report").joinpath("assets")
    css = assets.joinpath("report.css").read_text(encoding="utf-8")
    js = assets.joinpath("report.js").read_text(encoding="utf-8")
    assert ".badge.passed" in css and "wsctl-charts" in js
    page = html_page(passing_report())
    assert f"<style>{css}</style>" in page and f"<script>{js}</script>" in page
    root = Path(__file__).resolve().parents[3]
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-data"]["wsctl"]
    for name in ("report.css", "report.js"):
        assert any(fnmatch.fnmatch(f"report/assets/{name}", p) for p in patterns), patterns
