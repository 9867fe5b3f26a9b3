"""What every report shows the same way: criterion rows, the timeline, the verdict line,
and writing a file with errors a person can act on. Pure functions except ``write_text``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsctl.errors import InvalidInput
from wsctl.results.criteria import Status, Verdict, describe_threshold, format_value
from wsctl.results.outcome import Outcome, RunReport, ScenarioOutcome

STATUS_WORD: dict[Status, str] = {"pass": "PASS", "fail": "FAIL", "error": "ERROR",
                                   "inconclusive": "INCONCLUSIVE"}
VERDICT_WORD: dict[Outcome, str] = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR",
                                    "inconclusive": "INCONCLUSIVE"}


@dataclass(frozen=True, slots=True)
class Row:
    """One criterion as every report prints it (figures from criteria.format_value)."""

    ep: str
    metric: str
    expect: str
    threshold: str
    measured: str
    status: Status
    message: str
    # A relative criterion judged on rounds: the ratio and its 95% interval, as text.
    ratio: str = ""
    interval: str = ""

    @property
    def word(self) -> str:
        return STATUS_WORD[self.status]


def row(verdict: Verdict) -> Row:
    """A verdict as reports print it. A verdict judged on an interval shows the ratio
    and its interval as the measured figure: ``0.912× (95% CI 0.851–0.977)``."""
    c = verdict.criterion
    measured = format_value(verdict.measured, c.unit)
    ratio = interval = ""
    if verdict.interval is not None:
        ratio, interval = ratio_texts(verdict.interval)
        measured = f"{ratio} (95% CI {interval})"
    return Row(
        ep=c.ep or "",
        metric=c.key,
        expect=c.expect,
        threshold=describe_threshold(verdict),
        measured=measured,
        status=verdict.status,
        message=verdict.message,
        ratio=ratio,
        interval=interval,
    )


def ratio_texts(interval: dict[str, Any]) -> tuple[str, str]:
    """``("0.912×", "0.851–0.977")`` from a verdict's ``interval`` (criteria.judge_rounds)."""
    def figure(key: str) -> str:
        value = interval.get(key)
        return f"{value:.3f}" if isinstance(value, int | float) else "?"

    return f"{figure('estimate')}×", f"{figure('low')}–{figure('high')}"


def rows(outcome: ScenarioOutcome) -> list[Row]:
    return [row(v) for v in outcome.verdicts]


def seconds(value: float) -> str:
    """A duration for people, the way criteria print them: ``850 ms``, ``30.2 s``."""
    return format_value(value, "s")


def timeline_items(outcome: ScenarioOutcome) -> list[str]:
    """Each action as it happened: ``5.01 s server.kill (pid 4242)``, failures marked."""
    out = []
    for entry in outcome.timeline:
        text = f"{entry.at:.2f} s {entry.do}"
        if entry.detail:
            text += f" ({entry.detail})"
        if entry.error:
            text += f" — failed: {entry.error}"
        out.append(text)
    return out


@dataclass(frozen=True, slots=True)
class Tally:
    """How many scenarios and criteria came out which way."""

    scenarios: int
    scenarios_passed: int
    criteria: int
    criteria_passed: int
    criteria_failed: int
    criteria_error: int
    scenarios_error: int
    criteria_inconclusive: int = 0


def tally(report: RunReport) -> Tally:
    verdicts = [v for s in report.scenarios for v in s.verdicts]
    return Tally(
        scenarios=len(report.scenarios),
        scenarios_passed=sum(s.verdict == "passed" for s in report.scenarios),
        criteria=len(verdicts),
        criteria_passed=sum(v.status == "pass" for v in verdicts),
        criteria_failed=sum(v.status == "fail" for v in verdicts),
        criteria_error=sum(v.status == "error" for v in verdicts),
        scenarios_error=sum(s.verdict == "error" for s in report.scenarios),
        criteria_inconclusive=sum(v.status == "inconclusive" for v in verdicts),
    )


def title(report: RunReport) -> str:
    """What ran: ``wsctl run ep-0001`` or ``wsctl bench ws://127.0.0.1:8765/ws/b-{n}``."""
    return f"wsctl {report.command} {report.suite}"


def verdict_line(report: RunReport) -> str:
    """``PASSED: suite ep-0001, 9 of 9 scenarios and 42 of 42 criteria passed in 151 s``;
    for a bench ``PASSED: wsctl bench ws://…, 2 of 2 criteria passed in 30 s``."""
    t = tally(report)
    if report.command == "run":
        what = (f"suite {report.suite}, {t.scenarios_passed} of {t.scenarios} scenarios "
                "and ")
    else:
        what = f"{title(report)}, "
    text = (f"{VERDICT_WORD[report.verdict]}: {what}{t.criteria_passed} of {t.criteria} "
            f"criteria passed in {seconds(report.duration)}")
    extra = []
    if t.criteria_failed:
        extra.append(f"{t.criteria_failed} failed")
    if t.criteria_error:
        extra.append(f"{t.criteria_error} not measured")
    if t.criteria_inconclusive:
        extra.append(f"{t.criteria_inconclusive} inconclusive")
    if t.scenarios_error and report.command == "bench":
        extra.append("it could not run")
    elif t.scenarios_error:
        extra.append(f"{t.scenarios_error} scenario{'s' if t.scenarios_error > 1 else ''} "
                     "could not run")
    return f"{text} ({', '.join(extra)})" if extra else text


def scenario_line(outcome: ScenarioOutcome) -> str:
    """``PASSED, 4 of 4 criteria`` / ``ERROR: could not run: …``."""
    if outcome.error is not None:
        return f"ERROR: could not run: {outcome.error}"
    passed = sum(v.passed for v in outcome.verdicts)
    return f"{VERDICT_WORD[outcome.verdict]}, {passed} of {len(outcome.verdicts)} criteria"


def finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None, so every report is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``; any OSError becomes InvalidInput naming it."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror or exc}") from None
