"""``wsctl run``'s engine: carry out validated scenarios against real processes.

Per scenario: start the embedded reference server as a child process (or use the
scenario's ``url``), start an in-process chaos proxy in front of it when ``proxy: true``,
start the probe fleet, run the timeline on the scenario clock (``timeline.py``), sample
what happens every second (``sampler.py``), stop at ``duration``, and turn the records
into a ``Result`` (kind ``run``) that the criteria judge. Everything started is torn down
in a ``finally`` — on success, on errors and on Ctrl-C — and every server process is
reaped (``server_process.py``).

Library use::

    report = await run_suite(load_suite("scenarios/ep-0001.yaml"))
    report.exit_code   # 0 passed, 1 a criterion failed, 3 a scenario could not run
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from wsctl.backoff import SmallRandom
from wsctl.chaos.model import toxic_from_mapping
from wsctl.chaos.proxy import Chaos, Proxy
from wsctl.clock import Clock, MonotonicClock
from wsctl.errors import InvalidInput, WsctlError
from wsctl.metrics import Result
from wsctl.probe.driver import Probe, websockets_connector
from wsctl.probe.fleet import Fleet
from wsctl.probe.machine import ProbeMachine
from wsctl.results.criteria import judge_all
from wsctl.results.outcome import RunReport, ScenarioOutcome
from wsctl.scenario.model import Scenario, Suite
from wsctl.scenario.sampler import Sampler
from wsctl.scenario.server_process import ServerProcess
from wsctl.scenario.timeline import Action, ActionFailed, Timeline

log = logging.getLogger(__name__)

Baseline = dict[str, Result] | Result | None
TICK = 0.25  # progress updates and checks; the series is sampled every SAMPLE seconds
SAMPLE = 1.0
SETTLE = 2.0  # steady state: every probe open and nothing changed for this long
FRESH = 1.5  # a /metrics scrape younger than this is recent enough before a kill
STOP_GRACE = 5.0  # probes closing politely at the end before they are cancelled
COUNTERS_SHOWN = ("messages.received", "messages.lost", "connections.lost",
                  "probes.gave_up", "resyncs")


class Progress(Protocol):
    """What the runner tells a progress display (``wsctl.report.console.RunProgress``)."""

    def start_scenario(self, name: str, index: int, total: int, duration: float) -> None: ...
    def update(self, elapsed: float, states: dict[str, int],
               counters: dict[str, int]) -> None: ...
    def action(self, text: str) -> None: ...
    def end_scenario(self, outcome: ScenarioOutcome) -> None: ...


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


class Runner:
    """Runs scenarios one after another; ``interrupt()`` (Ctrl-C) ends the current one
    early, skips the rest, and still tears everything down."""

    def __init__(self, *, baseline: Baseline = None, progress: Progress | None = None,
                 clock: Clock | None = None) -> None:
        self.baseline = baseline
        self.progress = progress
        self.clock: Clock = clock or MonotonicClock()
        self.interrupted = False
        self.received_signal: int | None = None
        self._stop: asyncio.Event | None = None

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
        began = time.monotonic()
        results: dict[tuple[str, str], Result] = {}
        for index, (suite, scenario) in enumerate(selected):
            if self.interrupted:
                break
            base = self._baseline_for(suite, scenario, results)
            if self.progress is not None:
                self.progress.start_scenario(scenario.name, index + 1, len(selected),
                                             scenario.duration)
            run = ScenarioRun(scenario, suite.file, baseline=base, progress=self.progress,
                              stop=self._stop, clock=self.clock)
            outcome = await run.execute()
            report.scenarios.append(outcome)
            if outcome.result is not None and outcome.error is None:
                results[(suite.file, scenario.name)] = outcome.result
            if self.progress is not None:
                self.progress.end_scenario(outcome)
        report.duration = time.monotonic() - began
        return report

    def _baseline_for(self, suite: Suite, scenario: Scenario,
                      results: dict[tuple[str, str], Result]) -> Result | None:
        if scenario.baseline is not None and (suite.file, scenario.baseline) in results:
            return results[(suite.file, scenario.baseline)]
        if isinstance(self.baseline, Result):
            return self.baseline
        if isinstance(self.baseline, dict):
            # A scenario compared with an earlier one that is not running now takes that
            # one's result from the file; any other takes its own (a regression check).
            return self.baseline.get(scenario.baseline or scenario.name)
        return None


async def run_suite(suite: Suite, *, baseline: Baseline = None,
                    progress: Progress | None = None,
                    only: Iterable[str] | None = None) -> RunReport:
    """Run every scenario of ``suite`` (or those named in ``only``)."""
    return await Runner(baseline=baseline, progress=progress).run([suite], only)


async def run_scenario(scenario: Scenario, *, file: str = "", baseline: Result | None = None,
                       progress: Progress | None = None) -> ScenarioOutcome:
    """Run one scenario and judge it."""
    return await ScenarioRun(scenario, file, baseline=baseline, progress=progress).execute()


def _probe_url(url: str, address: str | None) -> str:
    """The base URL the probes use: the server's ``url``, or with the proxy's ``address``
    (host:port) in front of it."""
    if address is None:
        return url
    parts = urlsplit(url.replace("{stream}", "__stream__"))
    return urlunsplit(parts._replace(netloc=address)).replace("__stream__", "{stream}")


def _unreachable(result: Result) -> str | None:
    """Why the run could not happen when no probe ever got a connection, else None."""
    details = result.details
    if not details.get("probes") or details.get("never_opened") != details.get("probes"):
        return None
    errors = Counter(details.get("errors") or {})
    reason = errors.most_common(1)[0][0] if errors else "no connection could be opened"
    return f"could not connect to {result.target}: {reason}; no probe ever connected"


def _describe(exc: BaseException) -> str:
    """One line for an exception (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


@dataclasses.dataclass(slots=True)
class Steady:
    """The server at steady state: its RSS, and connections it held then."""

    at: float
    rss: int
    connections: float
    reached: bool


class ScenarioRun:
    """One scenario from start to teardown; ``execute()`` returns its outcome."""

    def __init__(self, scenario: Scenario, file: str, *, baseline: Result | None = None,
                 progress: Progress | None = None, stop: asyncio.Event | None = None,
                 clock: Clock | None = None) -> None:
        self.scenario = scenario
        self.file = file
        self.baseline = baseline
        self.progress = progress
        self.stop = stop or asyncio.Event()
        self.clock: Clock = clock or MonotonicClock()
        self.server: ServerProcess | None = None
        self.chaos: Chaos | None = None
        self.proxy: Proxy | None = None
        self.fleet: Fleet | None = None
        self.sampler: Sampler | None = None
        self.timeline: Timeline | None = None
        self.start = 0.0
        self.target = scenario.server.url or ""
        self.rss_before: int | None = None
        self.steady: Steady | None = None
        self.faulted = False
        self.added = 0
        self.open_at_end = 0
        self.ended: float | None = None  # when the scenario's time was up (or it stopped)
        self._fleet_task: asyncio.Task[Result] | None = None
        self._timeline_task: asyncio.Task[None] | None = None
        self._probe_tasks: list[asyncio.Task[None]] = []  # probes added by probes.add
        self.failures: list[str] = []  # what broke inside (a probe task that raised)

    async def execute(self) -> ScenarioOutcome:
        scenario = self.scenario
        outcome = ScenarioOutcome(scenario.name, scenario.description, self.file, None)
        scratch = Path(tempfile.mkdtemp(prefix=f"wsctl-run-{scenario.name[:40]}-"))
        try:
            try:
                await self._run(scratch)
            finally:
                await self._teardown()
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
        if self.failures and outcome.error is None:
            outcome.error = f"the probes or timeline failed: {self.failures[0]}"
        if self.sampler is not None:
            outcome.series = self.sampler.series()
        if self.fleet is not None and self.sampler is not None:
            outcome.result = self._result()
        if self.stop.is_set() and outcome.error is None:
            outcome.error = "interrupted before the end (Ctrl-C)"
        if outcome.error is None and outcome.result is not None:
            outcome.error = _unreachable(outcome.result)
        if outcome.error is None and outcome.result is not None:
            outcome.verdicts = judge_all(scenario.criteria, outcome.result, self.baseline)
        return outcome

    # -- set-up and the run ------------------------------------------------------------

    async def _run(self, scratch: Path) -> None:
        scenario = self.scenario
        clock = self.clock
        upstream = None
        if scenario.server.embedded:
            self.server = ServerProcess(scenario.server.profile, scenario.server.args(),
                                        scratch)
            await self.server.start()
            self.rss_before = self.server.rss()
            self.target = self.server.url
            upstream = f"127.0.0.1:{self.server.port}"
        else:
            assert scenario.server.url is not None
            parts = urlsplit(scenario.server.url.replace("{stream}", "x"))
            default = 443 if parts.scheme == "wss" else 80
            upstream = f"{parts.hostname}:{parts.port or default}"
        address = None
        if scenario.proxy:
            self.chaos = Chaos()
            try:
                self.proxy = await self.chaos.create(
                    name=scenario.name, listen="127.0.0.1:0", upstream=upstream)
            except WsctlError as exc:
                raise InvalidInput(f"chaos proxy: {exc.message}") from None
            address = self.proxy.listen
        base = _probe_url(self.target, address)
        config = scenario.probes.probe_config(base, scenario.duration)
        self.start = clock.now()
        self.sampler = sampler = Sampler(self.start, SAMPLE)
        connector = websockets_connector(deflate=scenario.probes.deflate)
        self.fleet = fleet = Fleet(config, scenario.probes.count, seed=scenario.seed,
                                   clock=clock, sink=sampler.records, connector=connector,
                                   spawn_rate=scenario.probes.spawn_rate, tune_gc=False)
        self._fleet_task = asyncio.create_task(fleet.run())
        self.timeline = timeline = Timeline(scenario.timeline, clock=clock, start=self.start,
                                            perform=self._perform, before=self._before)
        self._timeline_task = asyncio.create_task(timeline.run())
        await self._watch()

    async def _watch(self) -> None:
        """Until ``duration``: progress ~4x/s, a series row and a steady check every 1 s."""
        clock, sampler, fleet = self.clock, self.sampler, self.fleet
        assert sampler is not None and fleet is not None and self.timeline is not None
        end = self.start + self.scenario.duration
        next_sample = self.start + SAMPLE
        stop_wait = asyncio.ensure_future(self.stop.wait())
        try:
            while True:
                now = clock.now()
                if now >= end or self.stop.is_set() or self.timeline.failed is not None:
                    break
                self.open_at_end = sampler.open
                if now >= next_sample:
                    next_sample += SAMPLE
                    rss = self.server.rss() if self.server is not None else None
                    sampler.sample(now, fleet.metrics.counters["messages.received"],
                                   None if self.server is None else float(rss or 0))
                    if (self.server is not None and not self.faulted
                            and sampler.steady(now, self.probe_count, SETTLE)):
                        await self._sample_steady(reached=True)
                    elif self.server is not None:
                        await self.server.scrape(timeout=0.5)  # keeps counters current
                if self.progress is not None:
                    counters = fleet.metrics.counters
                    self.progress.update(now - self.start, fleet.states(),
                                         {k: counters.get(k, 0) for k in COUNTERS_SHOWN})
                delay = min(TICK, next_sample - now, end - now)
                await asyncio.wait([stop_wait], timeout=max(0.0, delay))
        finally:
            stop_wait.cancel()
        self.ended = clock.now()
        if self.server is not None and self.steady is None and not self.faulted:
            await self._sample_steady(reached=False)
        if self.server is not None:
            await self.server.scrape()
        if clock.now() - self.start - (sampler.series().t or [0.0])[-1] > 0.2:
            # The last, partial interval; its level is the one before the probes stopped.
            rss = self.server.rss() if self.server is not None else None
            sampler.sample(clock.now(), fleet.metrics.counters["messages.received"],
                           None if self.server is None else float(rss or 0),
                           connections=self.open_at_end)

    @property
    def probe_count(self) -> int:
        return self.scenario.probes.count + self.added

    async def _sample_steady(self, *, reached: bool) -> None:
        """Note the server's RSS and connections now (the last one before a fault counts).

        Connections are the server's own count when settled; just before a fault (not
        settled) they are the probes' count, so that no scrape delays the fault."""
        assert self.server is not None and self.sampler is not None
        rss = self.server.rss()
        if rss is None or self.sampler.open == 0:
            return
        scrape = await self.server.scrape() if reached else None
        connections = scrape.connections if scrape is not None and scrape.connections \
            else float(self.sampler.open)
        self.steady = Steady(self.clock.now() - self.start, rss, connections, reached)

    # -- actions -----------------------------------------------------------------------

    async def _before(self, action: Action) -> None:
        if self.server is None:
            return
        if action.is_fault and not self.faulted:
            if self.steady is None or not self.steady.reached:
                await self._sample_steady(reached=False)
            self.faulted = True
        if action.do in ("server.kill", "server.term", "server.restart") and \
                time.monotonic() - self.server.last_scrape_at > FRESH:
            # The last figures of this incarnation; the 1 s scrapes usually have them, and
            # a scrape of a busy server could make the fault late.
            await self.server.scrape(timeout=0.5)

    async def _perform(self, action: Action, instant: float) -> str:
        if action.is_fault and self.fleet is not None:
            # Before the fault itself: probes may notice the loss while it is carried out.
            self.fleet.inject_fault(at=instant)
        try:
            detail = await self._carry_out(action)
        except (WsctlError, ActionFailed) as exc:
            message = str(exc)
            if self.progress is not None:
                self.progress.action(f"{action.do} failed: {message}")
            raise ActionFailed(message) from None
        if self.progress is not None and self.fleet is not None:
            counters = self.fleet.metrics.counters  # the action's instant, not the end's
            self.progress.update(instant - self.start, self.fleet.states(),
                                 {k: counters.get(k, 0) for k in COUNTERS_SHOWN})
            self.progress.action(action.do + (f": {detail}" if detail else ""))
        return detail

    async def _carry_out(self, action: Action) -> str:
        do = action.do
        step = action.step
        if do.startswith("server."):
            return await self._server_action(do)
        if do == "probes.add":
            return self._add_probes(getattr(step, "count", None) or 0)
        proxy = self.proxy
        if proxy is None:
            raise ActionFailed(f"{do} needs the chaos proxy (proxy: true)")
        if do == "toxic":
            toxic = toxic_from_mapping(getattr(step, "toxic", None) or {})
            if toxic.name in proxy.toxics:
                raise ActionFailed(f"a toxic named {toxic.name!r} is still active; give "
                                   "this one another name: toxic: {name: ..., ...}")
            proxy.add_toxic(toxic)
            attributes = ", ".join(f"{k}={v}" for k, v in
                                   dataclasses.asdict(toxic.config).items())
            return f"{toxic.name}: {toxic.type} {toxic.stream}" + \
                (f" ({attributes})" if attributes else "")
        if do == "toxic.remove":
            name = toxic_from_mapping(getattr(step, "toxic", None) or {}).name
            await proxy.remove_toxic(name)
            return f"{name} removed"
        if do == "proxy.down":
            if not proxy.enabled:
                raise ActionFailed("the proxy is already down")
            held = len(proxy.connections)
            await proxy.stop()
            return f"{proxy.listen} stopped listening; {held} connections closed"
        if do == "proxy.up":
            if proxy.enabled:
                raise ActionFailed("the proxy is already up")
            await proxy.start()
            return f"listening on {proxy.listen}"
        if do in ("cut", "cut.end"):
            connections = list(proxy.connections.values())
            for conn in connections:
                conn.reset()
            return f"{len(connections)} connections reset (RST)"
        raise ActionFailed(f"unknown action {do!r}")

    async def _server_action(self, do: str) -> str:
        server = self.server
        if server is None:
            raise ActionFailed(f"{do} needs the embedded server (wsctl does not own a url "
                               "server's process)")
        pid = server.pid()
        if do == "server.kill":
            await server.kill()
            return f"SIGKILL to pid {pid}"
        if do == "server.term":
            await server.term()
            return f"SIGTERM to pid {pid}"
        if do == "server.pause":
            await server.pause()
            return f"SIGSTOP to pid {pid}"
        if do == "server.resume":
            await server.resume()
            return f"SIGCONT to pid {pid}"
        if do == "server.start":
            took = await server.start()
        elif do == "server.restart":
            took = await server.restart()
        else:
            raise ActionFailed(f"unknown action {do!r}")
        tries = f", {server.start_attempts} tries: port busy" if server.start_attempts > 1 else ""
        return f"pid {server.pid()} listening on {server.url} after {took:.2f}s{tries}"

    def _add_probes(self, count: int) -> str:
        """A storm: ``count`` more probes at once, in the same fleet and metrics."""
        fleet = self.fleet
        assert fleet is not None
        clock = self.clock
        stop_at = self.start + self.scenario.duration
        first = self.scenario.probes.count + self.added
        for index in range(first, first + count):
            machine = ProbeMachine(index, fleet.config, fleet.metrics,
                                   SmallRandom(fleet.seed * 1_000_003 + index), clock.now(),
                                   keep_records=True)
            machine.stop_at = stop_at
            probe = Probe(machine, fleet.connector, clock=clock, sink=fleet.sink)
            fleet.probes.append(probe)
            self._probe_tasks.append(asyncio.create_task(probe.run()))
        self.added += count
        return f"{count} probes added at once ({self.probe_count} in all)"

    # -- the end -------------------------------------------------------------------------

    async def _teardown(self) -> None:
        """Stop probes, proxy and server whatever happened; never raises."""
        if self._timeline_task is not None:  # nothing more may happen
            self._timeline_task.cancel()
        fleet = self.fleet
        probes: list[asyncio.Task[Any]] = [*self._probe_tasks]
        if self._fleet_task is not None:
            probes.append(self._fleet_task)
        if fleet is not None:
            if self.stop.is_set() or self.clock.now() < self.start + self.scenario.duration:
                fleet.stop()  # early end; otherwise they are stopping at their duration
            if probes:
                _, pending = await asyncio.wait(probes, timeout=STOP_GRACE)
                if pending:
                    fleet.stop()
                    _, pending = await asyncio.wait(pending, timeout=STOP_GRACE)
                for task in pending:
                    task.cancel()
        every = [*probes, *([self._timeline_task] if self._timeline_task else [])]
        if every:
            results = await asyncio.gather(*every, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and \
                        not isinstance(result, asyncio.CancelledError):
                    log.error("scenario task failed", exc_info=result)
                    self.failures.append(_describe(result))
        if self.chaos is not None:
            with contextlib.suppress(Exception):
                await self.chaos.close()
        if self.server is not None:
            self.server.close()

    def _result(self) -> Result:
        fleet, sampler = self.fleet, self.sampler
        assert fleet is not None and sampler is not None
        scenario = self.scenario
        metrics = fleet.metrics
        metrics.set_gauge("reconnect.peak_attempts_per_s", sampler.peak_attempts_per_s,
                          "per_s")
        metrics.set_gauge("probes.open", self.open_at_end, "count")
        for code, n in sorted(sampler.closes.items()):
            metrics.counters[f"closes.{code}"] = n
        details: dict[str, Any] = {
            "probes": len(fleet.probes),
            "added": self.added,
            "states": fleet.states(),
            "never_opened": sum(1 for p in fleet.probes if not p.machine.ever_opened),
            "errors": fleet.errors(),
            "loop_lag": fleet.loop_lag.summary(),
        }
        server = self.server
        if server is not None:
            totals = server.totals()
            metrics.add("server.refused", int(totals.refused))
            metrics.add("server.dead_detected", int(totals.dead_detected))
            steady = self.steady
            if steady is not None and self.rss_before is not None:
                metrics.set_gauge("server.rss", steady.rss, "bytes")
                metrics.set_gauge("server.connections", steady.connections, "count")
                if steady.connections > 0:
                    metrics.set_gauge("server.rss_per_connection",
                                      (steady.rss - self.rss_before) / steady.connections,
                                      "bytes")
                details["steady_state"] = {
                    "at": round(steady.at, 3), "reached": steady.reached,
                    "rss_before": self.rss_before, "rss": steady.rss,
                    "connections": steady.connections,
                }
            details["server"] = {"profile": scenario.server.profile, "url": server.url,
                                 "incarnations": server.incarnations}
        config: dict[str, Any] = {
            "scenario": scenario.name,
            "server": scenario.server.url or f"embedded ({scenario.server.profile})",
            "server_args": scenario.server.args(),
            "proxy": scenario.proxy,
            "count": scenario.probes.count,
            "seed": fleet.seed,
            "probe": dataclasses.asdict(fleet.config),
        }
        # The scenario's time, even when every probe finished early (all gave up).
        end = self.ended if self.ended is not None else self.clock.now()
        return Result(kind="run", metrics=metrics, started_at=fleet.started_at,
                      duration=max(0.0, end - self.start), target=self.target or None,
                      config=config, details=details)
