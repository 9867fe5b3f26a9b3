"""Run the control API (uvicorn) and the proxies in one event loop.

``ChaosServer`` is what ``wsctl chaos serve`` and the scenario runner use: bind the API
socket (a clear ``PortInUse`` if taken), serve Starlette on uvicorn in the current loop,
and close every proxy on ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from wsctl.chaos.api import build_app, proxy_specs
from wsctl.chaos.model import DEFAULT_API, DEFAULT_MAX_CONNECTIONS, parse_address
from wsctl.chaos.proxy import Chaos
from wsctl.errors import InvalidInput, PortInUse, RunFailed, WsctlError


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handling: whoever embeds us owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(address: str, what: str = "API address") -> socket.socket:
    """A listening TCP socket on ``host:port``; ``PortInUse`` if the address is taken."""
    host, port = parse_address(address, what)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: the accepted sockets inherit it, and asyncio sets
    # TCP_NODELAY only on sockets whose proto says TCP. Without it uvicorn's separate
    # head and body writes met the client's delayed ACK: 44 ms per keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"{what} {address} is already in use") from None
        raise InvalidInput(f"can't listen on {what} {address}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def load_config(path: Path) -> list[Any]:
    """A Toxiproxy config file: a JSON array of proxies (``-config`` in toxiproxy-server)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"can't read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise InvalidInput(f"{path}: expected a JSON array of proxies")
    return data


class ChaosServer:
    """The API and its proxies, started and stopped together. Without ``chaos``, a new
    one whose proxies each hold at most ``max_connections`` connections (0 = no cap)."""

    def __init__(
        self, chaos: Chaos | None = None, api: str = DEFAULT_API, token: str | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.chaos = chaos or Chaos(max_connections=max_connections)
        self.api = api
        self.token = token
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def address(self) -> str:
        """``host:port`` the API really listens on (port 0 resolved)."""
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    async def populate(self, proxies: list[Any]) -> None:
        """Create the proxies of a config file (its JSON array); errors name the config."""
        try:
            await self.chaos.populate(proxy_specs(proxies))
        except WsctlError as exc:
            error = PortInUse if isinstance(exc, PortInUse) else InvalidInput
            raise error(f"config: {exc.message}") from None

    async def start(self) -> None:
        self._sock = bind(self.api)
        config = uvicorn.Config(
            build_app(self.chaos, self.token),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _Uvicorn(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve([self._sock]))
        while not self._server.started:
            if self._task.done():
                self._sock.close()
                raise RunFailed(f"the chaos API could not start on {self.api}")
            await asyncio.sleep(0.005)

    async def wait(self) -> None:
        """Until the API server stops."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        await self.chaos.close()
        if self._sock is not None:
            self._sock.close()

    async def __aenter__(self) -> ChaosServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
