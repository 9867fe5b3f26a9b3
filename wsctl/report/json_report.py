"""``report.json``: the run report object (``RunReport.to_dict()``) as strict JSON;
``json_text`` writes any wsctl object (a bench's ``--json`` result) the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wsctl.report._common import finite, write_text
from wsctl.results.outcome import RunReport


def json_text(obj: Any) -> str:
    """``obj`` as indented, strict JSON text (non-finite figures as null), one newline."""
    return json.dumps(finite(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def report_json(report: RunReport, report_dict: dict[str, Any] | None = None) -> str:
    """The report as indented JSON text; non-finite figures are written as null.
    ``report_dict`` is ``report.to_dict()`` if already made."""
    return json_text(report_dict if report_dict is not None else report.to_dict())


def write_json(report: RunReport, path: Path) -> None:
    """Write ``report_json(report)`` to ``path`` (InvalidInput when it cannot be written)."""
    write_text(path, report_json(report))
