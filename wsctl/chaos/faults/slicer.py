"""``slicer``: cut data into pieces of ``average_size`` ± ``size_variation`` bytes,
waiting ``delay`` microseconds after each (Toxiproxy's attributes and units)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from wsctl.chaos.faults.base import Chunk, InvalidAttribute, Stub


@dataclass(frozen=True, slots=True)
class Slicer:
    average_size: int = 1  # bytes
    size_variation: int = 0  # bytes, must be smaller than average_size
    delay: int = 0  # microseconds

    def validate(self) -> None:
        if self.average_size < 1:
            raise InvalidAttribute("average_size", "must be >= 1")
        if self.size_variation >= self.average_size:
            raise InvalidAttribute("size_variation", "must be smaller than average_size")


def cut_points(size: int, config: Slicer, rng: random.Random) -> list[int]:
    """Offsets that slice ``size`` bytes into evenly varying pieces: [0, a, b, ..., size]."""
    points = [0]
    stack = [(0, size)]
    while stack:  # depth-first, left half first, so points come out in order
        start, end = stack.pop()
        if (end - start) - config.average_size <= config.size_variation:
            points.append(end)
            continue
        shift = rng.randint(-config.size_variation, config.size_variation)
        mid = start + (end - start) // 2 + shift
        stack.append((mid, end))
        stack.append((start, mid))
    return points


async def run(config: Slicer, stub: Stub) -> None:
    while (chunk := await stub.get()) is not None:
        points = cut_points(len(chunk.data), config, stub.random)
        for i in range(1, len(points)):
            stub.send(Chunk(chunk.data[points[i - 1] : points[i]], chunk.arrived))
            if i < len(points) - 1:
                stub.held = [Chunk(chunk.data[points[i] :], chunk.arrived)]
            if config.delay:
                await stub.clock.sleep(config.delay / 1_000_000)
    stub.send(None)
