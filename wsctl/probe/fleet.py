"""A fleet: N probes in one event loop sharing one metric set, and its result."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from wsctl.backoff import SmallRandom
from wsctl.clock import Clock, MonotonicClock
from wsctl.metrics import Histogram, MetricSet, Result
from wsctl.probe.driver import Connector, Probe, RecordSink, websockets_connector
from wsctl.probe.machine import ProbeConfig, ProbeMachine, State
from wsctl.runtime import quiet_gc

SPAWN_TICK = 0.01  # s between two batches of probes started by a ramp


def spawn_batches(rate: float | None, count: int) -> tuple[int, float]:
    """How a ramp of ``count`` probes at ``rate`` per second (None: all at once) starts
    them: ``batch`` probes at a time, ``pause`` seconds apart (``batch / rate``, so the
    rate is kept exactly; about ``SPAWN_TICK`` unless the rate is under one per tick)."""
    if not rate:
        return max(1, count), 0.0
    batch = max(1, round(rate * SPAWN_TICK))
    return batch, batch / rate


class LoopWatch:
    """One measuring process's own health over a span (``start`` .. ``stop``): how late
    its event loop wakes from a 100 ms sleep, and its CPU time / wall time. A late or
    busy loop delays every instant it stamps (``wsctl.metrics.instrument``)."""

    def __init__(self, name: str, period: float = 0.1) -> None:
        self.name = name
        self.period = period
        self.lag = Histogram("loop_lag")
        self.cpu_share: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._cpu = self._wall = 0.0

    def start(self, until: float | None = None) -> None:
        """Watch from now; ``until`` (a ``loop.time()`` instant, None: to ``stop()``) ends
        the span measured: lateness after it (the fleet closing every connection at
        once) stamps no instant the run reports, so it is not counted."""
        self._cpu, self._wall = time.process_time(), time.monotonic()
        self._task = asyncio.create_task(self._watch(until))

    async def _watch(self, until: float | None) -> None:
        loop = asyncio.get_running_loop()
        while until is None or loop.time() < until:
            due = loop.time() + self.period
            await asyncio.sleep(self.period)
            woke = loop.time()
            if until is not None:
                if due >= until:
                    return
                woke = min(woke, until)
            self.lag.record(max(0.0, woke - due))

    async def stop(self) -> None:
        """Stop watching; the CPU share is that of the span watched."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        wall = time.monotonic() - self._wall
        if wall > 0:
            self.cpu_share = (time.process_time() - self._cpu) / wall

    def health(self) -> dict[str, Any]:
        """The ``details["instrument"]`` entry (``ProcessHealth.from_json``): CPU share,
        loop lag p99 and max in seconds; None where nothing was measured."""
        lag = self.lag.summary()
        cpu = round(self.cpu_share, 4) if self.cpu_share is not None else None
        return {"name": self.name, "cpu": cpu, "loop_lag_p99": lag["p99"],
                "loop_lag_max": lag["max"]}


class Fleet:
    """``count`` probes of one config. ``run()`` returns when every probe has finished
    (its duration is over, it got a 1000 close, it gave up, or ``stop()`` was called).

    Probes start ``spawn_rate`` per second (None: all at once), a few every
    ``SPAWN_TICK``, so that thousands of handshakes neither overflow the server's listen
    backlog nor land in one step of the fleet's own loop (which would stamp them late).
    Each probe has its own RNG seeded from ``seed`` and its index, so a seeded run's
    delays are reproducible. ``add(n)`` starts n more while the fleet runs, at the same
    ``spawn_rate``; every probe, first or added, stops at the same instant: the config's
    ``duration`` after ``run()`` began.

    ``tune_gc`` is for processes that own their interpreter (the CLI, benchmarks): once
    every probe is started, the run continues under ``wsctl.runtime.quiet_gc()``.

    ``indices``: the probe numbers this fleet runs (default ``0 .. count-1``); a worker
    process of a fleet split over several (``wsctl.probe.workers``) runs every K-th one,
    so that ``{n}`` and each probe's seed are those of a one-process fleet. While it
    runs, the fleet measures its own loop lag and CPU share (``watch``): the
    instrument's health, carried by ``details["instrument"]`` of its result.
    """

    def __init__(
        self,
        config: ProbeConfig,
        count: int = 1,
        *,
        seed: int | None = None,
        connector: Connector | None = None,
        clock: Clock | None = None,
        sink: RecordSink | None = None,
        spawn_rate: float | None = 1000.0,
        tune_gc: bool = False,
        indices: Sequence[int] | None = None,
    ) -> None:
        if indices is not None:
            count = len(indices)
        if count < 1:
            raise ValueError("count must be >= 1")
        self.config = config
        self.count = count
        self.indices: list[int] = list(indices) if indices is not None else list(range(count))
        self.seed = seed if seed is not None else random.randrange(2**32)
        self.clock: Clock = clock or MonotonicClock()
        self.connector = connector or websockets_connector()
        self.sink = sink
        self.spawn_rate = spawn_rate
        self.tune_gc = tune_gc
        self.metrics: MetricSet = config.new_metrics()  # only what the config measures
        self.faults = 0  # faults announced by inject_fault
        self.probes: list[Probe] = []
        self.added = 0  # probes started by add(), beyond count
        self.stop_at: float | None = None  # when every probe stops (set by run())
        self.started_at = time.time()
        self.started_mono = self.clock.now()
        self.ended_mono: float | None = None
        self._stopping = False
        self.watch = LoopWatch(f"probes (pid {os.getpid()})")
        self.loop_lag = self.watch.lag
        self._group: asyncio.TaskGroup | None = None  # while run() runs
        self._running = 0  # probe tasks not finished (the group takes none once it is 0)

    @property
    def wall_offset(self) -> float:
        """Add to a monotonic instant of this process to get Unix time."""
        return self.started_at - self.started_mono

    async def run(self) -> Result:
        clock = self.clock
        self.started_at = time.time()
        self.started_mono = start = clock.now()
        duration = self.config.duration
        self.stop_at = start + duration if duration is not None else None
        watching = isinstance(clock, MonotonicClock)  # a fake clock measures nothing
        if watching:
            loop = asyncio.get_running_loop()
            self.watch.start(None if duration is None else loop.time() + duration)
        try:
            with contextlib.ExitStack() as tuning:
                await self._spawn_and_wait(tuning)
        finally:
            if watching:
                await self.watch.stop()
        self.ended_mono = clock.now()
        return self.result()

    async def _spawn_and_wait(self, tuning: contextlib.ExitStack) -> None:
        """Start the first ``count`` probes at ``spawn_rate``, then wait for every probe
        (added ones too)."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self._ramp(self.indices)
                if self.tune_gc:
                    tuning.enter_context(quiet_gc())
        finally:
            self._group = None

    async def _ramp(self, indices: Sequence[int]) -> None:
        """Start the probes numbered ``indices`` at ``spawn_rate`` (``spawn_batches``);
        those not started by ``stop()`` or the fleet's end never are."""
        batch, pause = spawn_batches(self.spawn_rate, len(indices))
        for started, index in enumerate(indices, 1):
            if self._stopping or (self.stop_at is not None
                                  and self.clock.now() >= self.stop_at):
                break
            self._start(index)
            if started % batch == 0 and started < len(indices):
                await self.clock.sleep(pause)

    def _start(self, index: int) -> Probe:
        """Probe number ``index``, running in the fleet's task group from now."""
        assert self._group is not None
        machine = ProbeMachine(
            index, self.config, self.metrics, SmallRandom(self.seed * 1_000_003 + index),
            self.clock.now(), keep_records=self.sink is not None, stop_at=self.stop_at,
        )
        probe = Probe(machine, self.connector, clock=self.clock, sink=self.sink)
        self.probes.append(probe)
        self._group.create_task(probe.run()).add_done_callback(self._ended)
        self._running += 1
        return probe

    def _ended(self, _task: asyncio.Task[None]) -> None:
        self._running -= 1

    @property
    def running(self) -> bool:
        """True while ``run()`` has probes running (and ``add`` can add more)."""
        return self._group is not None and self._running > 0 and not self._stopping

    @property
    def size(self) -> int:
        """Probes the fleet is made of: ``count`` plus those added."""
        return self.count + self.added

    def add(self, count: int) -> list[int]:
        """Start ``count`` more probes in the same metrics and record sink, numbered after
        every other, at ``spawn_rate`` from now; ``run()``
        waits for them too. Their numbers. RuntimeError unless the fleet is running."""
        if count < 1:
            raise ValueError("count must be >= 1")
        if not self.running:
            raise RuntimeError("the fleet is not running: start run() first")
        first = self.size
        return self.add_numbered(range(first, first + count))

    def add_numbered(self, indices: Iterable[int]) -> list[int]:
        """Start the probes numbered ``indices`` (``add`` for one worker of a fleet split
        over processes, which numbers them); as ``add``, RuntimeError unless the fleet is
        running."""
        numbers = list(indices)
        if not self.running:
            raise RuntimeError("the fleet is not running: start run() first")
        assert self._group is not None
        self.added += len(numbers)
        ramp = self._group.create_task(self._ramp(numbers))
        self._running += 1  # the fleet runs while a ramp still has probes to start
        ramp.add_done_callback(self._ended)
        return numbers

    def inject_fault(self, at: float | None = None) -> None:
        """Mark that a fault was injected at ``at`` (monotonic; default now), so each open
        probe measures ``detect_time`` from it to the moment it notices the loss."""
        instant = self.clock.now() if at is None else at
        self.faults += 1
        for probe in self.probes:
            probe.machine.fault_injected(instant)

    def stop(self) -> None:
        """Ask every probe to close politely and finish; ``run()`` then returns."""
        self._stopping = True
        for probe in self.probes:
            probe.request_stop()

    def states(self) -> dict[str, int]:
        """How many probes are in each state right now."""
        counts = Counter(probe.machine.state.value for probe in self.probes)
        return {state.value: counts.get(state.value, 0) for state in State}

    def errors(self) -> dict[str, int]:
        """Last failure of each probe that is not open (refused, DNS, TLS, status, …)."""
        return dict(Counter(p.machine.last_error for p in self.probes
                            if p.machine.last_error and p.machine.state is not State.OPEN))

    def result(self) -> Result:
        """The run so far as a versioned result object (see docs/probe.md)."""
        end = self.ended_mono if self.ended_mono is not None else self.clock.now()
        config: dict[str, Any] = self.config.to_json()
        config.update(count=self.count, seed=self.seed)
        never_opened = sum(1 for p in self.probes if not p.machine.ever_opened)
        return Result(
            kind="probe",
            metrics=self.metrics,
            started_at=self.started_at,
            duration=max(0.0, end - self.started_mono),
            target=self.config.url,
            config=config,
            details={
                "probes": len(self.probes),
                "states": self.states(),
                "never_opened": never_opened,
                "reconnects": sum(p.machine.reconnects for p in self.probes),
                "errors": self.errors(),
                "loop_lag": self.loop_lag.summary(),
                "closed_by_server": sum(p.machine.closed_by_server for p in self.probes),
                "faults": self.faults,
                "unmeasured": self.config.unmeasured,
                "instrument": [self.watch.health()],
            },
        )

    def __repr__(self) -> str:
        return f"Fleet({self.config.url!r}, count={self.count})"
