"""Reports of a ``wsctl run`` or ``wsctl bench``, all made from one ``RunReport``
(``wsctl.results.outcome``; DESIGN.md section 9).

    write_json      report.json   the run report object, strict JSON (a later --baseline)
    write_junit     junit.xml     one <testsuite> per scenario, one <testcase> per criterion
    write_markdown  summary.md    GitHub-flavoured; append_step_summary adds it to CI pages
    write_html      report.html   one self-contained page with charts; opens offline
    write_all       all four into one directory
    check_outputs   refuse unwritable report paths before a run (InvalidInput)
    write_outputs   the reports a command was asked for, and $GITHUB_STEP_SUMMARY

``verdict_line`` is the one-line summary every report ends with. The console view and the
live progress display are in ``wsctl.report.console``. Every
writer raises ``InvalidInput("<path>: <reason>")`` when the file cannot be written.
docs/reports.md describes each report.
"""

from __future__ import annotations

from wsctl.report._common import verdict_line
from wsctl.report.html import html_page, write_html
from wsctl.report.json_report import json_text, report_json, write_json
from wsctl.report.junit import junit_xml, write_junit
from wsctl.report.markdown import append_step_summary, markdown, write_markdown
from wsctl.report.outputs import FILES, check_outputs, write_all, write_outputs

__all__ = [
    "FILES",
    "append_step_summary",
    "check_outputs",
    "html_page",
    "json_text",
    "junit_xml",
    "markdown",
    "report_json",
    "verdict_line",
    "write_all",
    "write_html",
    "write_json",
    "write_junit",
    "write_markdown",
    "write_outputs",
]
