"""Fault coroutines on a fake clock: exact virtual instants, no sockets, no waiting."""

from __future__ import annotations

import asyncio
import random

from wsctl.chaos.faults import FAULTS, Chunk
from wsctl.clock import FakeClock


class FakeStub:
    """The ``Stub`` interface over a queue, recording what is sent and when."""

    def __init__(self, clock: FakeClock, direction: str = "downstream") -> None:
        self.clock = clock
        self.random = random.Random(0)
        self.direction = direction
        self.held: list[Chunk | None] = []
        self.queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        self.sent: list[tuple[float, bytes | None]] = []
        self.ended: list[tuple[float, str]] = []

    async def get(self, timeout: float | None = None) -> Chunk | None:
        if timeout is None or not self.queue.empty():
            item = await self.queue.get()
        else:
            getter = asyncio.ensure_future(self.queue.get())
            sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
            await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                raise TimeoutError
            sleeper.cancel()
            item = getter.result()
        self.held = [item]
        return item

    def send(self, item: Chunk | None) -> None:
        self.held = []
        self.sent.append((self.clock.now(), None if item is None else item.data))

    def split(self, chunk: Chunk) -> list[tuple[bytes, None]]:  # pragma: no cover
        raise AssertionError("TCP faults never split frames")

    def at_frame_boundary(self) -> bool:  # pragma: no cover
        return False

    def close(self) -> None:
        self.ended.append((self.clock.now(), "close"))

    def reset(self) -> None:
        self.ended.append((self.clock.now(), "reset"))

    def applied(self) -> None:
        pass


async def start(
    kind: str, attributes: dict[str, int]
) -> tuple[FakeClock, FakeStub, asyncio.Task[None]]:
    clock = FakeClock()
    stub = FakeStub(clock)
    spec = FAULTS[kind]
    task = asyncio.create_task(spec.run(spec.parse(attributes), stub))
    await clock.advance(0)
    return clock, stub, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_latency_sends_at_arrival_plus_latency() -> None:
    """latency 100 ms: a chunk that arrived at 0 leaves at 0.1; one 30 ms old leaves at 0.07."""
    clock, stub, task = await start("latency", {"latency": 100})
    stub.queue.put_nowait(Chunk(b"a", arrived=0.0))
    await clock.advance(0.2)
    stub.queue.put_nowait(Chunk(b"b", arrived=clock.now() - 0.03))
    await clock.advance(0.2)
    assert stub.sent == [(0.1, b"a"), (0.27, b"b")]
    await stop(task)


async def test_bandwidth_paces_bytes_at_rate() -> None:
    """rate 100 KB/s: 2,500 bytes then 2,500 more leave at 25 ms and 50 ms."""
    clock, stub, task = await start("bandwidth", {"rate": 100})
    stub.queue.put_nowait(Chunk(b"x" * 2500, 0.0))
    stub.queue.put_nowait(Chunk(b"y" * 2500, 0.0))
    await clock.advance(1.0)
    assert [(round(t, 6), len(d or b"")) for t, d in stub.sent] == [(0.025, 2500), (0.05, 2500)]
    await stop(task)


async def test_bandwidth_slices_big_chunks_every_100ms() -> None:
    """rate 10 KB/s: a 3,500-byte chunk goes out as 1,000-byte slices 100 ms apart."""
    clock, stub, task = await start("bandwidth", {"rate": 10})
    stub.queue.put_nowait(Chunk(b"z" * 3500, 0.0))
    await clock.advance(1.0)
    got = [(round(t, 6), len(d or b"")) for t, d in stub.sent]
    assert got == [(0.1, 1000), (0.2, 1000), (0.3, 1000), (0.35, 500)]
    await stop(task)


async def test_timeout_closes_exactly_at_timeout_and_drops_data() -> None:
    """timeout 1000 ms: data is dropped and the connection is closed at exactly 1.0 s."""
    clock, stub, task = await start("timeout", {"timeout": 1000})
    stub.queue.put_nowait(Chunk(b"lost", 0.0))
    await clock.advance(0.999)
    assert stub.ended == [] and stub.sent == []
    await clock.advance(0.001)
    assert stub.ended == [(1.0, "close")] and stub.sent == []
    await stop(task)


async def test_slow_close_holds_eof_for_delay() -> None:
    """slow_close 500 ms: data passes at once, the EOF 0.5 s after it arrived."""
    clock, stub, task = await start("slow_close", {"delay": 500})
    stub.queue.put_nowait(Chunk(b"bye", 0.0))
    stub.queue.put_nowait(None)
    await clock.advance(0.499)
    assert stub.sent == [(0.0, b"bye")]
    await clock.advance(0.001)
    assert stub.sent == [(0.0, b"bye"), (0.5, None)]
    await task


async def test_reset_peer_waits_for_data_then_timeout() -> None:
    """reset_peer 200 ms: nothing happens before data; RST 0.2 s after the first chunk."""
    clock, stub, task = await start("reset_peer", {"timeout": 200})
    await clock.advance(5)
    assert stub.ended == []
    stub.queue.put_nowait(Chunk(b"x", clock.now()))
    await clock.advance(0.2)
    assert stub.ended == [(5.2, "reset")] and stub.sent == []
    await task


async def test_slicer_waits_delay_between_slices() -> None:
    """slicer 10±0 bytes, 1,000 us: 40 bytes leave as 4 slices, 1 ms apart."""
    clock, stub, task = await start(
        "slicer", {"average_size": 10, "size_variation": 0, "delay": 1000}
    )
    stub.queue.put_nowait(Chunk(b"a" * 10 + b"b" * 10 + b"c" * 10 + b"d" * 10, 0.0))
    await clock.advance(0.01)
    assert [(round(t, 6), d) for t, d in stub.sent] == [
        (0.0, b"a" * 10),
        (0.001, b"b" * 10),
        (0.002, b"c" * 10),
        (0.003, b"d" * 10),
    ]
    await stop(task)


async def test_limit_data_truncates_then_closes() -> None:
    """limit_data 5 bytes: the first 5 bytes pass, then the connection is closed."""
    clock, stub, task = await start("limit_data", {"bytes": 5})
    stub.queue.put_nowait(Chunk(b"abc", 0.0))
    stub.queue.put_nowait(Chunk(b"defgh", 0.0))
    await clock.advance(0)
    await task
    assert [d for _, d in stub.sent] == [b"abc", b"de"] and stub.ended == [(0.0, "close")]
