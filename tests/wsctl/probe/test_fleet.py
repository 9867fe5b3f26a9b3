"""Fleet.add on virtual time: a storm joins the running fleet and stops with it."""

from __future__ import annotations

import asyncio
import random

import pytest

from wsctl.backoff import BackoffPolicy
from wsctl.clock import FakeClock
from wsctl.probe import ConnectError, Fleet, ProbeConfig, ProbeMachine
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
    added = fleet.add(3)
    assert [p.machine.index for p in added] == [2, 3, 4]
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
