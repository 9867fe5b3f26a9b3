"""The monitor on a fake clock: series rows, steady state, and the figures before a fault."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from wsctl.clock import FakeClock
from wsctl.probe.machine import Record, State
from wsctl.scenario.monitor import Monitor
from wsctl.scenario.sampler import Sampler
from wsctl.scenario.server_process import Scrape

C, OPEN, X = State.CONNECTING, State.OPEN, State.CLOSED


class FakeServer:
    """RSS grows 1 MB a second; /metrics says 3 connections; scrapes are counted."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.scrapes = 0

    def rss(self) -> int:
        return 100_000_000 + int(self.clock.now() * 1_000_000)

    async def scrape(self, timeout: float = 2.0) -> Scrape:
        self.scrapes += 1
        return Scrape(connections=3.0)


def setup(opened_at: float) -> tuple[FakeClock, Sampler, FakeServer, Monitor]:
    clock = FakeClock(0.0)
    sampler = Sampler(0.0)
    for probe in range(3):
        sampler.records([Record(0.0, probe, C, C, "start"), Record(opened_at, probe, C, OPEN)])
    fleet = SimpleNamespace(metrics=SimpleNamespace(counters={"messages.received": 0}),
                            size=3, states=lambda: {})
    server = FakeServer(clock)
    monitor = Monitor(fleet=fleet, sampler=sampler, server=server,  # duck-typed fakes
                      clock=clock, start=0.0, end=5.0)
    return clock, sampler, server, monitor


async def run(monitor: Monitor, clock: FakeClock, until: float,
              later: dict[float, Any] | None = None) -> None:
    """Drive the monitor in 0.25 s steps, awaiting ``later[t]()`` once t is reached."""
    later = dict(later or {})
    task = asyncio.create_task(monitor.run(asyncio.Event(), failed=lambda: False))
    while not task.done() and clock.now() < until:
        await clock.advance(0.25)
        for at in [at for at in later if clock.now() >= at]:
            await later.pop(at)()
    await task


async def test_steady_state_is_noted_once_settled_with_the_servers_count() -> None:
    """Every probe open for SETTLE (2 s) at a 1 s sample: RSS then and /metrics' count,
    noted again at each settled sample (the last before the end or a fault counts)."""
    clock, sampler, server, monitor = setup(opened_at=0.5)
    await run(monitor, clock, 6.0)
    steady = monitor.steady
    assert steady is not None and steady.reached
    assert (steady.at, steady.rss, steady.connections) == (4.0, 104_000_000, 3.0)
    assert sampler.series().t == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_before_the_first_fault_the_level_of_that_moment_counts() -> None:
    """Unsettled at the first fault: the figures of that instant, probes' count, no
    scrape in the fault's way; nothing is noted after a fault."""
    clock, _, server, monitor = setup(opened_at=1.7)
    fault = SimpleNamespace(is_fault=True, do="cut")
    await run(monitor, clock, 6.0, {2.5: lambda: monitor.before(fault)})
    steady = monitor.steady
    assert steady is not None and not steady.reached
    assert (steady.at, steady.connections) == (2.5, 3.0)
    assert monitor.faulted


async def test_a_late_end_keeps_the_last_rows_level_when_probes_have_stopped() -> None:
    """Never settled, and every probe closed before the monitor's last look: the level of
    the last series row is what counts (not nothing)."""
    clock, sampler, _, monitor = setup(opened_at=1.7)

    async def close_all() -> None:
        sampler.records([Record(clock.now(), p, OPEN, X) for p in range(3)])

    await run(monitor, clock, 6.0, {3.5: close_all})
    steady = monitor.steady
    assert steady is not None and not steady.reached
    assert (steady.at, steady.connections) == (3.0, 3.0)


@pytest.fixture(autouse=True)
def _no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio.wait(timeout=…) in the loop would sleep for real: make it a yield."""
    real_wait = asyncio.wait

    async def quick(fs: Any, timeout: float | None = None, **kw: Any) -> Any:
        return await real_wait(fs, timeout=0 if timeout is not None else None, **kw)

    monkeypatch.setattr("wsctl.scenario.monitor.asyncio.wait", quick)
