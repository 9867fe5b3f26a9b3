"""The report options ``wsctl run`` and ``wsctl bench`` share: the same names, help and
``WSCTL_<COMMAND>_<NAME>`` variables, so a report is asked for the same way in both."""

from __future__ import annotations

from typing import Any

import typer

HELP = {
    "junit": "Write JUnit XML here: one testcase per criterion.",
    "markdown": "Write the Markdown summary here.",
    "html": "Write one self-contained HTML page with charts here (opens offline).",
    "report-dir": "Write all four reports into this directory (report.json, junit.xml, "
                  "summary.md, report.html); created if missing.",
}


def report_option(name: str, command: str) -> Any:
    """``--NAME`` of ``wsctl COMMAND`` (``junit``, ``markdown``, ``html``, ``report-dir``)."""
    env = f"WSCTL_{command.upper()}_{name.upper().replace('-', '_')}"
    return typer.Option(f"--{name}", help=HELP[name], envvar=env, show_default=False)
