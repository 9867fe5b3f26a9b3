"""Coordinated-omission correction against a real 127.0.0.1 echo server that stalls once."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import serve

from wsctl.bench.engine import Engine
from wsctl.bench.plan import BenchPlan

STALL = 0.4  # seconds the server sits on one message
RATE = 50.0  # messages per second on the one connection
INTERVAL = 1 / RATE


async def test_stalled_server_counts_every_delayed_send() -> None:
    """A 400 ms stall delays the ~20 sends due during it. CO-corrected rtt times each from its
    intended instant (so about half of them are >= STALL/2: STALL/2 / INTERVAL = 10 samples),
    while the uncorrected rtt sees the stall in one sample only."""
    count = 0

    async def echo(ws) -> None:
        nonlocal count
        async for message in ws:
            count += 1
            if count == 20:
                await asyncio.sleep(STALL)
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        plan = BenchPlan(url=f"ws://127.0.0.1:{port}/", connections=1, connect_rate=10.0,
                         message_rate=RATE, duration=1.6, in_flight=1, drain=1.0)
        rec = await Engine(plan).run()
    threshold_us = STALL / 2 * 1e6
    corrected = sum(1 for v in rec.rtt if v >= threshold_us)
    uncorrected = sum(1 for v in rec.rtt_uncorrected if v >= threshold_us)
    predicted = int(STALL / 2 / INTERVAL)  # sends intended in the first half of the stall
    assert rec.sent >= 60 and rec.received == rec.sent
    assert predicted - 2 <= corrected <= predicted + 4, (corrected, predicted)
    assert uncorrected <= 2, uncorrected
    assert max(rec.rtt) >= STALL * 1e6
