"""Scenario files as pytest items: one item per scenario of a wsctl YAML file.

An item runs its scenario as ``wsctl run`` would (``ScenarioRun``; a scenario with
``rounds:`` runs with its baseline, as the ``Runner`` pairs them) and its verdict is the
outcome: PASSED passes; FAILED and ERROR (a criterion failed or could not be judged, or
the scenario could not run) fail with the criteria table as the failure text;
INCONCLUSIVE is a skip with the reason, or a failure with ``wsctl_inconclusive = fail``.
A later scenario of the same file compared with an earlier one (``baseline:``) is judged
against that one's result. A file that does not validate is a collection error naming
the file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wsctl.errors import InvalidInput
from wsctl.metrics import Result
from wsctl.probe import ioclock
from wsctl.results.outcome import ScenarioOutcome
from wsctl.scenario.model import Scenario, Suite, load_suite
from wsctl.scenario.runner import Runner, ScenarioRun
from wsctl.testing.result import outcome_text


class ScenarioFailed(AssertionError):
    """A scenario whose verdict is not a pass (its outcome renders the failure)."""

    def __init__(self, outcome: ScenarioOutcome) -> None:
        super().__init__(f"scenario {outcome.name}: {outcome.verdict}")
        self.outcome = outcome


class ScenarioFile(pytest.File):
    """A wsctl scenario file; its items are its scenarios, in file order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results: dict[str, Result] = {}  # scenarios of this file run so far

    def collect(self) -> Iterator[pytest.Item]:
        try:
            suite = load_suite(self.path)
        except InvalidInput as exc:
            raise self.CollectError(str(exc)) from None
        for scenario in suite.scenarios:
            yield ScenarioItem.from_parent(self, name=scenario.name, suite=suite,
                                           scenario=scenario)


class ScenarioItem(pytest.Item):
    """One scenario; run, judged, and reported by its verdict."""

    def __init__(self, *, suite: Suite, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.scenario = scenario
        self.add_marker("wsctl")

    @property
    def file(self) -> ScenarioFile:
        parent = self.parent
        assert isinstance(parent, ScenarioFile)
        return parent

    async def _run(self) -> ScenarioOutcome:
        scenario, file = self.scenario, str(self.path)
        if scenario.rounds is not None and scenario.baseline is not None:
            report = await Runner().run([self.suite], [scenario.baseline, scenario.name])
            return next(o for o in report.scenarios if o.name == scenario.name)
        baseline = self.file.results.get(scenario.baseline) if scenario.baseline else None
        return await ScenarioRun(scenario, file, baseline=baseline).execute()

    def runtest(self) -> None:
        outcome = ioclock.run(self._run())
        if outcome.result is not None and outcome.error is None:
            self.file.results[self.scenario.name] = outcome.result
        self.user_properties.append(("verdict", outcome.verdict))
        if outcome.verdict == "passed":
            return
        if outcome.verdict == "inconclusive" and \
                self.config.getini("wsctl_inconclusive").strip().lower() != "fail":
            reasons = sorted({f"{v.criterion.key}: {v.message}" for v in outcome.verdicts
                              if v.status == "inconclusive"})
            pytest.skip(f"INCONCLUSIVE — {'; '.join(reasons)}")
        raise ScenarioFailed(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return outcome_text(excinfo.value.outcome)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.scenario.line - 1, f"scenario: {self.name}"
