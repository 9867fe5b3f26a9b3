"""Verdicts summed up: INCONCLUSIVE as the judge receives it, and the exit-code mapping."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsctl.results
from wsctl.metrics import MetricSet, Result
from wsctl.results.criteria import downgrade, is_timing, judge, judge_all, parse
from wsctl.results.outcome import EXIT_CODES, RunReport, ScenarioOutcome

REASON = "the generator used 98% of a core"


def _result() -> Result:
    m = MetricSet()
    for value in (0.2, 0.4, 0.6):
        m.histogram("reconnect_time").record(value)
    m.add("messages.lost", 0)
    return Result.from_dict(Result("run", m).to_dict())


def _outcome(*statuses: str, error: str | None = None) -> ScenarioOutcome:
    """A scenario whose verdicts have the given statuses (pass/fail/error/inconclusive)."""
    result = _result()
    make = {
        "pass": lambda: judge(parse("messages.lost", "== 0"), result),
        "fail": lambda: judge(parse("messages.lost", "> 0"), result),
        "error": lambda: judge(parse("detect_time.p99", "< 1s"), result),
        "inconclusive": lambda: judge(parse("reconnect_time.p99", "< 1s"), result,
                                      inconclusive=REASON),
    }
    verdicts = [make[s]() for s in statuses]
    assert [v.status for v in verdicts] == list(statuses)
    return ScenarioOutcome("s", "", "f.yaml", result, verdicts, error=error)


def test_judge_gives_inconclusive_with_the_reason_and_keeps_the_figures():
    """A pass and a fail both become INCONCLUSIVE with the reason; measured/threshold stay."""
    result = _result()
    for expect in ("< 1s", "< 100ms"):  # would pass, would fail
        verdict = judge(parse("reconnect_time.p99", expect), result, inconclusive=REASON)
        assert verdict.status == "inconclusive" and verdict.message == REASON
        assert not verdict.passed
        assert verdict.measured == pytest.approx(0.6, rel=0.01)
        assert verdict.threshold == parse("reconnect_time.p99", expect).value
        assert verdict.to_json()["status"] == "inconclusive"
        assert verdict.to_json()["message"] == REASON


def test_an_unjudgeable_criterion_stays_error_when_doubted():
    """Nothing measured is nothing to doubt: ERROR is never turned into INCONCLUSIVE."""
    verdict = judge(parse("detect_time.p99", "< 1s"), _result(), inconclusive=REASON)
    assert verdict.status == "error" and "not measured" in verdict.message
    assert verdict.as_inconclusive(REASON) is verdict


def test_downgrade_touches_only_timing_criteria_by_default():
    """The later pass makes pass/fail of duration criteria INCONCLUSIVE, counts untouched."""
    criteria = [parse("reconnect_time.p99", "< 1s"), parse("reconnect_time.count", ">= 1"),
                parse("messages.lost", "== 0"), parse("detect_time.p99", "< 1s")]
    assert [is_timing(c) for c in criteria] == [True, False, False, True]
    verdicts = downgrade(judge_all(criteria, _result()), REASON)
    assert [v.status for v in verdicts] == ["inconclusive", "pass", "pass", "error"]
    assert verdicts[0].message == REASON and verdicts[1].message == ""


def test_downgrade_takes_any_selection():
    """``which`` picks the criteria to doubt (a relative one whose interval straddles)."""
    criteria = [parse("reconnect_time.p99", "< 1s"), parse("messages.lost", "== 0")]
    verdicts = downgrade(judge_all(criteria, _result()), "interval straddles the bound",
                         which=lambda c: c.key == "messages.lost")
    assert [v.status for v in verdicts] == ["pass", "inconclusive"]


@pytest.mark.parametrize(("statuses", "error", "verdict"), [
    ((), None, "passed"),
    (("pass", "pass"), None, "passed"),
    (("pass", "inconclusive"), None, "inconclusive"),
    (("inconclusive", "fail"), None, "failed"),
    (("inconclusive", "error"), None, "failed"),
    (("pass",), "server would not start", "error"),
])
def test_scenario_verdict_is_the_worst_of_its_criteria(statuses, error, verdict):
    """failed beats inconclusive, which beats passed; could-not-run beats everything."""
    assert _outcome(*statuses, error=error).verdict == verdict


@pytest.mark.parametrize(("scenarios", "verdict", "code"), [
    ([("pass",), ("pass",)], "passed", 0),
    ([("pass",), ("fail",)], "failed", 1),
    ([("error",)], "failed", 1),
    ([("inconclusive",), ("pass",)], "inconclusive", 4),
    ([("inconclusive",), ("fail",)], "failed", 1),
    ([("inconclusive",), ("error",)], "failed", 1),
])
def test_run_exit_code_is_4_only_when_inconclusive_and_nothing_failed(scenarios, verdict,
                                                                         code):
    """0 passed, 1 failed or errored (even beside INCONCLUSIVE), 4 inconclusive alone."""
    report = RunReport("suite", "f.yaml", [_outcome(*s) for s in scenarios])
    assert report.verdict == verdict and report.exit_code == code
    assert report.to_dict()["verdict"] == verdict


def test_a_scenario_that_could_not_run_exits_3_whatever_else_happened():
    """3 (the run could not happen) wins over failed and inconclusive alike."""
    report = RunReport("suite", "f.yaml", [_outcome("fail"), _outcome("inconclusive"),
                                           _outcome(error="port taken")])
    assert (report.verdict, report.exit_code) == ("error", 3)
    assert EXIT_CODES == {"passed": 0, "failed": 1, "error": 3, "inconclusive": 4}


def test_results_imports_only_metrics_and_the_kernel():
    """The layer sits below scenario and bench: no import of either, nor of reports."""
    allowed = ("wsctl.metrics", "wsctl.errors", "wsctl.clock", "wsctl.units",
               "wsctl.protocol", "wsctl.backoff", "wsctl.results")
    package = Path(wsctl.results.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.module != "wsctl" else ["wsctl"]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name == "wsctl" or name.startswith("wsctl."):
                    assert name == "wsctl" or name.startswith(allowed), (path.name, name)
