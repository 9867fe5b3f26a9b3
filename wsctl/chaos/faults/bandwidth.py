"""``bandwidth``: pass data at no more than ``rate`` KB/s (1 KB = 1000 bytes), like Toxiproxy.

Chunks larger than 100 ms worth of data go out in 100 ms slices, so a slow rate
trickles rather than stalls. ``rate`` 0 means unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsctl.chaos.faults.base import Chunk, Stub


@dataclass(frozen=True, slots=True)
class Bandwidth:
    rate: int = 0  # KB/s


async def run(config: Bandwidth, stub: Stub) -> None:
    bytes_per_second = config.rate * 1000
    slice_size = config.rate * 100  # 100 ms worth
    free_at = stub.clock.now()  # when the virtual wire is free again
    while (chunk := await stub.get()) is not None:
        if bytes_per_second <= 0:
            stub.send(chunk)
            continue
        data = chunk.data
        while data:
            piece, data = data[:slice_size], data[slice_size:]
            free_at = max(free_at, stub.clock.now()) + len(piece) / bytes_per_second
            stub.held = [Chunk(piece + data, chunk.arrived)]
            await stub.clock.sleep(free_at - stub.clock.now())
            stub.send(Chunk(piece, chunk.arrived))
    stub.send(None)
