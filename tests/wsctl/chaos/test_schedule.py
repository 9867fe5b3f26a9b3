"""Schedules on a fake clock: exact virtual instants, no real waiting."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from wsctl.chaos.faults.latency import Latency
from wsctl.chaos.proxy import Chaos, Toxic
from wsctl.chaos.schedule import Timing, windows
from wsctl.clock import FakeClock
from wsctl.errors import InvalidInput, NotFound


def test_windows_repeat_every_period() -> None:
    """at 1 s, for 2 s, every 5 s: on at 1, 6, 11 and off 2 s after each."""
    got = list(itertools.islice(windows(Timing(at=1, duration=2, every=5)), 3))
    assert got == [(1, 3), (6, 8), (11, 13)]


def test_window_without_for_stays_on() -> None:
    """Without ``for`` a schedule switches the fault on once and leaves it on."""
    assert list(windows(Timing(at=4))) == [(4, None)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 5}, "needs a 'for'"),
        ({"duration": 5, "every": 5}, "shorter than 'every'"),
        ({"duration": 1, "every": 0}, "every: must be at least 10ms"),
        ({"duration": 0.000001, "every": 0.000002}, "every: must be at least 10ms"),
        ({"at": -1}, "at: must not be negative"),
        ({"duration": -1}, "for: must not be negative"),
    ],
)
def test_timing_rejects_impossible_repeats(kwargs: dict[str, float], message: str) -> None:
    """A negative time, a repeat without a duration or not longer than it: InvalidInput."""
    with pytest.raises(InvalidInput, match=message):
        Timing(**kwargs)


async def test_schedule_switches_toxic_on_and_off_at_exact_times() -> None:
    """On a fake clock the toxic appears at 1.0 s, goes at 3.0 s, returns at 6.0 s."""
    clock = FakeClock()
    chaos = Chaos(clock=clock)
    proxy = await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    schedule = proxy.add_schedule(
        Toxic("latency", Latency(latency=5)), Timing(at=1, duration=2, every=5)
    )
    await clock.advance(0.999)
    assert "latency_downstream" not in proxy.toxics and schedule.state == "pending"
    await clock.advance(0.001)
    assert "latency_downstream" in proxy.toxics and schedule.state == "active"
    await clock.advance(1.999)
    assert "latency_downstream" in proxy.toxics
    await clock.advance(0.001)
    assert "latency_downstream" not in proxy.toxics
    await clock.advance(3.0)
    assert "latency_downstream" in proxy.toxics and schedule.activations == 2
    await proxy.remove_schedule(schedule.id)
    assert "latency_downstream" not in proxy.toxics and not proxy.schedules
    await chaos.close()


async def test_schedule_does_not_remove_a_toxic_it_did_not_add() -> None:
    """If the name is already taken the window is skipped, and the other toxic is left alone."""
    clock = FakeClock()
    chaos = Chaos(clock=clock)
    proxy = await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    proxy.add_toxic(chaos_toxic := Toxic("latency"))
    proxy.add_schedule(Toxic("latency"), Timing(at=1, duration=1))
    await clock.advance(5)
    assert proxy.toxics["latency_downstream"] is chaos_toxic
    await chaos.close()


async def test_schedule_on_unknown_connection_is_not_found() -> None:
    """A schedule aimed at a connection that does not exist is NotFound, and not added."""
    chaos = Chaos(clock=FakeClock())
    proxy = await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    with pytest.raises(NotFound, match="connection not found"):
        proxy.add_schedule(Toxic("cut"), Timing(), connection="nope")
    assert not proxy.schedules
    await chaos.close()


class _FakeConnection:
    """Stands in for a live connection: records the toxics it is given."""

    def __init__(self) -> None:
        self.toxics: dict[str, Toxic] = {}
        self.applied: list[str] = []

    def apply(self, toxic: Toxic) -> None:
        self.applied.append(toxic.name)

    async def unapply(self, toxic: Toxic) -> None:
        self.applied.append(f"-{toxic.name}")


async def test_connection_schedule_ends_with_its_connection() -> None:
    """A repeating schedule aimed at one connection stops once that connection is gone."""
    clock = FakeClock()
    chaos = Chaos(clock=clock)
    proxy = await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    conn = _FakeConnection()
    proxy.connections["c1"] = conn  # type: ignore[assignment]
    schedule = proxy.add_schedule(
        Toxic("cut"), Timing(at=1, duration=1, every=10), connection="c1"
    )
    await clock.advance(2.5)
    assert conn.applied == ["cut_downstream", "-cut_downstream"]
    del proxy.connections["c1"]
    await clock.advance(10)
    assert schedule.state == "done" and schedule.task is not None and schedule.task.done()
    assert schedule.activations == 1
    await chaos.close()


async def test_disable_and_enable_keep_a_schedule_running() -> None:
    """Disabling a proxy returns at once and its pending schedule still fires after re-enabling."""
    clock = FakeClock()
    chaos = Chaos(clock=clock)
    proxy = await chaos.create(name="p", upstream="127.0.0.1:9")
    schedule = proxy.add_schedule(Toxic("latency"), Timing(at=7))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await chaos.update("p", enabled=False)
    await chaos.update("p", enabled=True)
    assert loop.time() - started < 1.0
    await clock.advance(7)
    assert schedule.state == "active" and "latency_downstream" in proxy.toxics
    await chaos.close()
    assert schedule.state == "cancelled" and not proxy.toxics
