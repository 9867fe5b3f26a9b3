"""Client side of the capacity benchmark, run as its own process.

    python benchmarks/_clients.py URL N --concurrency C --hold SECONDS [--echo]

Opens N WebSocket connections (stream URL with {n} replaced by the index), at most C
handshakes in flight, offering permessage-deflate as browsers do. Each connection then
reads everything the server sends (with --echo it also sends one small message a second
and reads the echo). Prints JSON lines: {"event": "opened", ...} once all are open, then
{"event": "done", ...} after holding for SECONDS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

from websockets.asyncio.client import connect


async def reader(ws: object, counts: list[int]) -> None:
    try:
        async for _ in ws:  # type: ignore[attr-defined]
            counts[0] += 1
    except Exception:
        counts[1] += 1


async def echoer(ws: object, stop: asyncio.Event) -> None:
    try:
        while not stop.is_set():
            await ws.send('{"type":"ping","t":0}')  # type: ignore[attr-defined]
            await asyncio.sleep(1.0)
    except Exception:
        pass


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--echo", action="store_true")
    args = parser.parse_args()

    counts = [0, 0]  # messages received, readers that failed
    errors: dict[str, int] = {}
    conns: list[object] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    gate = asyncio.Semaphore(args.concurrency)
    handshake_times: list[float] = []

    async def open_one(i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            try:
                ws = await connect(args.url.replace("{n}", str(i)), open_timeout=30,
                                   ping_interval=None, max_queue=None)
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            handshake_times.append(time.perf_counter() - t0)
            conns.append(ws)
            tasks.append(asyncio.create_task(reader(ws, counts)))
            if args.echo:
                tasks.append(asyncio.create_task(echoer(ws, stop)))

    start = time.perf_counter()
    await asyncio.gather(*(open_one(i) for i in range(args.n)))
    elapsed = time.perf_counter() - start
    handshake_times.sort()
    print(json.dumps({
        "event": "opened", "open": len(conns), "seconds": elapsed,
        "rate": len(conns) / elapsed if elapsed else 0.0, "errors": errors,
        "handshake_p50": handshake_times[len(handshake_times) // 2] if handshake_times else None,
    }), flush=True)
    received_at_open = counts[0]
    await asyncio.sleep(args.hold)
    stop.set()
    print(json.dumps({
        "event": "done", "messages": counts[0] - received_at_open,
        "failed_readers": counts[1],
        "client_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }), flush=True)
    for ws in conns:
        ws.transport.abort()  # type: ignore[attr-defined]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
