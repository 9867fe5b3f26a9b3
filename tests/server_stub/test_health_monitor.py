"""HealthMonitor on a fake clock: exact detection times."""

from server_stub.health_monitor import DEAD, HEALTHY, LATE, HealthMonitor, LivenessTracker
from wsctl.clock import FakeClock


def test_silent_peer_is_dead_exactly_at_interval_plus_timeout():
    """A peer that never answers is pinged at +interval and declared dead at +timeout."""
    tracker = LivenessTracker(interval=2.0, timeout=1.0)
    tracker.add("a", 0.0)
    assert tracker.due(1.99) == ([], [])
    assert tracker.due(2.0) == (["a"], [])
    assert tracker.state("a", 2.4) == HEALTHY
    assert tracker.state("a", 2.6) == LATE
    assert tracker.due(2.99) == ([], [])
    assert tracker.due(3.0) == ([], ["a"])
    assert tracker.dead_detected == 1 and len(tracker) == 0
    assert tracker.state("a", 3.0) == DEAD


def test_answering_peer_stays_alive_and_next_ping_follows_interval():
    """Pongs keep a peer alive; the next ping is due interval after the previous one."""
    tracker = LivenessTracker(interval=2.0, timeout=1.0)
    tracker.add("a", 0.0)
    for k in range(1, 6):
        assert tracker.due(2.0 * k) == (["a"], [])
        assert tracker.pong("a", 2.0 * k + 0.25) == 0.25
    assert tracker.dead_detected == 0
    assert tracker.pong("a", 99.0) is None  # unsolicited


def test_removed_peer_is_never_pinged():
    """Removing a peer cancels its schedule."""
    tracker = LivenessTracker(interval=1.0, timeout=1.0)
    tracker.add("a", 0.0)
    tracker.remove("a")
    assert tracker.due(100.0) == ([], [])


async def test_monitor_drives_pings_and_closes_on_fake_clock():
    """Driven by its task on virtual time, the monitor pings, then closes the silent peer."""
    clock = FakeClock()
    pinged: list[tuple[float, str]] = []
    closed: list[tuple[float, str]] = []
    monitor = HealthMonitor(
        interval=5.0, timeout=5.0, clock=clock,
        send_ping=lambda key: pinged.append((clock.now(), key)),
        close_dead=lambda key: closed.append((clock.now(), key)),
    )
    monitor.add("silent")
    monitor.add("alive")
    import asyncio

    task = asyncio.get_running_loop().create_task(monitor.run())
    for _ in range(120):  # 12 virtual seconds in ticks of 0.1 s
        await clock.advance(0.1)
        if pinged and pinged[-1][1] == "alive" and monitor.tracker._peers["alive"].ping_sent:
            monitor.pong("alive")
    task.cancel()
    assert [k for _, k in closed] == ["silent"]
    assert closed[0][0] == 10.0
    assert {k for _, k in pinged} == {"silent", "alive"}
    assert monitor.dead_detected == 1
