"""Relative criteria on interleaved rounds: the Runner's order of runs, the verdicts it
comes to (PASS, FAIL, INCONCLUSIVE on the interval; absolute criteria on every round),
the budget of more rounds, and a real pair of short scenarios."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from wsctl.errors import InvalidInput
from wsctl.metrics import MetricSet, Result
from wsctl.metrics.instrument import Instrument
from wsctl.report import report_json
from wsctl.results.outcome import ScenarioOutcome
from wsctl.scenario.model import Scenario, loads
from wsctl.scenario.runner import Runner, run_suite

PAIR = """
name: pair
scenarios:
  - {{name: before, duration: 1s, server: {{profile: baseline}},
     criteria: {{probes.gave_up: "== 0"}}}}
{between}  - name: after
    duration: 1s
    baseline: before
    rounds: {rounds}
{extra}    criteria:
      connect_time.p50: "<= 0.8 * baseline"
      probes.gave_up: "== 0"
"""


def pair(rounds: int = 3, extra: str = "", between: str = ""):
    return loads(PAIR.format(rounds=rounds, extra=extra, between=between), "pair.yaml")


def result(p50: float, gave_up: int = 0, rss: float = 30_000.0) -> Result:
    metrics = MetricSet()
    for _ in range(20):
        metrics.histogram("connect_time").record(p50)
    metrics.add("probes.gave_up", gave_up)
    metrics.set_gauge("server.rss_per_connection", rss, "bytes")
    return Result("run", metrics, started_at=1000.0, duration=1.0)


Figures = Callable[[str, int], Result | str]


class FakeRuns:
    """Stands in for ScenarioRun: each run of scenario ``name`` (its ``n``-th, from 1)
    gets ``figures(name, n)`` — a Result, or a str for a run that could not happen — and
    is judged like a real run. ``calls`` keeps (name, n, the baseline it was given)."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures
        self.calls: list[tuple[str, int, Result | None]] = []
        self.made: list[Result] = []

    def __call__(self, scenario: Scenario, file: str, *, baseline: Result | None = None,
                 **_: object) -> FakeRuns.Run:
        n = 1 + sum(1 for name, _, _ in self.calls if name == scenario.name)
        self.calls.append((scenario.name, n, baseline))
        return FakeRuns.Run(self, scenario, file, n, baseline)

    class Run:
        def __init__(self, owner: FakeRuns, scenario: Scenario, file: str, n: int,
                     baseline: Result | None) -> None:
            self.owner, self.scenario, self.file = owner, scenario, file
            self.n, self.baseline = n, baseline

        async def execute(self) -> ScenarioOutcome:
            from wsctl.results.criteria import judge_all, judge_instrumented

            made = self.owner.figures(self.scenario.name, self.n)
            outcome = ScenarioOutcome(self.scenario.name, "", self.file, None)
            if isinstance(made, str):
                outcome.error = made
                return outcome
            self.owner.made.append(made)
            outcome.result = made
            instrument = Instrument.from_json(made.details.get("instrument") or [])
            outcome.verdicts = judge_instrumented(
                judge_all(self.scenario.criteria, made, self.baseline), instrument)
            return outcome


class Shown:
    """A progress display that keeps the names it was shown."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def start_scenario(self, name: str, index: int, total: int, duration: float) -> None:
        self.started.append(name)

    def update(self, *args: object) -> None:
        pass

    def action(self, text: str) -> None:
        pass

    def end_scenario(self, outcome: ScenarioOutcome) -> None:
        self.ended.append(f"{outcome.name}: {outcome.verdict}")


def steady(ratio_by_round: list[float], base: float = 0.010) -> Figures:
    """before's p50 is ``base`` in every round; after's is ``ratio x base``."""
    def figures(name: str, n: int) -> Result:
        return result(base if name == "before" else base * ratio_by_round[n - 1])
    return figures


async def run(suite, figures: Figures, **kwargs):
    runs, shown = FakeRuns(figures), Shown()
    runner = Runner(progress=shown, make_run=runs, **kwargs)  # type: ignore[arg-type]
    report = await runner.run([suite])
    return report, runs, shown


async def test_the_pair_runs_interleaved_each_candidate_with_its_rounds_baseline():
    """before, after, before, after, before, after: before's own run is round 1; each
    after round is compared with the before round just ahead of it; progress names
    every round; the report holds each scenario once with all its rounds."""
    report, runs, shown = await run(pair(3), steady([0.6, 0.61, 0.59]))
    assert [(name, n) for name, n, _ in runs.calls] == [
        ("before", 1), ("after", 1), ("before", 2), ("after", 2), ("before", 3),
        ("after", 3)]
    before_results = runs.made[0::2]
    assert [base for name, _, base in runs.calls if name == "after"] == before_results
    assert shown.started == ["before (round 1/3)", "after (round 1/3)",
                             "before (round 2/3)", "after (round 2/3)",
                             "before (round 3/3)", "after (round 3/3)"]
    assert shown.ended[-2:] == ["before (3 rounds): passed", "after (3 rounds): passed"]
    assert [s.name for s in report.scenarios] == ["before", "after"]
    assert [len(s.rounds) for s in report.scenarios] == [3, 3]


async def test_relative_criteria_pass_fail_and_inconclusive_on_the_interval():
    """<= 0.8 x baseline: ratios near 0.6 pass, near 1.0 fail, spread across 0.8 are
    inconclusive (exit 4); the verdict carries the interval and the per-round figures."""
    passed, _, _ = await run(pair(4), steady([0.60, 0.62, 0.59, 0.61]))
    failed, _, _ = await run(pair(4), steady([0.99, 1.01, 1.00, 1.02]))
    unsure, _, _ = await run(pair(4), steady([0.5, 1.1, 0.6, 1.0]))
    status = {name: report.scenarios[1].verdicts[0]
              for name, report in (("pass", passed), ("fail", failed), ("unsure", unsure))}
    assert status["pass"].status == "pass" and passed.exit_code == 0
    assert status["fail"].status == "fail" and failed.exit_code == 1
    assert status["unsure"].status == "inconclusive" and unsure.exit_code == 4
    interval = status["pass"].interval
    assert interval is not None and interval["rounds"] == 4
    assert interval["low"] < 0.61 < interval["high"] < 0.8
    assert interval["figures"]["candidate"] == pytest.approx([0.006, 0.0062, 0.0059,
                                                              0.0061], rel=0.01)
    assert "95% interval" in status["pass"].message
    assert "straddles" in status["unsure"].message


async def test_rounds_max_runs_more_pairs_while_inconclusive():
    """With rounds_max, an inconclusive interval gets more pairs until it is decided
    (here at round 5) and never more than the budget."""
    decided, runs, shown = await run(pair(3, extra="    rounds_max: 8\n"),
                                     steady([0.5, 0.95, 0.55, 0.6, 0.6, 0.6, 0.6, 0.6]))
    verdict = decided.scenarios[1].verdicts[0]
    rounds = [n for name, n, _ in runs.calls if name == "after"]
    assert verdict.status == "pass" and verdict.interval is not None
    assert rounds == list(range(1, verdict.interval["rounds"] + 1))
    assert 3 < len(rounds) < 8
    assert "after (round 4, up to 8)" in shown.started
    budget, runs, _ = await run(pair(2, extra="    rounds_max: 4\n"),
                                steady([0.4, 1.2, 0.5, 1.1]))
    assert budget.scenarios[1].verdicts[0].status == "inconclusive"
    assert [n for name, n, _ in runs.calls if name == "after"] == [1, 2, 3, 4]


def stalled(made: Result) -> Result:
    """``made`` as measured by a probe worker whose loop ran 25 ms late at p99."""
    made.details["instrument"] = [{"name": "probes worker 0", "cpu": 0.4,
                                   "loop_lag_p99": 0.025, "loop_lag_max": 0.06}]
    return made


async def test_a_pair_whose_baseline_round_was_saturated_is_left_out():
    """before's round 2 ran on a saturated instrument, its p50 three times too high: that
    pair's ratio (0.3) would make a miss look like a gain. It is left out, named in the
    message, and the three trustworthy pairs (0.9 each) FAIL the bound."""
    def figures(name: str, n: int) -> Result:
        if name == "before":
            return stalled(result(0.030)) if n == 2 else result(0.010)
        return result(0.009)

    report, _, _ = await run(pair(4), figures)
    verdict = report.scenarios[1].verdicts[0]
    assert verdict.status == "fail" and verdict.interval is not None
    assert verdict.interval["rounds"] == 3
    assert "round 2 left out" in verdict.message
    assert "its baseline round: the measuring side was saturated" in verdict.message


async def test_a_saturated_candidate_round_is_left_out_not_the_whole_verdict():
    """after's round 2 was saturated: its pair is left out and the other three decide
    (PASS at 0.6); with two rounds of which one was saturated, nothing is left to
    judge on: INCONCLUSIVE, saying why."""
    def figures(name: str, n: int) -> Result:
        if name == "before":
            return result(0.010)
        return stalled(result(0.006)) if n == 2 else result(0.006)

    report, _, _ = await run(pair(4), figures)
    verdict = report.scenarios[1].verdicts[0]
    assert verdict.status == "pass" and verdict.interval is not None
    assert verdict.interval["rounds"] == 3 and "round 2 left out" in verdict.message
    report, _, _ = await run(pair(2), figures)
    verdict = report.scenarios[1].verdicts[0]
    assert verdict.status == "inconclusive"
    assert verdict.message.startswith("fewer than two rounds to judge: round 2 left out")


async def test_absolute_criteria_take_the_worst_round_and_gauges_their_median():
    """probes.gave_up fails in round 2 only: the scenario fails, naming round 2 and
    every round's figure; the merged result merges histograms, sums counters and takes
    the median of each gauge."""
    def figures(name: str, n: int) -> Result:
        if name == "before":
            return result(0.010, rss=[60e3, 70e3, 65e3][n - 1])
        return result(0.006, gave_up=3 if n == 2 else 0, rss=[20e3, 40e3, 21e3][n - 1])

    report, _, _ = await run(pair(3), figures)
    after = report.scenarios[1]
    gave_up = after.verdicts[1]
    assert gave_up.status == "fail" and gave_up.measured == 3
    assert gave_up.message == "worst of 3 rounds: round 2 (each round: 0, 3, 0)"
    assert after.verdict == "failed" and report.exit_code == 1
    merged = after.result
    assert merged is not None
    assert merged.metrics.counters["probes.gave_up"] == 3
    assert merged.metrics.histograms["connect_time"].count == 60
    assert merged.value("server.rss_per_connection") == 21e3
    assert report.scenarios[0].result.value("server.rss_per_connection") == 65e3
    assert merged.duration == pytest.approx(3.0) and merged.details["rounds"] == 3


async def test_a_baseline_not_just_before_runs_all_its_rounds_at_the_candidates_place():
    """before, other, after: before's own run is not adjacent to after, so every pair
    runs at after's place; before is reported with all four of its runs."""
    other = "  - {name: other, duration: 1s}\n"
    report, runs, _ = await run(pair(2, between=other), steady([0.6, 0.6]))
    assert [(name, n) for name, n, _ in runs.calls] == [
        ("before", 1), ("other", 1), ("before", 2), ("after", 1), ("before", 3),
        ("after", 2)]
    assert [len(s.rounds) for s in report.scenarios] == [3, 0, 2]


async def test_a_stored_baseline_is_one_point_comparison_said_as_such():
    """-s after with --baseline: no rounds are possible; after runs once and its
    relative verdict is today's comparison, marked as a point comparison (exit 0/1)."""
    runs, shown = FakeRuns(steady([0.6])), Shown()
    runner = Runner(baseline={"before": result(0.010)}, progress=shown,
                    make_run=runs)  # type: ignore[arg-type]
    report = await runner.run([pair(3)], ["after"])
    assert [(name, n) for name, n, _ in runs.calls] == [("after", 1)]
    verdict = report.scenarios[0].verdicts[0]
    assert verdict.status == "pass" and verdict.interval is None
    assert verdict.message.startswith("point comparison: ratio 0.600 from one run")
    assert report.exit_code == 0 and not report.scenarios[0].rounds


async def test_a_baseline_round_that_cannot_run_stops_the_pairs():
    """before's round 2 fails: no after round is paired with it, before is an error
    (exit 3), after is judged on the rounds it has."""
    def figures(name: str, n: int) -> Result | str:
        if name == "before" and n == 2:
            return "server would not start"
        return result(0.010 if name == "before" else 0.006)

    report, runs, _ = await run(pair(3), figures)
    assert [(name, n) for name, n, _ in runs.calls] == [
        ("before", 1), ("after", 1), ("before", 2)]
    assert report.scenarios[0].error == "round 2: server would not start"
    assert report.scenarios[1].verdicts[0].status == "error"  # one pair: no interval
    assert report.exit_code == 3


async def test_the_json_report_has_every_round_and_the_interval():
    """report.json: the relative criterion's interval (estimate, bounds, method, per-round
    ratios and figures) and each scenario's rounds with their own criteria."""
    report, _, _ = await run(pair(3), steady([0.6, 0.62, 0.58]))
    obj = json.loads(report_json(report))
    after = obj["scenarios"][1]
    interval = after["criteria"][0]["interval"]
    assert interval["method"].startswith("t interval on paired log-ratios")
    assert interval["confidence"] == 0.95 and len(interval["ratios"]) == 3
    assert len(interval["figures"]["baseline"]) == 3
    assert [r["round"] for r in after["rounds"]] == [1, 2, 3]
    assert after["rounds"][0]["criteria"][0]["message"].startswith("point comparison")
    assert "rounds" not in obj["scenarios"][0]["rounds"][0]


@pytest.mark.timeout(90)
async def test_a_real_pair_runs_in_interleaved_rounds():
    """Real processes: the baseline and reference profiles in 2 interleaved rounds each;
    connect_time.p50 is judged on an interval over 2 rounds with a figure from each."""
    suite = loads("""
name: real
defaults:
  server: {ping_interval: 1s, ping_timeout: 1s, job_rate: 5}
  probes: {count: 5, stream: "pair-{n}"}
scenarios:
  - {name: before, duration: 1500ms, server: {profile: baseline}}
  - name: after
    duration: 1500ms
    baseline: before
    rounds: 2
    criteria: {connect_time.p50: "<= 100 * baseline", probes.gave_up: "== 0"}
""", "real.yaml")
    report = await run_suite(suite)
    before, after = report.scenarios
    assert before.error is None and after.error is None, (before.error, after.error)
    assert len(before.rounds) == len(after.rounds) == 2
    starts = [r.result.started_at for r in (before.rounds[0], after.rounds[0],
                                            before.rounds[1], after.rounds[1])]
    assert starts == sorted(starts)
    verdict = after.verdicts[0]
    if "left out" in verdict.message:  # a round's probe worker was saturated (busy host)
        assert verdict.status == "inconclusive", verdict.message
    else:
        assert verdict.interval is not None and verdict.interval["rounds"] == 2
        assert verdict.status in ("pass", "inconclusive"), verdict.message
    assert after.verdicts[1].message.startswith("worst of 2 rounds")


@pytest.mark.parametrize(("text", "message"), [
    ("  - {name: a, duration: 1s, rounds: 3}\n", "rounds: rounds run this scenario and "
     "its baseline in interleaved pairs: name the earlier scenario with baseline:"),
    ("  - {name: a, duration: 1s}\n  - {name: b, duration: 1s, baseline: a, rounds: 1}\n",
     "greater than or equal to 2"),
    ("  - {name: a, duration: 1s}\n  - {name: b, duration: 1s, baseline: a, rounds: 3, "
     "rounds_max: 2}\n", "rounds_max: 2 is fewer than rounds (3)"),
    ("  - {name: a, duration: 1s}\n  - {name: b, duration: 1s, baseline: a, "
     "rounds_max: 4}\n", "rounds_max is a budget for more rounds: give rounds: N"),
    ("  - {name: a, duration: 1s}\n  - {name: b, duration: 1s, baseline: a, rounds: 2}\n"
     "  - {name: c, duration: 1s, baseline: b, rounds: 2}\n",
     "its baseline 'b' runs in rounds itself"),
])
def test_rounds_are_checked_when_the_file_is_loaded(text, message):
    """rounds needs a baseline and at least 2; rounds_max needs rounds and is no fewer;
    a scenario with rounds cannot be the baseline of another with rounds."""
    with pytest.raises(InvalidInput) as info:
        loads("name: s\nscenarios:\n" + text, "s.yaml")
    assert message in str(info.value)
