"""``report.json``: the run report object (``RunReport.to_dict()``) as strict JSON."""

from __future__ import annotations

import json
from pathlib import Path

from wsctl.report._common import finite, write_text
from wsctl.scenario.outcome import RunReport


def report_json(report: RunReport) -> str:
    """The report as indented JSON text; non-finite figures are written as null."""
    return json.dumps(finite(report.to_dict()), indent=2, ensure_ascii=False,
                      allow_nan=False) + "\n"


def write_json(report: RunReport, path: Path) -> None:
    """Write ``report_json(report)`` to ``path`` (InvalidInput when it cannot be written)."""
    write_text(path, report_json(report))
