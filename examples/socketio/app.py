"""A python-socketio service as teams write one: an ``update`` event ten times a second.

Each event's payload is ``{"seq": N, "ts": <unix seconds>}`` from one global counter;
clients that connect with ``auth={"room": ...}`` are not needed here — every client
gets every event. ``GET /health`` answers 200.

Run it: ``uvicorn app:app --port 8000`` (in this folder).
"""

from __future__ import annotations

import asyncio
import time

import socketio
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

sio = socketio.AsyncServer(async_mode="asgi", ping_interval=5, ping_timeout=5)
state: dict[str, object] = {"clients": 0}


async def produce() -> None:
    seq = 0
    while True:
        await asyncio.sleep(0.1)
        seq += 1
        await sio.emit("update", {"seq": seq, "ts": time.time()})


async def start_producing() -> None:
    state["task"] = asyncio.get_running_loop().create_task(produce())


@sio.event
async def connect(sid: str, environ: dict, auth: object = None) -> None:
    state["clients"] = int(state["clients"]) + 1  # type: ignore[call-overload]


@sio.event
async def disconnect(sid: str, reason: object = None) -> None:
    state["clients"] = int(state["clients"]) - 1  # type: ignore[call-overload]


async def health(_request: object) -> JSONResponse:
    return JSONResponse({"status": "ok", "clients": state["clients"]})


app = socketio.ASGIApp(sio, other_asgi_app=Starlette(routes=[Route("/health", health)]),
                       on_startup=start_producing)
