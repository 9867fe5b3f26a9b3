"""``junit.xml``: one ``<testsuite>`` per scenario, one ``<testcase>`` per criterion.

CI systems (GitHub, GitLab, Jenkins) read this shape: ``<failure>`` for a criterion that
failed, ``<error>`` for one that could not be judged and for a scenario that could not
run (then a single testcase named ``run``), ``<skipped>`` for one that was inconclusive
(its message says why). Messages carry measured vs threshold.
"""

from __future__ import annotations

import re
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from wsctl.report._common import row, title, write_text
from wsctl.results.outcome import RunReport, ScenarioOutcome

# XML 1.0 cannot carry these even escaped; user text (names, messages) loses them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def _suite(parent: ET.Element, report: RunReport, outcome: ScenarioOutcome,
           index: int) -> tuple[int, int, int, int]:
    result = outcome.result
    duration = result.duration if result is not None else 0.0
    started = result.started_at if result is not None else report.started_at
    suite = ET.SubElement(parent, "testsuite", {
        "name": _clean(outcome.name), "tests": "0", "failures": "0", "errors": "0",
        "skipped": "0", "id": str(index), "package": _clean(report.suite),
        "timestamp": _iso(started), "hostname": _clean(socket.gethostname()) or "localhost",
        "time": f"{duration:.3f}",
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("file", outcome.file), ("description", outcome.description),
                        ("verdict", outcome.verdict)):
        ET.SubElement(props, "property", {"name": name, "value": _clean(value)})
    classname = _clean(f"{report.suite}.{outcome.name}")
    failures = errors = skipped = 0
    if outcome.error is not None:
        case = ET.SubElement(suite, "testcase",
                             {"classname": classname, "name": "run", "time": "0"})
        err = ET.SubElement(case, "error", {"message": _clean(outcome.error),
                                            "type": "RunFailed"})
        err.text = _clean(f"scenario {outcome.name!r} could not run: {outcome.error}")
        errors = 1
    for verdict in outcome.verdicts:
        r = row(verdict)
        case = ET.SubElement(suite, "testcase", {
            "classname": classname, "name": _clean(f"{r.metric} {r.expect}"), "time": "0"})
        figures = f"{r.metric} measured {r.measured}, threshold {r.threshold}"
        if r.status == "fail":
            failures += 1
            failure = ET.SubElement(case, "failure", {"message": _clean(figures),
                                                      "type": "CriterionFailed"})
            detail = f"{figures}: {r.message}" if r.message else figures
            failure.text = _clean(f"{detail}\nEP: {r.ep}" if r.ep else detail)
        elif r.status == "error":
            errors += 1
            message = r.message or "could not be judged"
            err = ET.SubElement(case, "error", {"message": _clean(message),
                                                "type": "NotMeasured"})
            err.text = _clean(f"{message}\n{figures}")
        elif r.status == "inconclusive":
            skipped += 1
            message = f"inconclusive: {r.message}" if r.message else "inconclusive"
            skip = ET.SubElement(case, "skipped", {"message": _clean(message)})
            skip.text = _clean(f"{message}\n{figures}")
        out = ET.SubElement(case, "system-out")
        out.text = _clean(f"EP: {r.ep}\n{figures}" if r.ep else figures)
    tests = len(outcome.verdicts) + (1 if outcome.error is not None else 0)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    if outcome.timeline:
        out = ET.SubElement(suite, "system-out")
        out.text = _clean("\n".join(
            f"{e.at:.2f}s {e.do}{' ' + e.detail if e.detail else ''}"
            f"{' FAILED: ' + e.error if e.error else ''}" for e in outcome.timeline))
    return tests, failures, errors, skipped


def junit_xml(report: RunReport) -> str:
    """The JUnit XML document for ``report`` (UTF-8 text with an XML declaration)."""
    root = ET.Element("testsuites", {"name": _clean(title(report)), "tests": "0",
                                     "failures": "0", "errors": "0", "skipped": "0"})
    totals = [0, 0, 0, 0]
    for index, outcome in enumerate(report.scenarios):
        counts = _suite(root, report, outcome, index)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    for name, total in zip(("tests", "failures", "errors", "skipped"), totals, strict=True):
        root.set(name, str(total))
    root.set("time", f"{report.duration:.3f}")
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def write_junit(report: RunReport, path: Path) -> None:
    """Write ``junit_xml(report)`` to ``path`` (InvalidInput when it cannot be written)."""
    write_text(path, junit_xml(report))
