"""``latency``: delay every chunk by ``latency`` ± ``jitter`` ms (Toxiproxy's semantics).

Time a chunk already spent in earlier faults counts towards its delay.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsctl.chaos.faults.base import Stub


@dataclass(frozen=True, slots=True)
class Latency:
    latency: int = 0  # ms
    jitter: int = 0  # ms, uniform in [-jitter, +jitter]


async def run(config: Latency, stub: Stub) -> None:
    while (chunk := await stub.get()) is not None:
        delay = config.latency
        if config.jitter > 0:
            delay += stub.random.randint(-config.jitter, config.jitter)
        wait = delay / 1000 - (stub.clock.now() - chunk.arrived)
        if wait > 0:
            await stub.clock.sleep(wait)
        stub.send(chunk)
    stub.send(None)
