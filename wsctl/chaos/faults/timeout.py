"""``timeout``: drop all data; close the connection after ``timeout`` ms (0: never).

With 0 the connection is a black hole until the fault is removed. Removing it after it
dropped bytes closes the connection: a stream with a hole in it is of no use to either
peer. (Toxiproxy closes on removal even when nothing was dropped.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from wsctl.chaos.faults.base import Stub


@dataclass(frozen=True, slots=True)
class Timeout:
    timeout: int = 0  # ms


async def run(config: Timeout, stub: Stub) -> None:
    deadline = stub.clock.now() + config.timeout / 1000 if config.timeout > 0 else None
    dropped = False
    try:
        while True:
            wait = None if deadline is None else deadline - stub.clock.now()
            if wait is not None and wait <= 0:
                stub.close()
                return
            try:
                chunk = await stub.get(wait)
            except TimeoutError:
                continue
            if chunk is None:
                stub.send(None)
                return
            stub.held = []  # dropped on the floor
            dropped = True
            stub.applied()
    except asyncio.CancelledError:
        if dropped:
            stub.close()
        raise
