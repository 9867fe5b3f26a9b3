"""A FastAPI service as teams write one: ``/ws/{client_id}`` pushes numbered events.

Every client receives ``{"seq": N, "ts": <unix seconds>, "data": {...}}`` for each event
of one global feed (10 a second). A client that reconnects with ``?since=N`` first gets
the events after N that the server still holds (the last 1,000), then the live feed.
``GET /ws/health`` answers 200 with the number of connected clients. A restart loses the
history: the sequence starts again at 1 (clients see a new generation).

Run it: ``uvicorn app:app --port 8000`` (in this folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

HISTORY = 1000
RATE = 10.0

clients: set[WebSocket] = set()
history: deque[dict] = deque(maxlen=HISTORY)


async def produce() -> None:
    seq = 0
    while True:
        await asyncio.sleep(1 / RATE)
        seq += 1
        event = {"seq": seq, "ts": time.time(), "data": {"kind": "progress", "step": seq}}
        history.append(event)
        for ws in list(clients):
            with contextlib.suppress(Exception):
                await ws.send_json(event)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    task = asyncio.create_task(produce())
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)


@app.get("/ws/health")
async def health() -> dict:
    return {"status": "ok", "clients": len(clients)}


@app.websocket("/ws/{client_id}")
async def feed(websocket: WebSocket, client_id: str, since: int | None = None) -> None:
    await websocket.accept()
    if since is not None:
        for event in list(history):
            if event["seq"] > since:
                await websocket.send_json(event)
    clients.add(websocket)
    try:
        while True:
            await websocket.receive_text()  # nothing expected; keeps the socket read
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)
