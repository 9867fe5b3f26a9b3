"""``wsctl run``'s engine: carry out validated scenarios against real processes.

Per scenario (``ScenarioRun``): open the stage — the embedded reference server as a
child process (or the scenario's ``url``) and the chaos proxy in front of it
(``stage.py``) — start the probe fleet, run the timeline on the scenario clock
(``timeline.py``), each action carried out by the action table (``actions.py``), watch
until ``duration`` (``monitor.py``: progress, the series, the server's steady state),
and assemble the records into a ``Result`` (kind ``run``, ``assemble.py``) that the
criteria judge. The stage is closed in a ``finally`` — on success, on errors and on
Ctrl-C — and every server process is reaped (``server_process.py``). Every instant
comes from one injected clock. A scenario whose ``store: redis`` needs a redis-server
this machine does not have is not started: its criteria are INCONCLUSIVE with the
reason (``skipped``).

Library use::

    report = await run_suite(load_suite("scenarios/ep-0001.yaml"))
    report.exit_code   # 0 passed, 1 a criterion failed, 3 a scenario could not run
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from wsctl.clock import Clock, MonotonicClock
from wsctl.errors import ActionFailed, InvalidInput, WsctlError
from wsctl.metrics import Result
from wsctl.metrics.instrument import Instrument
from wsctl.probe.sanity import measurement_problem
from wsctl.results.criteria import Verdict, judge_all, judge_instrumented
from wsctl.results.outcome import RunReport, ScenarioOutcome
from wsctl.results.rounds import combine, judge_pairs
from wsctl.runtime import quiet_gc
from wsctl.scenario.actions import perform
from wsctl.scenario.assemble import run_result, unreachable
from wsctl.scenario.model import Scenario, Suite
from wsctl.scenario.monitor import SAMPLE, Monitor, Progress
from wsctl.scenario.redis_server import missing as redis_missing
from wsctl.scenario.sampler import Sampler
from wsctl.scenario.stage import Stage
from wsctl.scenario.timeline import Action, Timeline

Baseline = dict[str, Result] | Result | None


# -- before anything runs ------------------------------------------------------------


def select(suites: Sequence[Suite], only: Iterable[str] | None = None
           ) -> list[tuple[Suite, Scenario]]:
    """The scenarios to run, in file order; ``only`` names some (unknown -> InvalidInput)."""
    every = [(suite, scenario) for suite in suites for scenario in suite.scenarios]
    if only is None:
        return every
    wanted = list(dict.fromkeys(only))
    names = {scenario.name for _, scenario in every}
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise InvalidInput(f"no scenario named {', '.join(map(repr, unknown))}; the files "
                           f"have: {', '.join(sorted(names)) or '(none)'}")
    return [(suite, scenario) for suite, scenario in every if scenario.name in wanted]


def check_baselines(selected: Sequence[tuple[Suite, Scenario]], baseline: Baseline) -> None:
    """A ``vs baseline`` criterion needs a baseline: an earlier scenario of the same run,
    or ``--baseline`` (one result for all, or a run report holding the named baseline
    scenario or, without one, the same scenario). Raises ``InvalidInput`` naming the
    first criterion without one."""
    chosen = {(suite.file, scenario.name) for suite, scenario in selected}
    for suite, scenario in selected:
        relative = [c for c in scenario.criteria if c.relative]
        if not relative:
            continue
        if scenario.baseline is not None:
            if (suite.file, scenario.baseline) in chosen:
                continue
            where = f"its baseline scenario {scenario.baseline!r} is not selected"
        else:
            where = "it names no baseline scenario"
        if isinstance(baseline, Result):
            continue
        if isinstance(baseline, dict) and (scenario.baseline or scenario.name) in baseline:
            continue
        hint = "" if baseline is None else " (the --baseline file has no result for it)"
        raise InvalidInput(
            f"{suite.file}:{scenario.line}: scenario {scenario.name}: criterion "
            f"{relative[0].key}: \"{relative[0].expect}\" compares with a baseline but "
            f"{where} and no --baseline FILE gives one{hint}")


# -- the run -------------------------------------------------------------------------


Key = tuple[str, str]  # (file, scenario name)


class Runner:
    """Runs scenarios one after another; ``interrupt()`` (Ctrl-C) ends the current one
    early, skips the rest, and still tears everything down.

    A scenario with ``rounds: N`` runs with its ``baseline:`` scenario in N interleaved
    pairs (baseline, candidate, baseline, candidate, ...): the baseline's own run is the
    first round's when it ran just before; the other rounds run at the candidate's place.
    While a relative verdict is inconclusive, more pairs run, up to ``rounds_max``. Both
    scenarios are then reported once, their rounds summed up (``wsctl.results.rounds``).
    ``make_run`` builds the run of one round (tests give a fake)."""

    def __init__(self, *, baseline: Baseline = None, progress: Progress | None = None,
                 clock: Clock | None = None, log_dir: Path | None = None,
                 make_run: Callable[..., ScenarioRun] | None = None) -> None:
        self.log_dir = log_dir  # where command servers' output goes (else scratch dirs)
        self.baseline = baseline
        self.progress = progress
        self.clock: Clock = clock or MonotonicClock()
        self.make_run: Callable[..., ScenarioRun] = make_run or ScenarioRun
        self.interrupted = False
        self.received_signal: int | None = None
        self._stop: asyncio.Event | None = None
        self._place = (0, 0)  # the running scenario's place in the run, for progress

    def interrupt(self, sig: int | None = None) -> None:
        """End the run early (``sig``: the signal that asked, for the exit status)."""
        self.interrupted = True
        self.received_signal = self.received_signal or sig
        if self._stop is not None:
            self._stop.set()

    async def run(self, suites: Sequence[Suite], only: Iterable[str] | None = None
                  ) -> RunReport:
        selected = select(suites, only)
        check_baselines(selected, self.baseline)
        self._stop = asyncio.Event()
        if self.interrupted:
            self._stop.set()
        report = RunReport(suite=", ".join(s.name for s in suites),
                           file=", ".join(s.file for s in suites))
        began = self.clock.now()
        results: dict[Key, Result] = {}
        runs: dict[Key, list[ScenarioOutcome]] = {}  # every run of each scenario so far
        places: dict[Key, int] = {}  # each scenario's index in report.scenarios
        scenarios = {(suite.file, scenario.name): scenario for suite, scenario in selected}
        previous: Key | None = None
        for index, (suite, scenario) in enumerate(selected):
            if self.interrupted:
                break
            self._place = (index + 1, len(selected))
            key = (suite.file, scenario.name)
            pair = (suite.file, scenario.baseline) if scenario.baseline else None
            if scenario.rounds is not None and pair is not None and pair in runs:
                base = scenarios[pair]
                outcome = await self._pairs(
                    suite.file, scenario, base, runs[pair],
                    reuse=previous == pair,
                    base_baseline=self._baseline_for(suite, base, results))
                if len(runs[pair]) > 1:
                    # The baseline's rounds summed up, in its own place in the report.
                    summed = combine(runs[pair])
                    report.scenarios[places[pair]] = summed
                    self._end(summed)
                    if summed.result is not None and summed.error is None:
                        results[pair] = summed.result
            else:
                following = selected[index + 1] if index + 1 < len(selected) else None
                label = scenario.name
                if following is not None and following[1].rounds is not None and \
                        (following[0].file, following[1].baseline) == key:
                    label += f" (round 1/{following[1].rounds})"  # the pair's first round
                outcome = await self._round(suite.file, scenario, label,
                                            self._baseline_for(suite, scenario, results))
                runs[key] = [outcome]
            places[key] = len(report.scenarios)
            report.scenarios.append(outcome)
            if outcome.result is not None and outcome.error is None:
                results[key] = outcome.result
            if outcome.rounds:
                self._end(outcome)
            previous = key
        report.duration = self.clock.now() - began
        return report

    async def _round(self, file: str, scenario: Scenario, label: str,
                     baseline: Result | None) -> ScenarioOutcome:
        """One run of ``scenario``, shown as ``label`` by the progress display."""
        index, total = self._place
        if self.progress is not None:
            self.progress.start_scenario(label, index, total, scenario.duration)
        run = self.make_run(scenario, file, baseline=baseline, progress=self.progress,
                            stop=self._stop, clock=self.clock, log_dir=self.log_dir)
        outcome = await run.execute()
        if self.progress is not None:
            self.progress.end_scenario(outcome if label == outcome.name
                                       else dataclasses.replace(outcome, name=label))
        return outcome

    def _end(self, outcome: ScenarioOutcome) -> None:
        """Show a scenario's rounds summed up: ``after (5 rounds): PASSED, …``."""
        if self.progress is not None:
            n = len(outcome.rounds)
            self.progress.end_scenario(dataclasses.replace(
                outcome, name=f"{outcome.name} ({n} round{'s' if n != 1 else ''})"))

    async def _pairs(self, file: str, scenario: Scenario, base: Scenario,
                     base_runs: list[ScenarioOutcome], *, reuse: bool,
                     base_baseline: Result | None) -> ScenarioOutcome:
        """``scenario`` and its baseline ``base`` in interleaved rounds; ``base_runs``
        (the baseline's runs so far) grows with each baseline round. Returns the
        candidate's rounds summed up, relative criteria judged on their interval."""
        assert scenario.rounds is not None
        wanted = scenario.rounds
        budget = max(wanted, scenario.rounds_max or wanted)
        last = base_runs[-1]
        bases = [last] if reuse and last.error is None and last.result is not None else []
        candidates: list[ScenarioOutcome] = []
        relative = {i: c for i, c in enumerate(scenario.criteria) if c.relative}
        judged: dict[int, Verdict] = {}
        while len(candidates) < budget and not self.interrupted:
            number = len(candidates) + 1
            of = f"{number}/{wanted}" if number <= wanted else f"{number}, up to {budget}"
            if len(bases) < number:
                round_base = await self._round(file, base, f"{base.name} (round {of})",
                                               base_baseline)
                base_runs.append(round_base)
                if round_base.error is not None or round_base.result is None:
                    break  # no figure to pair with: the baseline's error says why
                bases.append(round_base)
            candidate = await self._round(file, scenario, f"{scenario.name} (round {of})",
                                          bases[-1].result)
            candidates.append(candidate)
            if candidate.error is not None:
                break
            if number >= wanted and relative:
                judged = {i: judge_pairs(c, i, candidates, bases)
                          for i, c in relative.items()}
                if all(v.status != "inconclusive" for v in judged.values()):
                    break
            elif number >= wanted:
                break
        if not candidates:
            error = (f"its baseline {base.name!r} could not run: {base_runs[-1].error}"
                     if base_runs[-1].error else "interrupted before its first round")
            return ScenarioOutcome(scenario.name, scenario.description, file, None,
                                   error=error, rounds=[])
        if len(candidates) < wanted and not judged:
            # Fewer rounds than asked (a baseline round failed): judge what there is.
            judged = {i: judge_pairs(c, i, candidates, bases[:len(candidates)])
                      for i, c in relative.items()}
        return combine(candidates, judged)

    def _baseline_for(self, suite: Suite, scenario: Scenario,
                      results: dict[Key, Result]) -> Result | None:
        if scenario.baseline is not None and (suite.file, scenario.baseline) in results:
            return results[(suite.file, scenario.baseline)]
        if isinstance(self.baseline, Result):
            return self.baseline
        if isinstance(self.baseline, dict):
            # A scenario compared with an earlier one that is not running now takes that
            # one's result from the file; any other takes its own (a regression check).
            return self.baseline.get(scenario.baseline or scenario.name)
        return None


def skipped(outcome: ScenarioOutcome, scenario: Scenario, reason: str) -> ScenarioOutcome:
    """``outcome`` of a scenario that could not start for want of something on this
    machine: every criterion INCONCLUSIVE with ``reason`` (never a pass); with no
    criterion to carry it, an error (could not run)."""
    if not scenario.criteria:
        outcome.error = reason
    outcome.verdicts = [Verdict(criterion, "inconclusive", None, None, message=reason)
                        for criterion in scenario.criteria]
    return outcome


async def run_suite(suite: Suite, *, baseline: Baseline = None,
                    progress: Progress | None = None,
                    only: Iterable[str] | None = None) -> RunReport:
    """Run every scenario of ``suite`` (or those named in ``only``)."""
    return await Runner(baseline=baseline, progress=progress).run([suite], only)


async def run_scenario(scenario: Scenario, *, file: str = "", baseline: Result | None = None,
                       progress: Progress | None = None) -> ScenarioOutcome:
    """Run one scenario and judge it."""
    return await ScenarioRun(scenario, file, baseline=baseline, progress=progress).execute()


class ScenarioRun:
    """One scenario from start to teardown; ``execute()`` returns its outcome."""

    def __init__(self, scenario: Scenario, file: str, *, baseline: Result | None = None,
                 progress: Progress | None = None, stop: asyncio.Event | None = None,
                 clock: Clock | None = None, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.scenario = scenario
        self.file = file
        self.baseline = baseline
        self.progress = progress
        self.stop = stop or asyncio.Event()
        self.clock: Clock = clock or MonotonicClock()
        self.start = 0.0
        self.stage: Stage | None = None
        self.sampler: Sampler | None = None
        self.monitor: Monitor | None = None
        self.timeline: Timeline | None = None
        self._timeline_task: asyncio.Task[None] | None = None

    async def execute(self) -> ScenarioOutcome:
        scenario = self.scenario
        outcome = ScenarioOutcome(scenario.name, scenario.description, self.file, None)
        lacking = redis_missing() if scenario.server.own_redis else None
        if lacking is not None:
            return skipped(outcome, scenario, f"not run: {lacking}; store: redis starts a "
                           "redis-server for the run (or give store: redis://HOST:PORT/DB)")
        scratch = Path(tempfile.mkdtemp(prefix=f"wsctl-run-{scenario.name[:40]}-"))
        log = self.log_dir / f"{scenario.name}.service.log" if self.log_dir else None
        self.stage = stage = Stage(scenario, scratch, self.clock, service_log=log)
        try:
            try:
                # This process measures too (in-process probes, the chaos proxy): a full
                # collection of its heap mid-scenario (~50-100 ms) would stall the loop
                # that stamps their instants. Collected and frozen before, not during.
                with quiet_gc():
                    await self._run(stage)
            finally:
                await self._teardown(stage)
        except WsctlError as exc:
            outcome.error = str(exc)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if self.timeline is not None:
            outcome.timeline = list(self.timeline.entries)
            failed, action = self.timeline.failed, self.timeline.failed_action
            if failed is not None and action is not None and outcome.error is None:
                outcome.error = (f"{self.file}:{action.step.line}: {failed.do} at "
                                 f"{failed.at:.2f}s: {failed.error}")
        if stage.failures and outcome.error is None:
            outcome.error = f"the probes or timeline failed: {stage.failures[0]}"
        if self.sampler is not None:
            outcome.series = self.sampler.series()
        if stage.fleet is not None and self.sampler is not None and self.monitor is not None:
            end = self.monitor.ended if self.monitor.ended is not None else self.clock.now()
            outcome.result = run_result(scenario, stage, stage.fleet, self.sampler,
                                        self.monitor, start=self.start, end=end)
        if self.stop.is_set() and outcome.error is None:
            outcome.error = "interrupted before the end (Ctrl-C)"
        if outcome.error is None and outcome.result is not None:
            outcome.error = unreachable(outcome.result)
        if outcome.error is None and outcome.result is not None:
            # Figures that describe failures, not the service, are no measurement: most
            # frames unreadable, most connections failed or dropped without a fault.
            result = outcome.result
            probe = result.config.get("probe") if result.config else None
            faults = sum(1 for step in scenario.timeline if step.is_fault)
            details = {**result.details,
                       "faults": max(int(result.details.get("faults") or 0), faults)}
            problem = measurement_problem(dataclasses.replace(
                result, config=probe if isinstance(probe, dict) else {}, details=details))
            if problem is not None:
                outcome.error = f"the measurement is invalid: {problem}"
        if outcome.error is None and outcome.result is not None:
            # A timing verdict the measuring processes' own lag may have made is
            # INCONCLUSIVE, with what was saturated (wsctl.metrics.instrument).
            instrument = Instrument.from_json(outcome.result.details.get("instrument") or [])
            outcome.verdicts = judge_instrumented(
                judge_all(scenario.criteria, outcome.result, self.baseline), instrument)
        return outcome

    async def _run(self, stage: Stage) -> None:
        scenario, clock = self.scenario, self.clock
        await stage.open()
        self.start = clock.now()
        self.sampler = sampler = Sampler(self.start, SAMPLE)
        fleet = stage.start_probes(sampler.records)
        self.monitor = monitor = Monitor(
            fleet=fleet, sampler=sampler, server=stage.server, clock=clock,
            start=self.start, end=self.start + scenario.duration, progress=self.progress)
        self.timeline = timeline = Timeline(scenario.timeline, clock=clock, start=self.start,
                                            perform=self._perform, before=monitor.before)
        self._timeline_task = asyncio.create_task(timeline.run())
        await monitor.run(self.stop, failed=lambda: timeline.failed is not None)

    async def _perform(self, action: Action, instant: float) -> str:
        """The timeline's ``perform``: tell the probes about a fault, carry it out, show it."""
        stage, monitor = self.stage, self.monitor
        assert stage is not None and stage.fleet is not None and monitor is not None
        if action.is_fault:
            # Before the fault itself: probes may notice the loss while it is carried out.
            stage.fleet.inject_fault(at=instant)
        try:
            detail = await perform(stage, action.do, action.step)
        except ActionFailed as exc:
            if self.progress is not None:
                self.progress.action(f"{action.do} failed: {exc.message}")
            raise
        # The counters of the action's instant, not the end's.
        monitor.show(instant, action.do + (f": {detail}" if detail else ""))
        return detail

    async def _teardown(self, stage: Stage) -> None:
        """Stop the timeline (nothing more may happen), then close the stage."""
        task = self._timeline_task
        if task is not None:
            task.cancel()
        early = self.stop.is_set() or self.clock.now() < self.start + self.scenario.duration
        await stage.close(early=early, others=[task] if task is not None else [])
