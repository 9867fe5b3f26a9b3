"""A bare websockets echo server (compression off): the floor to compare against.

Prints its URL on the first stdout line, like ``wsctl serve``; runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws: object) -> None:
    try:
        async for message in ws:  # type: ignore[attr-defined]
            await ws.send(message)  # type: ignore[attr-defined]
    except ConnectionClosed:
        pass


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"bare echo listening on ws://127.0.0.1:{port}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
