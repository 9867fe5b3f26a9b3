"""Probes against the real reference server in a child process: pause, kill, restart."""

import asyncio
import signal
import time

import pytest

from tests.serverproc import ServerProcess
from wsctl.backoff import BackoffPolicy
from wsctl.probe import Fleet, ProbeConfig, State

pytestmark = pytest.mark.timeout(60)

COUNT = 5
INTERVAL = 0.5
TIMEOUT = 0.5
BACKOFF = BackoffPolicy(base=0.1, cap=0.5)
SLACK = 0.4  # scheduling delays on a loaded 2-core CI machine


async def wait_until(predicate, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


def fleet_for(url, records):
    config = ProbeConfig(url + "/ws/probe-{n}", heartbeat_interval=INTERVAL,
                         heartbeat_timeout=TIMEOUT, backoff=BACKOFF, connect_timeout=10)
    return Fleet(config, COUNT, seed=3, sink=records.extend)


def events_flowing(fleet, after=0):
    return all(p.machine.state is State.OPEN and p.machine.tracker.received > after
               for p in fleet.probes) and len(fleet.probes) == COUNT


@pytest.fixture
def server():
    servers: list[ServerProcess] = []

    def start(port=0, extra=()):
        proc = ServerProcess("--job-rate", "10", "--job-steps", "100000",
                             "--ping-interval", "5", "--ping-timeout", "5", *extra, port=port)
        servers.append(proc)
        return proc

    yield start
    for proc in servers:
        proc.close()


async def test_sigstop_is_detected_then_resumed_without_loss(server):
    """SIGSTOP 3 s: each probe detects within interval+timeout, resumes recovered, loses 0."""
    srv = server()
    records = []
    fleet = fleet_for(srv.url, records)
    task = asyncio.create_task(fleet.run())
    try:
        assert await wait_until(lambda: events_flowing(fleet), 10), srv.logs()
        received_before = [p.machine.tracker.received for p in fleet.probes]
        srv.signal(signal.SIGSTOP)
        fault_at = time.monotonic()
        fleet.inject_fault(fault_at)
        await asyncio.sleep(3)
        srv.signal(signal.SIGCONT)
        recovered = await wait_until(
            lambda: all(p.machine.reconnects == 1 for p in fleet.probes)
            and events_flowing(fleet, after=max(received_before) + 5), 10)
        assert recovered, [repr(p.machine) for p in fleet.probes]
    finally:
        fleet.stop()
        result = await asyncio.wait_for(task, 10)

    detect = result.metrics.histograms["detect_time"].summary()
    assert detect["count"] == COUNT
    assert detect["max"] <= INTERVAL + TIMEOUT + SLACK
    losses = [r for r in records if r.state is State.LOST]
    assert len(losses) == COUNT and all("no pong" in r.reason for r in losses)
    resumed = [r for r in records if r.reason.startswith("resumed:")]
    assert sorted(r.probe for r in resumed) == list(range(COUNT))
    assert result.value("resume_time.count") == COUNT
    # Nobody can be back before SIGCONT: resume spans the rest of the pause at least.
    assert result.value("reconnect_time.min") >= 3 - (INTERVAL + TIMEOUT + SLACK)
    assert result.value("resyncs") == 0
    assert result.value("messages.lost") == 0
    assert result.value("messages.duplicated") == 0
    assert result.value("messages.reordered") == 0
    assert result.value("probes.gave_up") == 0


async def test_sigkill_and_restart_is_a_declared_resync(server):
    """SIGKILL, restart after 1 s: all reconnect within outage + backoff bound; resync."""
    srv = server()
    records = []
    fleet = fleet_for(srv.url, records)
    task = asyncio.create_task(fleet.run())
    try:
        assert await wait_until(lambda: events_flowing(fleet), 10), srv.logs()
        killed_at = time.monotonic()
        srv.kill()
        fleet.inject_fault(killed_at)
        await asyncio.sleep(1)
        spawned_at = time.monotonic()
        again = server(port=srv.port)
        outage = again.ready_at - killed_at
        assert await wait_until(
            lambda: all(p.machine.reconnects == 1 for p in fleet.probes)
            and events_flowing(fleet), 10), again.logs()
    finally:
        fleet.stop()
        result = await asyncio.wait_for(task, 10)

    detect = result.metrics.histograms["detect_time"].summary()
    assert detect["count"] == COUNT and detect["max"] < SLACK  # a kill closes the sockets
    reconnect = result.metrics.histograms["reconnect_time"].summary()
    assert reconnect["count"] == COUNT
    # Not back before the new process existed; back within one backoff cap of it being up.
    assert reconnect["min"] >= (spawned_at - killed_at) - detect["max"]
    assert reconnect["max"] <= outage + BACKOFF.bound + SLACK
    assert result.value("resyncs") == COUNT
    assert result.value("messages.lost") == 0
    assert result.value("probes.gave_up") == 0
    assert any(r.reason.startswith("resync: epoch") for r in records)


async def test_sigterm_retry_hint_is_honoured(server):
    """SIGTERM closes with 1001 retry_ms=1500: no probe reconnects sooner than 1.5 s."""
    srv = server(extra=("--retry-hint", "1500ms"))
    records = []
    fleet = fleet_for(srv.url, records)
    task = asyncio.create_task(fleet.run())
    try:
        assert await wait_until(lambda: events_flowing(fleet), 10), srv.logs()
        srv.signal(signal.SIGTERM)
        # Wait without blocking the loop: the probes must answer the closing handshakes.
        assert await wait_until(lambda: srv.proc.poll() is not None, 10)
        assert srv.proc.returncode == 0
        srv.close()
        again = server(port=srv.port, extra=("--retry-hint", "1500ms"))
        assert await wait_until(
            lambda: all(p.machine.reconnects == 1 for p in fleet.probes), 10), again.logs()
    finally:
        fleet.stop()
        result = await asyncio.wait_for(task, 10)
    losses = [r for r in records if r.state is State.LOST]
    assert len(losses) == COUNT and {r.code for r in losses} == {1001}
    assert result.value("reconnect_time.min") >= 1.5
    assert result.value("probes.gave_up") == 0
