"""``frame_delay``: hold each whole WebSocket frame ``delay`` ± ``jitter`` ms after it arrived.

Unlike ``latency`` it never delays half a frame: a frame goes out in one piece.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsctl.chaos.faults.base import Chunk, Stub


@dataclass(frozen=True, slots=True)
class FrameDelay:
    delay: int = 0  # ms
    jitter: int = 0  # ms


async def run(config: FrameDelay, stub: Stub) -> None:
    while (chunk := await stub.get()) is not None:
        pieces = [Chunk(raw, chunk.arrived) for raw, _ in stub.split(chunk)]
        for i, piece in enumerate(pieces):
            delay = config.delay
            if config.jitter > 0:
                delay += stub.random.randint(-config.jitter, config.jitter)
            wait = delay / 1000 - (stub.clock.now() - piece.arrived)
            if wait > 0:
                stub.held = list(pieces[i:])
                await stub.clock.sleep(wait)
            stub.send(piece)
    stub.send(None)
