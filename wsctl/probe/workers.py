"""A probe fleet split over K worker processes, seen by its caller as one fleet.

``WorkerFleet`` has the surface the scenario runner, the ``wsctl probe`` views and the
metrics endpoint use of a ``Fleet`` (``run``, ``add``, ``inject_fault``, ``stop``,
``states``, ``errors``, ``metrics``, ``result``), with the probes in
``python -m wsctl.probe.worker`` processes (the line protocol is in that module's
docstring). So that the instrument's own loop never delays what it measures, no worker
runs more than a few hundred probes (``default_processes``).

- Probe numbers are interleaved: worker i runs i, i+K, i+2K, …, and ``add`` gives each
  new number to the worker it falls to; ``{n}`` and every probe's seed are those of a
  one-process fleet.
- Instants cross as ``time.monotonic()`` values, which on Linux are one clock for every
  process: a fault instant, sent to every worker, means the same moment in each, and a
  worker counts the losses it noticed between that instant and the message's arrival as
  detected from it (``LossSpans``).
- Records stream back in batches (every ``BATCH`` seconds) to the caller's sink, with
  each worker's probe states and counters, so series, steady state and progress stay live.
- At the end each worker sends its Result; histograms are merged from their HDR
  encodings (``wsctl.metrics.merge``, never averaged percentiles), counters summed,
  states, errors and never-opened probes combined, and every worker's instrument health
  (loop lag, CPU share) listed in ``details["instrument"]``.
- A worker that exits without a result stops the run with ``RunFailed`` naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
import typing
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from wsctl.clock import MonotonicClock
from wsctl.errors import InvalidInput, RunFailed
from wsctl.metrics import Histogram, MetricSet, Result, merge
from wsctl.probe.driver import RecordSink
from wsctl.probe.fleet import Fleet, LoopWatch
from wsctl.probe.machine import ProbeConfig, Record, State, new_metrics

PROBES_PER_PROCESS = 200  # past this many probes in one loop, its lag shows in the figures
BATCH = 0.1  # seconds between a worker's record batches
SNAPSHOT = 1.0  # seconds between a worker's per-probe snapshots (live views only)
READY_TIMEOUT = 60.0  # a worker's start-up: python, imports, the setup line
STOP_GRACE = 10.0  # after a worker died: the others' time to finish before being killed
STREAM_LIMIT = 2**26  # longest line a worker may send (its Result, with HDR encodings)


def default_processes(count: int, cores: int | None = None) -> int:
    """Workers for ``count`` probes: enough that none runs more than
    ``PROBES_PER_PROCESS``, at most one per core; 1 (in-process) for a small fleet."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(math.ceil(count / PROBES_PER_PROCESS), cores))


def resolve_processes(count: int, asked: int | None, *, added: int = 0) -> int:
    """The worker count to use: ``asked`` (None: ``default_processes`` for the ``count``
    probes and the ``added`` ones a run will start later), never more than ``count``."""
    wanted = default_processes(count + added) if asked is None else asked
    if wanted < 1:
        raise InvalidInput(f"processes must be >= 1, not {wanted}")
    return max(1, min(wanted, count))


def share(count: int, processes: int, worker: int) -> list[int]:
    """The probe numbers worker ``worker`` of ``processes`` runs: ``worker``, ``worker +
    processes``, … below ``count``."""
    return list(range(worker, count, processes))


# -- ProbeConfig across the process boundary ----------------------------------------


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config (``ProbeConfig``) as JSON-ready data: nested dataclasses as
    dicts, pydantic models (anything with ``model_dump``) as their JSON form."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json", by_alias=True)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = config_to_dict(value)
        out[field.name] = value
    return out


def config_from_dict(cls: type[Any], obj: dict[str, Any]) -> Any:
    """``cls`` (a dataclass) rebuilt from ``config_to_dict``'s output: a field whose type
    is a dataclass or a pydantic model (``model_validate``), optional or not, is rebuilt
    as one; unknown keys are an error (the two processes run different code)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in obj.items():
        if isinstance(value, dict):
            for kind in (hints[name], *typing.get_args(hints[name])):
                if hasattr(kind, "model_validate"):
                    value = kind.model_validate(value)
                    break
                if dataclasses.is_dataclass(kind) and isinstance(kind, type):
                    value = config_from_dict(kind, value)
                    break
        kwargs[name] = value
    return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """How a worker builds its connector (a connector itself cannot cross processes)."""

    deflate: bool = False
    cacert: str | None = None
    insecure: bool = False


# -- records and late fault instants (used by the worker; pure) ----------------------


def record_to_wire(record: Record) -> list[Any]:
    return [record.at, record.probe, record.previous.value, record.state.value,
            record.reason, record.code, record.kind]


def record_from_wire(item: Sequence[Any]) -> Record:
    at, probe, previous, state, reason, code, kind = item
    return Record(float(at), int(probe), State(previous), State(state), reason, code, kind)


class LossSpans:
    """Per probe, when its current connection opened and the span of the last connection
    it lost (opened, lost): a fault instant that reaches a worker a few ms after it was
    taken still yields ``detect_time`` for the probes that noticed the loss meanwhile."""

    def __init__(self) -> None:
        self.opened: dict[int, float] = {}
        self.lost: dict[int, tuple[float, float]] = {}

    def note(self, records: Iterable[Record]) -> None:
        for record in records:
            if record.state is State.OPEN and record.previous is not State.OPEN:
                self.opened[record.probe] = record.at
            elif record.previous is State.OPEN and record.state is not State.OPEN:
                opened = self.opened.pop(record.probe, record.at)
                if record.state is State.LOST:
                    self.lost[record.probe] = (opened, record.at)

    def fault(self, at: float, fleet: Fleet) -> int:
        """Apply a fault taken at ``at`` to ``fleet``: a probe open since before it is
        told (it measures ``detect_time`` when it notices); one whose connection, open at
        ``at``, was lost since has its ``detect_time`` recorded now. How many were late."""
        late = 0
        detect = fleet.metrics.histograms["detect_time"]
        for probe in fleet.probes:
            machine = probe.machine
            span = self.lost.get(machine.index)
            if span is not None and span[0] <= at <= span[1]:
                detect.record(span[1] - at)
                late += 1
            elif machine.state is State.OPEN and self.opened.get(machine.index, at) <= at:
                machine.fault_injected(at)
        return late


# -- the parent's side ----------------------------------------------------------------


class ProbeView:
    """What a worker last said about one probe, shaped like ``Probe`` for the views
    (``view.machine.state`` etc.)."""

    __slots__ = ("index", "state", "reconnects", "ever_opened", "last_rtt", "last_latency",
                 "last_error")

    def __init__(self, row: Sequence[Any]) -> None:
        (self.index, state, self.reconnects, self.ever_opened, self.last_rtt,
         self.last_latency, self.last_error) = row
        self.state = State(state)

    @property
    def machine(self) -> ProbeView:
        return self


class _Worker:
    """One worker process and what it has said so far."""

    def __init__(self, number: int, proc: asyncio.subprocess.Process) -> None:
        self.number = number
        self.proc = proc
        self.ready = asyncio.Event()
        self.ended = asyncio.Event()  # its stdout closed: it exited or is about to
        self.states: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        self.running = False
        self.rows: list[ProbeView] = []
        self.histograms: dict[str, Histogram] = {}
        self.result: Result | None = None
        self.error: tuple[str, int] | None = None
        self.stderr: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return f"probes worker {self.number} (pid {self.proc.pid})"

    def send(self, obj: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            stdin.write((json.dumps(obj, separators=(",", ":")) + "\n").encode())

    def failure(self) -> RunFailed | InvalidInput:
        """Why this worker ended without a result, naming it."""
        if self.error is not None:
            message, code = self.error
            if code == 2:
                return InvalidInput(message)
            return RunFailed(f"{self.name} failed: {message}")
        tail = " | ".join(self.stderr[-3:]) or "no output"
        return RunFailed(f"{self.name} died (exit status {self.proc.returncode}) before "
                         f"sending its result: {tail}")


class WorkerFleet:
    """``count`` probes of ``config`` in ``processes`` worker processes.

    ``spawn()`` starts the workers and waits until each is ready (so that ``run()``
    starts probes at once; ``run`` spawns them itself otherwise). ``live_view`` asks the
    workers for a per-probe snapshot and their histograms every second (``wsctl
    probe``'s views and metrics endpoint); without it only states, counters and records
    stream back. ``watch_parent`` names what this process does for the measurement
    besides gathering (e.g. "chaos proxy"): its own loop lag and CPU are then listed
    in ``details["instrument"]`` too. ``close()`` ends every worker in any state.
    """

    def __init__(
        self,
        config: ProbeConfig,
        count: int,
        processes: int,
        *,
        seed: int | None = None,
        sink: RecordSink | None = None,
        spawn_rate: float | None = 1000.0,
        connector: ConnectorSpec = ConnectorSpec(),
        live_view: bool = False,
        watch_parent: str | None = None,
    ) -> None:
        if count < 1 or processes < 1:
            raise ValueError("count and processes must be >= 1")
        self.config = config
        self.count = count
        self.processes = min(processes, count)
        self.seed = seed if seed is not None else random.randrange(2**32)
        self.sink = sink
        self.spawn_rate = spawn_rate
        self.connector = connector
        self.live_view = live_view
        self.clock = MonotonicClock()  # workers share only the system's monotonic clock
        self.added = 0
        self.started_at = time.time()
        self.started_mono = self.clock.now()
        self.ended_mono: float | None = None
        self.watch = LoopWatch(f"{watch_parent} (pid {os.getpid()})") \
            if watch_parent else None
        self._workers: list[_Worker] = []
        self._final: Result | None = None
        self._live: MetricSet | None = None
        self._running = False
        self._stopping = False

    # -- life cycle ------------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the workers and wait until every one is ready; RunFailed naming one that
        is not."""
        if self._workers:
            return
        rate = self.spawn_rate / self.processes if self.spawn_rate else None
        for number in range(self.processes):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wsctl.probe.worker", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                limit=STREAM_LIMIT)
            worker = _Worker(number, proc)
            self._workers.append(worker)
            worker.tasks = [asyncio.create_task(self._read(worker)),
                            asyncio.create_task(self._read_stderr(worker))]
            worker.send({"setup": {
                "config": config_to_dict(self.config), "seed": self.seed,
                "indices": share(self.count, self.processes, number), "spawn_rate": rate,
                "connector": dataclasses.asdict(self.connector), "live_view": self.live_view,
                "name": f"probes worker {number}"}})
        waits = [asyncio.ensure_future(w.ready.wait()) for w in self._workers]
        await asyncio.wait(waits, timeout=READY_TIMEOUT)
        for wait in waits:
            wait.cancel()
        for worker in self._workers:
            if not worker.ready.is_set() or worker.ended.is_set():
                await self.close()
                if worker.ended.is_set():
                    await worker.proc.wait()
                    raise worker.failure()
                raise RunFailed(f"{worker.name} was not ready after {READY_TIMEOUT:.0f}s")

    async def run(self) -> Result:
        """Run every worker's probes from now to the config's duration (or ``stop()``);
        the merged Result. RunFailed when a worker ends without one."""
        await self.spawn()
        self.started_at, self.started_mono = time.time(), self.clock.now()
        self._running = True
        if self.watch is not None:
            self.watch.start()
        try:
            for worker in self._workers:
                worker.send({"start": self.started_mono})
            await self._wait_for_results()
        finally:
            self._running = False
            if self.watch is not None:
                await self.watch.stop()
            await self.close()
        self.ended_mono = self.clock.now()
        results = [w.result for w in self._workers if w.result is not None]
        self._final = merge_fleet(results, config_to_dict(self.config), count=self.count,
                                  seed=self.seed, added=self.added,
                                  parent=self.watch.health() if self.watch else None)
        return self._final

    async def _wait_for_results(self) -> None:
        pending = {asyncio.ensure_future(w.ended.wait()): w for w in self._workers}
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    worker = pending.pop(future)
                    await worker.proc.wait()
                    if worker.result is None:
                        self.stop()
                        if pending:
                            await asyncio.wait(pending, timeout=STOP_GRACE)
                        raise worker.failure()
        finally:
            for future in pending:
                future.cancel()

    async def close(self) -> None:
        """End every worker (killed if still running) and reap it; never raises."""
        for worker in self._workers:
            if worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.proc.wait(), 10)
            for task in worker.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                if worker.proc.stdin is not None:
                    worker.proc.stdin.close()

    # -- what the workers say ------------------------------------------------------------

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.proc.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self._receive(worker, obj)
        finally:
            worker.ended.set()
            worker.ready.set()  # nobody waits for a dead worker

    def _receive(self, worker: _Worker, obj: dict[str, Any]) -> None:
        if "batch" in obj:
            batch = obj["batch"]
            worker.states = batch["states"]
            worker.counters = batch["counters"]
            worker.running = batch["running"]
            self._live = None
            if batch["records"] and self.sink is not None:
                self.sink([record_from_wire(item) for item in batch["records"]])
        elif "snapshot" in obj:
            snapshot = obj["snapshot"]
            worker.rows = [ProbeView(row) for row in snapshot["probes"]]
            for name, (unit, encoded) in snapshot["histograms"].items():
                worker.histograms[name] = Histogram.decode(name, unit, encoded)
            self._live = None
        elif "result" in obj:
            worker.result = Result.from_dict(obj["result"])
        elif "ready" in obj:
            worker.ready.set()
        elif "error" in obj:
            worker.error = (str(obj["error"]), int(obj.get("exit_code", 3)))

    async def _read_stderr(self, worker: _Worker) -> None:
        stderr = worker.proc.stderr
        assert stderr is not None
        while line := await stderr.readline():
            worker.stderr = [*worker.stderr[-19:], line.decode(errors="replace").rstrip()]

    # -- what a Fleet offers --------------------------------------------------------------

    @property
    def wall_offset(self) -> float:
        """Add to a monotonic instant to get Unix time."""
        return self.started_at - self.started_mono

    @property
    def running(self) -> bool:
        """True while ``run()`` has probes running (and ``add`` can add more)."""
        return self._running and not self._stopping and any(
            w.running for w in self._workers)

    @property
    def size(self) -> int:
        return self.count + self.added

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, worker 0 first."""
        return [w.proc.pid for w in self._workers]

    @property
    def parts(self) -> list[Result]:
        """Each worker's own Result, once it sent it (what ``result()`` merges)."""
        return [w.result for w in self._workers if w.result is not None]

    @property
    def probes(self) -> list[ProbeView]:
        """Every probe as its worker last described it (live views only: else empty)."""
        return sorted((row for w in self._workers for row in w.rows), key=lambda r: r.index)

    def add(self, count: int) -> None:
        """Start ``count`` more probes, numbered after every other, each on the worker its
        number falls to, which starts its share at its part of ``spawn_rate`` (so the
        fleet's rate is ``spawn_rate``). RuntimeError unless the fleet is running."""
        if count < 1:
            raise ValueError("count must be >= 1")
        if not self.running:
            raise RuntimeError("the fleet is not running: start run() first")
        numbers = range(self.size, self.size + count)
        self.added += count
        for worker in self._workers:
            mine = [n for n in numbers if n % self.processes == worker.number]
            if mine:
                worker.send({"add": mine})

    def inject_fault(self, at: float | None = None) -> None:
        """A fault was injected at ``at`` (monotonic; default now): every worker is told."""
        instant = self.clock.now() if at is None else at
        for worker in self._workers:
            worker.send({"fault": instant})

    def stop(self) -> None:
        """Ask every worker's probes to close politely; ``run()`` then returns."""
        self._stopping = True
        for worker in self._workers:
            worker.send({"stop": True})

    def states(self) -> dict[str, int]:
        if self._final is not None:
            return dict(self._final.details["states"])
        return sum_counts([w.states for w in self._workers], [s.value for s in State])

    def errors(self) -> dict[str, int]:
        if self._final is not None:
            return dict(self._final.details["errors"])
        return dict(Counter(p.last_error for p in self.probes
                            if p.last_error and p.state is not State.OPEN))

    @property
    def metrics(self) -> MetricSet:
        """The merged metrics: the final ones after ``run()``, else the workers' latest
        counters (and, with ``live_view``, histograms)."""
        if self._final is not None:
            return self._final.metrics
        if self._live is None:
            live = new_metrics()
            for worker in self._workers:
                for name, value in worker.counters.items():
                    live.add(name, value)
                for name, hist in worker.histograms.items():
                    live.histogram(name, hist.unit).merge(hist)
            self._live = live
        return self._live

    def result(self) -> Result:
        """The merged Result once ``run()`` is over; before, what is known so far."""
        if self._final is not None:
            return self._final
        end = self.ended_mono if self.ended_mono is not None else self.clock.now()
        config = {**config_to_dict(self.config), "count": self.count, "seed": self.seed,
                  "processes": self.processes}
        return Result(kind="probe", metrics=self.metrics, started_at=self.started_at,
                      duration=max(0.0, end - self.started_mono), target=self.config.url,
                      config=config,
                      details={"probes": self.size, "states": self.states(),
                               "never_opened": 0, "reconnects": 0, "errors": self.errors(),
                               "loop_lag": {}, "instrument": []})

    def __repr__(self) -> str:
        return (f"WorkerFleet({self.config.url!r}, count={self.count}, "
                f"processes={self.processes})")


def sum_counts(parts: Iterable[dict[str, int]], keys: Iterable[str] = ()) -> dict[str, int]:
    """Counts by key added over ``parts``; ``keys`` are present even at zero."""
    total: Counter[str] = Counter(dict.fromkeys(keys, 0))
    for part in parts:
        total.update(part)
    return dict(total)


def merge_fleet(results: list[Result], config: dict[str, Any], *, count: int, seed: int,
                added: int = 0, parent: dict[str, Any] | None = None) -> Result:
    """One fleet's Result from its workers' ones: histograms merged from HDR, counters
    summed, probe states, errors and never-opened probes added up; the loop lag shown
    is the worst worker's; ``details["instrument"]`` lists every worker (and ``parent``)."""
    merged = merge(results)
    details = [r.details for r in results]
    lags = [d.get("loop_lag") or {} for d in details]
    instrument = [entry for d in details for entry in d.get("instrument", [])]
    merged.kind = "probe"
    merged.config = {**config, "count": count, "seed": seed, "processes": len(results)}
    merged.details = {
        "probes": sum(int(d.get("probes", 0)) for d in details),
        "added": added,
        "states": sum_counts([d.get("states", {}) for d in details],
                             [s.value for s in State]),
        "never_opened": sum(int(d.get("never_opened", 0)) for d in details),
        "reconnects": sum(int(d.get("reconnects", 0)) for d in details),
        "errors": sum_counts(d.get("errors", {}) for d in details),
        "loop_lag": max(lags, key=lambda lag: lag.get("p99") or 0.0, default={}),
        "instrument": [*instrument, *([parent] if parent else [])],
        "merged_from": len(results),
    }
    return merged


AnyFleet = Fleet | WorkerFleet

__all__ = ["PROBES_PER_PROCESS", "AnyFleet", "ConnectorSpec", "LossSpans", "WorkerFleet",
           "config_from_dict", "config_to_dict", "default_processes", "merge_fleet",
           "resolve_processes", "share"]
