"""``report.json``: the run report object (``RunReport.to_dict()``) as strict JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wsctl.report._common import finite, write_text
from wsctl.results.outcome import RunReport


def report_json(report: RunReport, report_dict: dict[str, Any] | None = None) -> str:
    """The report as indented JSON text; non-finite figures are written as null.
    ``report_dict`` is ``report.to_dict()`` if already made."""
    obj = report_dict if report_dict is not None else report.to_dict()
    return json.dumps(finite(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(report: RunReport, path: Path) -> None:
    """Write ``report_json(report)`` to ``path`` (InvalidInput when it cannot be written)."""
    write_text(path, report_json(report))
