"""Fleet.add on virtual time: a storm joins the running fleet and stops with it."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from wsctl.backoff import BackoffPolicy
from wsctl.clock import FakeClock
from wsctl.probe import ConnectError, Fleet, ProbeConfig, ProbeMachine
from wsctl.probe.fleet import LoopWatch, spawn_batches
from wsctl.probe.machine import new_metrics

pytestmark = pytest.mark.timeout(30)


def test_stop_at_is_a_constructor_argument() -> None:
    """A given stop_at wins over ``duration`` from now; without one, duration counts."""
    config = ProbeConfig("ws://127.0.0.1:9/ws/a", duration=10.0)
    given = ProbeMachine(0, config, new_metrics(), random.Random(0), 5.0, stop_at=12.0)
    default = ProbeMachine(0, config, new_metrics(), random.Random(0), 5.0)
    assert (given.stop_at, default.stop_at) == (12.0, 15.0)


async def test_added_probes_join_the_run_and_stop_at_the_fleets_end() -> None:
    """Probes added at t=4 are numbered after the first, retry in the same metrics, stop
    at the fleet's end (t=10, not 4 + duration), and run() waits for them."""
    clock = FakeClock()
    attempts: dict[str, list[float]] = {}

    async def refuse(url: str, timeout: float) -> None:
        attempts.setdefault(url, []).append(clock.now())
        raise ConnectError("refused", "connection refused")

    config = ProbeConfig("ws://127.0.0.1:9/ws/p{n}", duration=10.0,
                         backoff=BackoffPolicy(kind="exponential", base=1, cap=1))
    fleet = Fleet(config, 2, seed=1, connector=refuse, clock=clock, spawn_rate=None)
    with pytest.raises(RuntimeError, match="not running"):
        fleet.add(1)
    task = asyncio.create_task(fleet.run())
    await clock.advance(4.0)
    assert fleet.add(3) == [2, 3, 4]
    await clock.advance(0)
    assert fleet.size == 5 and fleet.added == 3 and len(fleet.probes) == 5
    await clock.advance(20.0)
    result = await task
    assert fleet.ended_mono == 10.0
    assert {p.machine.stop_at for p in fleet.probes} == {10.0}
    assert attempts["ws://127.0.0.1:9/ws/p4"][0] == 4.0
    assert max(max(v) for v in attempts.values()) < 10.0
    assert result.details["probes"] == 5
    assert result.metrics.counters["connections.failed"] == sum(map(len, attempts.values()))
    assert not fleet.running
    with pytest.raises(RuntimeError, match="not running"):
        fleet.add(1)


def test_spawn_batches_keep_the_rate_in_small_batches() -> None:
    """A ramp starts a few probes every ~10 ms at exactly the rate; None is all at once."""
    assert spawn_batches(1000.0, 500) == (10, 0.01)
    assert spawn_batches(250.0, 500) == (2, 0.008)
    assert spawn_batches(5.0, 3) == (1, 0.2)
    assert spawn_batches(None, 500) == (500, 0.0)


async def test_added_probes_start_at_the_spawn_rate_not_in_one_step() -> None:
    """add(30) at 1000/s starts 10 probes at once and 10 more each 10 ms (first attempts
    at t=2.00, 2.01, 2.02), so the fleet's loop never handshakes all 30 in one step; a
    ramp cut short by the fleet's end starts no probe after it."""
    clock = FakeClock()
    first: dict[str, float] = {}

    async def refuse(url: str, timeout: float) -> None:
        first.setdefault(url, clock.now())
        raise ConnectError("refused", "connection refused")

    config = ProbeConfig("ws://127.0.0.1:9/ws/p{n}", duration=3.0,
                         backoff=BackoffPolicy(kind="exponential", base=5, cap=5))
    fleet = Fleet(config, 1, seed=1, connector=refuse, clock=clock, spawn_rate=1000.0)
    task = asyncio.create_task(fleet.run())
    await clock.advance(2.0)
    fleet.add(30)
    await clock.advance(0.005)
    assert len(fleet.probes) == 11
    await clock.advance(0.1)
    starts = sorted(first[f"ws://127.0.0.1:9/ws/p{n}"] for n in range(1, 31))
    assert [round(t, 3) for t in starts[::10]] == [2.0, 2.01, 2.02]
    assert starts.count(starts[0]) == 10
    fleet.add(2000)  # 2 s of ramp, but the fleet ends at t=3
    await clock.advance(5.0)
    await task
    assert 31 + 800 <= len(fleet.probes) <= 31 + 900
    assert fleet.added == 2030  # numbered, though the fleet's end cut the ramp


async def test_loop_lag_counts_only_lateness_within_the_measured_span() -> None:
    """A 100 ms stall inside the span is counted; a 300 ms stall after ``until`` (the
    fleet closing every connection at once) is not: it stamps no instant the run reports."""
    loop = asyncio.get_running_loop()
    watch = LoopWatch("t", period=0.05)
    watch.start(until=loop.time() + 0.4)
    await asyncio.sleep(0.12)
    time.sleep(0.1)
    await asyncio.sleep(0.4)
    time.sleep(0.3)
    await asyncio.sleep(0.05)
    await watch.stop()
    lag = watch.lag.summary()
    assert lag["max"] is not None and 0.05 <= lag["max"] < 0.25, lag
