"""A small team service for tests: plain ``websockets``, sequence-numbered pushes.

``python seq_server.py PORT [--workers N] [--interval S] [--log FILE]`` serves
``/ws/{stream}``: every connection gets ``{"seq": N, "ts": <wall s>}`` every ``interval``
seconds from one global counter, and ``GET /ws/health`` answers 200. With ``--workers``
the parent only starts N children on the same port (SO_REUSEPORT) and waits, like a
server with worker processes. ``--log`` appends every sequence number sent, one per line
as ``CONN SEQ``, so tests know the ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from http import HTTPStatus

from websockets.asyncio.server import broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--log", default=None)
    args = parser.parse_args()
    if args.workers:
        children = [subprocess.Popen([sys.executable, __file__, str(args.port),
                                      "--interval", str(args.interval)])
                    for _ in range(args.workers)]
        print(f"workers {[c.pid for c in children]}", flush=True)
        for child in children:
            child.wait()
        return
    asyncio.run(serve_forever(args.port, args.interval, args.log))


async def serve_forever(port: int, interval: float, log_path: str | None) -> None:
    clients: set = set()
    counter = itertools.count(1)
    log = open(log_path, "a", buffering=1) if log_path else None

    def health(connection, request):  # type: ignore[no-untyped-def]
        if request.path == "/ws/health":
            return Response(HTTPStatus.OK, "OK", Headers({"Content-Length": "2"}), b"ok")
        return None

    async def handler(ws):  # type: ignore[no-untyped-def]
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async def pump() -> None:
        while True:
            await asyncio.sleep(interval)
            seq = next(counter)
            message = json.dumps({"seq": seq, "ts": time.time()})
            if log is not None:
                for ws in clients:
                    log.write(f"{id(ws)} {seq}\n")
            broadcast(clients, message)

    async with serve(handler, "127.0.0.1", port, process_request=health,
                     reuse_port=True):
        print(f"listening on {port} pid {os.getpid()}", flush=True)
        await pump()


if __name__ == "__main__":
    main()
