"""Shared probe-test services: a python-socketio ASGI app under uvicorn on 127.0.0.1
port 0 (in this process), and the same kind of app as a child process that can be paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio as pysio
import uvicorn

# python-engineio advertises pingInterval in whole seconds (int(interval) * 1000): a
# shorter interval would be announced as 0, so the tests use the shortest honest one.
PING_INTERVAL = 1.0
PING_TIMEOUT = 0.5
TICK = 0.02
NAMESPACE = "/feed"


@dataclass
class Service:
    """The running server, what it saw, and its URL."""

    sio: pysio.AsyncServer
    url: str
    subscribed: list[Any] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)


class _Uvicorn(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    sio = pysio.AsyncServer(async_mode="asgi", ping_interval=PING_INTERVAL,
                            ping_timeout=PING_TIMEOUT, logger=False, engineio_logger=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    svc = Service(sio, f"ws://127.0.0.1:{sock.getsockname()[1]}")
    tasks: list[asyncio.Task[None]] = []

    @sio.on("connect", namespace=NAMESPACE)
    async def on_connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if not isinstance(auth, dict) or auth.get("token") != "s3cret":
            raise pysio.exceptions.ConnectionRefusedError("bad token")
        svc.sids.append(sid)

    @sio.on("subscribe", namespace=NAMESPACE)
    async def on_subscribe(sid: str, data: Any) -> None:
        svc.subscribed.append(data)

        async def ticks() -> None:
            seq = 0
            while True:
                seq += 1
                svc.sent.append(seq)
                await sio.emit("tick", {"seq": seq, "ts": time.time() * 1000}, to=sid,
                               namespace=NAMESPACE)
                if seq % 5 == 0:  # not a counted event
                    await sio.emit("status", {"ok": True}, to=sid, namespace=NAMESPACE)
                await asyncio.sleep(TICK)

        tasks.append(asyncio.get_running_loop().create_task(ticks()))

    config = uvicorn.Config(pysio.ASGIApp(sio), log_level="warning", lifespan="off",
                            access_log=False, ws="websockets-sansio")
    server = _Uvicorn(config)
    serving = asyncio.get_running_loop().create_task(server.serve([sock]))
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.005)
    try:
        yield svc
    finally:
        for task in tasks:
            task.cancel()
        server.should_exit = True
        await serving
        sock.close()


SERVER_SCRIPT = """
import asyncio, socket, sys
import socketio, uvicorn

sio = socketio.AsyncServer(async_mode="asgi", ping_interval={interval},
                           ping_timeout={timeout}, logger=False, engineio_logger=False)

@sio.on("connect", namespace="/feed")
async def connect(sid, environ, auth):
    async def ticks():
        seq = 0
        while True:
            seq += 1
            await sio.emit("tick", {{"seq": seq}}, to=sid, namespace="/feed")
            await asyncio.sleep(0.05)
    asyncio.get_running_loop().create_task(ticks())

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(socketio.ASGIApp(sio), log_level="warning", lifespan="off",
                        ws="websockets-sansio")
asyncio.run(uvicorn.Server(config).serve([sock]))
"""


@pytest.fixture
async def paused_service(tmp_path: Any) -> AsyncIterator[tuple[asyncio.subprocess.Process,
                                                                 str]]:
    script = tmp_path / "sio_app.py"
    script.write_text(SERVER_SCRIPT.format(interval=PING_INTERVAL, timeout=PING_TIMEOUT))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 20))
        yield process, f"ws://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
        await process.wait()


