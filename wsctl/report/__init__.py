"""Reports of a ``wsctl run``, all made from one ``RunReport`` (DESIGN.md section 9).

    write_json      report.json   the run report object, strict JSON (a later --baseline)
    write_junit     junit.xml     one <testsuite> per scenario, one <testcase> per criterion
    write_markdown  summary.md    GitHub-flavoured; append_step_summary adds it to CI pages
    write_html      report.html   one self-contained page with charts; opens offline
    write_all       all four into one directory

``verdict_line`` is the one-line summary every report ends with. The console view and the
live progress display are in ``wsctl.report.console``. Every
writer raises ``InvalidInput("<path>: <reason>")`` when the file cannot be written.
docs/reports.md describes each report.
"""

from __future__ import annotations

from pathlib import Path

from wsctl.errors import InvalidInput
from wsctl.report._common import verdict_line, write_text
from wsctl.report.html import html_page, write_html
from wsctl.report.json_report import report_json, write_json
from wsctl.report.junit import junit_xml, write_junit
from wsctl.report.markdown import append_step_summary, markdown, write_markdown
from wsctl.results.outcome import RunReport

FILES = {"json": "report.json", "junit": "junit.xml", "markdown": "summary.md",
         "html": "report.html"}


def write_all(report: RunReport, directory: Path) -> list[Path]:
    """Create ``directory`` (and parents) and write every report into it; their paths."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"{directory}: {exc.strerror or exc}") from None
    paths = [directory / FILES[k] for k in ("json", "junit", "markdown", "html")]
    obj = report.to_dict()  # once: histogram summaries are the costly part
    write_text(paths[0], report_json(report, obj))
    write_junit(report, paths[1])
    write_markdown(report, paths[2])
    write_text(paths[3], html_page(report, obj))
    return paths


__all__ = [
    "FILES",
    "append_step_summary",
    "html_page",
    "junit_xml",
    "markdown",
    "report_json",
    "verdict_line",
    "write_all",
    "write_html",
    "write_json",
    "write_junit",
    "write_markdown",
]
