"""The run report: the one versioned object every report of a ``wsctl run`` or a
``wsctl bench`` is made from.

    {"schema_version": 1, "kind": "run-report", "command": "run", "tool": "wsctl 0.1.0",
     "suite": "ep-0001", "file": "scenarios/ep-0001.yaml",
     "started_at": 1764140000.2, "duration": 151.3, "verdict": "failed",
     "scenarios": [ScenarioOutcome.to_dict(), …]}

Each scenario carries its verdict, its criteria verdicts, the timeline as it happened,
time series sampled once a second, and its full ``Result`` (histograms included, so a
later run can use this file as ``--baseline``). A bench is one "scenario" with no
timeline. docs/reports.md documents every field.

Verdicts sum up worst first: ``error`` (a scenario could not run) > ``failed`` (a
criterion failed or could not be judged) > ``inconclusive`` > ``passed``; ``EXIT_CODES``
maps them to the exit status (DESIGN.md section 9).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from wsctl import __version__
from wsctl.errors import InvalidInput
from wsctl.metrics import Result
from wsctl.results.criteria import Verdict

REPORT_VERSION = 1
Outcome = Literal["passed", "failed", "error", "inconclusive"]
Command = Literal["run", "bench"]
# 2 (usage or invalid input) never reaches a report: nothing was started.
EXIT_CODES: dict[Outcome, int] = {"passed": 0, "failed": 1, "error": 3, "inconclusive": 4}


def worst(outcomes: set[Outcome]) -> Outcome:
    """The outcome that sums up several: error, then failed, then inconclusive."""
    order: tuple[Outcome, ...] = ("error", "failed", "inconclusive")
    return next((o for o in order if o in outcomes), "passed")


@dataclass(slots=True)
class TimelineEntry:
    """One action of the timeline as it happened: ``at`` is seconds since the scenario
    started (as carried out, not as planned), ``wall`` Unix time."""

    at: float
    wall: float
    do: str
    planned: float
    detail: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"at": round(self.at, 4), "wall": self.wall, "do": self.do,
                "planned": self.planned, "detail": self.detail, "error": self.error}


@dataclass(slots=True)
class Series:
    """Figures sampled every ``interval`` seconds since the scenario started; every list
    has one value per sample (``t``). Counts per interval, levels at the sample."""

    interval: float = 1.0
    t: list[float] = field(default_factory=list)
    columns: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "t": self.t, **self.columns}


@dataclass(slots=True)
class ScenarioOutcome:
    """One scenario's run. ``error`` says why it could not run (then no criteria)."""

    name: str
    description: str
    file: str
    result: Result | None
    verdicts: list[Verdict] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    series: Series = field(default_factory=Series)
    error: str | None = None
    # A scenario run in rounds (``rounds: N``): each round's own outcome, in order.
    rounds: list[ScenarioOutcome] = field(default_factory=list)

    @property
    def verdict(self) -> Outcome:
        """error (could not run), failed (a criterion failed or could not be judged),
        inconclusive (one could not be trusted, none failed), else passed."""
        if self.error is not None:
            return "error"
        statuses = {v.status for v in self.verdicts}
        if statuses & {"fail", "error"}:
            return "failed"
        return "inconclusive" if "inconclusive" in statuses else "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "file": self.file,
            "verdict": self.verdict,
            "error": self.error,
            "criteria": [v.to_json() for v in self.verdicts],
            "timeline": [e.to_dict() for e in self.timeline],
            "series": self.series.to_dict(),
            "result": self.result.to_dict() if self.result is not None else None,
            **({"rounds": [each.round_dict(number) for number, each
                           in enumerate(self.rounds, 1)]} if self.rounds else {}),
        }

    def round_dict(self, number: int) -> dict[str, Any]:
        """This outcome as round ``number`` of a scenario run in rounds: its verdict, its
        criteria and when it ran (the merged result and series are the scenario's)."""
        result = self.result
        return {"round": number, "verdict": self.verdict, "error": self.error,
                "started_at": result.started_at if result is not None else None,
                "duration": result.duration if result is not None else None,
                "criteria": [v.to_json() for v in self.verdicts]}


@dataclass(slots=True)
class RunReport:
    """Every scenario of one ``wsctl run`` (or the one bench of a ``wsctl bench``:
    ``command="bench"``); ``verdict`` and ``exit_code`` sum them up."""

    suite: str
    file: str
    scenarios: list[ScenarioOutcome] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    duration: float = 0.0
    tool: str = f"wsctl {__version__}"
    command: Command = "run"

    @property
    def verdict(self) -> Outcome:
        return worst({s.verdict for s in self.scenarios})

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 a criterion failed or could not be judged, 3 a scenario could
        not run, 4 a criterion was inconclusive and none failed."""
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_VERSION,
            "kind": "run-report",
            "command": self.command,
            "tool": self.tool,
            "suite": self.suite,
            "file": self.file,
            "started_at": self.started_at,
            "duration": self.duration,
            "verdict": self.verdict,
            "scenarios": [s.to_dict() for s in self.scenarios],
        }


def baseline_results(obj: Any, source: str) -> dict[str, Result] | Result:
    """Results a ``--baseline FILE`` holds: a run report gives each scenario's result by
    name; any other wsctl result (probe, bench, run) is one result for every scenario."""
    if isinstance(obj, dict) and obj.get("kind") == "run-report":
        if obj.get("schema_version") != REPORT_VERSION:
            raise InvalidInput(f"{source}: run report version {obj.get('schema_version')!r} "
                               f"is not {REPORT_VERSION}; rerun to make a new baseline")
        out: dict[str, Result] = {}
        for scenario in obj.get("scenarios") or []:
            if isinstance(scenario, dict) and scenario.get("result"):
                try:
                    out[scenario["name"]] = Result.from_dict(scenario["result"])
                except InvalidInput as exc:
                    raise InvalidInput(f"{source}: scenario {scenario.get('name')!r}: "
                                       f"{exc}") from None
        return out
    try:
        return Result.from_dict(obj)
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: not a wsctl result or run report: {exc}") from None
