"""Report files: all four into one directory (``write_all``), and the ones a command was
asked for, checked before anything runs and written after.

``wsctl run`` and ``wsctl bench`` take the same options (``--json``, ``--junit``,
``--markdown``, ``--html``, ``--report-dir``) and ``$GITHUB_STEP_SUMMARY``; both call
``check_outputs`` before starting (an unwritable path is InvalidInput, exit 2, with nothing
started) and ``write_outputs`` with the finished report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from wsctl.errors import InvalidInput
from wsctl.report._common import write_text
from wsctl.report.html import html_page, write_html
from wsctl.report.json_report import report_json, write_json
from wsctl.report.junit import write_junit
from wsctl.report.markdown import STEP_SUMMARY, append_step_summary, write_markdown
from wsctl.results.outcome import RunReport

FILES = {"json": "report.json", "junit": "junit.xml", "markdown": "summary.md",
         "html": "report.html"}
WRITERS: dict[str, Callable[[RunReport, Path], None]] = {
    "json": write_json, "junit": write_junit, "markdown": write_markdown, "html": write_html,
}


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


def check_writable(path: Path, what: str) -> None:
    """Raise ``InvalidInput`` unless a file can be written at ``path``."""
    if path.is_dir():
        raise InvalidInput(f"{what} {path}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInput(f"{what} {path}: directory {parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidInput(f"{what} {path}: not writable")
    if not os.access(parent, os.W_OK):
        raise InvalidInput(f"{what} {path}: directory {parent} is not writable")


def check_writable_dir(path: Path, what: str) -> None:
    """A directory that exists and is writable, or can be created."""
    if path.exists():
        if not path.is_dir():
            raise InvalidInput(f"{what} {path}: not a directory")
        if not os.access(path, os.W_OK):
            raise InvalidInput(f"{what} {path}: not writable")
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise InvalidInput(f"{what} {path}: cannot be created ({ancestor} is not writable)")


def check_outputs(files: Mapping[str, Path | None], directory: Path | None) -> None:
    """Refuse, before anything runs, every path that could not take its report: ``files``
    by format (``json``, ``junit``, ``markdown``, ``html``; the option is ``--FORMAT``),
    ``directory`` (``--report-dir``) and ``$GITHUB_STEP_SUMMARY`` when set."""
    for fmt, path in files.items():
        if path is not None:
            check_writable(path, f"--{fmt}")
    if directory is not None:
        check_writable_dir(directory, "--report-dir")
    step_summary = os.environ.get(STEP_SUMMARY)
    if step_summary:  # appended to after the run: refuse a path that cannot take it now
        check_writable(Path(step_summary), f"${STEP_SUMMARY}")


def write_outputs(report: RunReport, files: Mapping[str, Path | None],
                  directory: Path | None) -> None:
    """Write each report asked for, every one into ``directory`` when given, and the
    Markdown summary to ``$GITHUB_STEP_SUMMARY`` when set."""
    for fmt, path in files.items():
        if path is not None:
            WRITERS[fmt](report, path)
    if directory is not None:
        write_all(report, directory)
    append_step_summary(report)
