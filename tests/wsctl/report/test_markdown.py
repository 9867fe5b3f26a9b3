"""summary.md and the GitHub step summary: one table row per criterion, words not only icons."""

import pytest

from tests.wsctl.report.reports import full_report, passing_report
from wsctl.errors import InvalidInput
from wsctl.report import append_step_summary, markdown, write_markdown
from wsctl.report.markdown import escape


def table_rows(text: str) -> list[str]:
    """Body rows of every criteria table (not the header or separator lines)."""
    return [line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith(("| EP criterion", "| ---"))]


def test_one_row_per_criterion_with_its_result_word():
    """Each verdict is one row naming its metric and saying PASS, FAIL or ERROR."""
    report = full_report()
    rows = table_rows(markdown(report))
    verdicts = [v for s in report.scenarios for v in s.verdicts]
    assert len(rows) == len(verdicts) == 7
    word = {"pass": "✅ PASS", "fail": "❌ FAIL", "error": "⚠️ ERROR"}
    for row, verdict in zip(rows, verdicts, strict=True):
        assert f"`{verdict.criterion.key}`" in row
        assert row.rstrip().endswith(word[verdict.status] + " |"), row


def test_rows_show_ep_sentence_threshold_and_measured_figure():
    """The same figures as criteria.format_value/describe_threshold print."""
    rows = table_rows(markdown(full_report()))
    assert rows[0] == ("| Reconnection within 5 seconds on average | `reconnect_time.mean` | "
                       "\\< 5 s | 1.44 s | ✅ PASS |")
    assert "| 27.7 KiB |" in rows[2]


def test_verdict_line_scenarios_and_errors_are_there():
    """A heading with the verdict, one heading per scenario, the could-not-run reason."""
    text = markdown(full_report())
    assert text.startswith("## ⚠️ wsctl run ep-0001: ERROR")
    assert "suite ep-0001, 2 of 4 scenarios and 4 of 7 criteria passed" in text
    assert text.count("\n### ") == 4
    assert "**could not run:** server would not start: port 8765 is taken" in text
    assert "**Timeline:** 5.00 s server.kill (SIGKILL pid 4242) · 7.01 s server.start" in text


def test_user_text_cannot_inject_markup():
    """A scenario named like HTML is shown literally, and a pipe cannot split a table cell."""
    text = markdown(full_report())
    assert "<script>" not in text
    assert "### ❌ \\<script\\>alert(1)\\</script\\> — FAILED" in text
    assert escape("a | b\nc") == "a \\| b c"


def test_write_markdown_writes_the_same_text(tmp_path):
    """summary.md holds markdown(report)."""
    path = tmp_path / "summary.md"
    write_markdown(passing_report(), path)
    assert path.read_text(encoding="utf-8") == markdown(passing_report())


def test_step_summary_is_appended_when_the_variable_is_set(tmp_path, monkeypatch):
    """$GITHUB_STEP_SUMMARY keeps what earlier steps wrote and gains the summary."""
    target = tmp_path / "step_summary.md"
    target.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert append_step_summary(passing_report()) is True
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")
    assert markdown(passing_report()) in text


def test_step_summary_is_not_written_when_unset(tmp_path, monkeypatch):
    """Without the variable nothing is written anywhere and the call says so."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert append_step_summary(passing_report()) is False
    assert list(tmp_path.iterdir()) == []


def test_unwritable_step_summary_is_invalid_input(tmp_path, monkeypatch):
    """A step summary path that cannot be opened is an error naming it, not a traceback."""
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "nowhere" / "summary.md"))
    with pytest.raises(InvalidInput, match="GITHUB_STEP_SUMMARY"):
        append_step_summary(passing_report())
