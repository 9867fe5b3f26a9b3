"""A push-only WebSocket service for bench tests, on 127.0.0.1 port 0 in a thread.

Once ``wait_for`` connections are open it sends ``{"seq": N, "ts": <wall s>}`` for N in
1..count, every ``interval`` seconds, to every open connection, leaving out the numbers
in ``skip`` (the counter still moves: a receiver sees a gap). It logs, per connection,
every number it sent (``sent``), and what each connection asked for (path, headers,
subprotocol, the first message it sent). ``drop_after``: every connection is aborted
(TCP closed, no close frame) that many seconds after it opened.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import State


class PushServer:
    def __init__(self, *, count: int = 40, interval: float = 0.02, skip: set[int] = frozenset(),
                 wait_for: int = 1, drop_after: float | None = None,
                 message: Callable[[int], str] | None = None) -> None:
        self.count = count
        self.interval = interval
        self.skip = set(skip)
        self.wait_for = wait_for
        self.drop_after = drop_after
        self.message = message or (lambda seq: json.dumps({"seq": seq, "ts": time.time()}))
        self.sent: dict[int, list[int]] = {}  # connection number -> numbers sent to it
        self.requests: list[dict[str, Any]] = []
        self.done = threading.Event()  # every number has been sent
        self.url = ""
        self._clients: dict[ServerConnection, int] = {}
        self._started = False
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> PushServer:
        self._thread.start()
        assert self._ready.wait(10), "push server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, subprotocols=None,
                         select_subprotocol=lambda conn, offered: offered[0] if offered
                         else None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws: ServerConnection) -> None:
        number = len(self.requests)
        record: dict[str, Any] = {"path": ws.request.path if ws.request else "",
                                  "headers": dict(ws.request.headers) if ws.request else {},
                                  "subprotocol": ws.subprotocol, "first": None}
        self.requests.append(record)
        self.sent[number] = []
        self._clients[ws] = number
        if len(self._clients) >= self.wait_for and not self._started:
            self._started = True
            asyncio.get_running_loop().create_task(self._pump())
        try:
            if self.drop_after is not None:
                await asyncio.sleep(self.drop_after)
                ws.transport.abort()
                return
            async for message in ws:
                if record["first"] is None:
                    record["first"] = message
        except Exception:
            pass
        finally:
            self._clients.pop(ws, None)

    async def _pump(self) -> None:
        for seq in range(1, self.count + 1):
            await asyncio.sleep(self.interval)
            if seq in self.skip:
                continue
            text = self.message(seq)
            for ws, number in list(self._clients.items()):
                if ws.state is State.OPEN:
                    ws.protocol.send_text(text.encode())
                    ws.send_data()
                    self.sent[number].append(seq)
        self.done.set()
