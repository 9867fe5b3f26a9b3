"""The driver's instants are taken in the I/O callback that sees them (real sockets)."""

import asyncio
import random
import struct
import time

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from wsctl.probe import Probe, ProbeConfig, ProbeMachine, ioclock
from wsctl.probe.driver import StampedConnection
from wsctl.probe.machine import Closed, Connected, PongReceived, Received, new_metrics

pytestmark = pytest.mark.timeout(30)

BUSY = 0.2  # how long the loop stays busy after each callback


class BusyAfterCallbacks(StampedConnection):
    """Keeps the loop busy right after each I/O callback, as a hundred other probes would:
    the task awaiting the event runs ``BUSY`` seconds after the bytes were read."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        time.sleep(BUSY)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        time.sleep(BUSY)


async def busy_connector(url: str, timeout: float):
    return await connect(url, create_connection=BusyAfterCallbacks, ping_interval=None,
                         open_timeout=timeout)


class Watched(ProbeMachine):
    """A machine that notes each event it gets with the instant the driver handed it over."""

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__(0, config, new_metrics(), random.Random(1), time.monotonic())
        self.seen: list[tuple[object, float]] = []

    def handle(self, event):
        self.seen.append((event, time.monotonic()))
        return super().handle(event)


async def run_until(config: ProbeConfig, wanted: type) -> list[tuple[object, float]]:
    """Run one probe over the busy connection until the machine gets a ``wanted`` event."""
    machine = Watched(config)
    probe = Probe(machine, busy_connector)
    task = asyncio.create_task(probe.run())
    for _ in range(300):
        await asyncio.sleep(0.01)
        if any(isinstance(event, wanted) for event, _ in machine.seen):
            break
    probe.request_stop()
    await task
    return machine.seen


async def test_open_frames_and_loss_carry_the_instant_their_bytes_arrived():
    """Connected, Received and Closed are stamped when the socket saw them, not BUSY later
    when the probe's task ran."""

    async def send_then_drop(ws):
        await ws.send("hello")
        await asyncio.sleep(0.3)
        ws.transport.abort()

    async with serve(send_then_drop, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen", duration=2.0,
                             heartbeat="off")
        seen = await run_until(config, Closed)
    lateness = {type(event).__name__: handled - event.at for event, handled in seen
                if isinstance(event, Connected | Received | Closed)}
    assert set(lateness) == {"Connected", "Received", "Closed"}
    for name, late in lateness.items():
        assert late >= BUSY * 0.9, f"{name} stamped when handled, not when it arrived"


async def test_protocol_pong_is_timed_at_its_arrival():
    """A protocol pong's rtt ends when the pong was read, not when the waiter's callback
    ran after a busy stretch."""
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen", duration=2.0,
                             heartbeat="protocol", heartbeat_interval=0.05,
                             heartbeat_timeout=1.0)
        seen = await run_until(config, PongReceived)
    pongs = [(event, handled) for event, handled in seen if isinstance(event, PongReceived)]
    assert pongs
    event, handled = pongs[0]
    assert handled - event.at >= BUSY * 0.9
    assert event.at - event.sent_at < BUSY / 2  # the rtt the machine records


class SlowLoss(StampedConnection):
    """Each ``connection_lost`` keeps the loop busy, as a hundred other probes' would."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        time.sleep(BUSY / 4)


def test_a_burst_of_resets_is_stamped_when_the_loop_learned_of_it():
    """Three connections reset at one instant: on the loop probes run on, each loss is
    stamped with the selector wake-up that reported the resets, not ``BUSY / 4`` later per
    loss handled before it (their ``connection_lost`` run one after the other)."""
    import socket

    async def main() -> tuple[float, list[float], float]:
        async def hold(ws):
            await ws.wait_closed()

        async with serve(hold, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            links = [await connect(f"ws://127.0.0.1:{port}/", create_connection=SlowLoss,
                                   ping_interval=None) for _ in range(3)]
            linger = struct.pack("ii", 1, 0)
            peers = [link.transport.get_extra_info("sockname") for link in links]
            conns = [c for c in server.connections
                     if c.transport.get_extra_info("peername") in peers]
            assert len(conns) == 3
            reset_at = time.monotonic()
            for conn in conns:  # RST, all in this one callback of the loop
                conn.transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, linger)
                conn.transport.abort()
            await asyncio.gather(*(link.wait_closed() for link in links))
            return reset_at, [link.lost_at for link in links], time.monotonic()

    reset_at, lost, done = ioclock.run(main())
    assert len(set(lost)) == 1, "one wake-up reported the three resets"
    assert reset_at <= lost[0] < reset_at + BUSY / 4
    assert done - reset_at >= 3 * BUSY / 4  # the losses were handled one after the other


def test_stamps_fall_back_to_the_callback_instant_off_a_wake_stamping_loop():
    """On any other loop (uvloop, a caller's own) there is no wake-up to read."""

    async def main() -> object:
        return ioclock.io_wake()

    assert asyncio.run(main()) is None
    assert isinstance(ioclock.run(main()), ioclock.WakeSelector)


def test_a_reply_read_in_the_iteration_that_sent_its_request_is_stamped_at_the_read():
    """The wake-up came before the request was written: a reply read in that same
    iteration cannot have arrived then, so it is stamped when it is read."""

    async def main() -> tuple[tuple[float, float], tuple[float, float], float]:
        protocol = ClientProtocol(parse_uri("ws://127.0.0.1:1/"))
        link = StampedConnection(protocol)
        wake = ioclock.io_wake()
        assert wake is not None
        before = link._now()
        link._sent_in = wake.woke_at  # as send_data notes it
        now = time.monotonic()
        return before, link._now(), now - wake.woke_at

    (before_at, _), (after_at, _), since_wake = ioclock.run(main())
    assert after_at > before_at
    assert after_at - before_at >= since_wake * 0.5
