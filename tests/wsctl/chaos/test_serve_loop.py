"""``wsctl chaos serve --loop``: which event loop the proxy runs on, and that it relays."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsctl.errors import InvalidInput
from wsctl.runtime import loop_factory


def test_loop_factory_names() -> None:
    """asyncio is asyncio's own loop; auto and uvloop are uvloop where it is installed."""
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("asyncio") is None
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("auto") is uvloop.new_event_loop
    with pytest.raises(InvalidInput, match="choose auto, asyncio or uvloop"):
        loop_factory("trio")


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without uvloop, auto is asyncio's own loop and an explicit uvloop is InvalidInput."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory("auto") is None
    with pytest.raises(InvalidInput, match="pip install uvloop"):
        loop_factory("uvloop")


@pytest.fixture
def tcp_echo_port() -> Iterator[int]:
    """The port of a one-connection TCP echo server in its own process."""
    code = (
        "import socket,sys\n"
        "s=socket.create_server(('127.0.0.1',0));print(s.getsockname()[1],flush=True)\n"
        "c,_=s.accept()\n"
        "while d:=c.recv(65536): c.sendall(d)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    yield int(proc.stdout.readline())
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serve_runs_on_the_chosen_loop_and_relays(
    loop: str, tcp_echo_port: int, tmp_path: Path
) -> None:
    """``serve --loop X`` says it runs on X, and bytes go through its proxy and back."""
    pytest.importorskip("uvloop")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{s.getsockname()[1]}"
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "p", "listen": listen,
                                   "upstream": f"127.0.0.1:{tcp_echo_port}"}]))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from wsctl.cli.main import run; run()", "chaos", "serve",
         "--api", "127.0.0.1:0", "--config", str(config), "--loop", loop],
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"loop: {loop}" in line, line
        host, port = listen.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as client:
            deadline = time.monotonic() + 5
            client.sendall(b"x" * 100_000)
            got = b""
            while len(got) < 100_000 and time.monotonic() < deadline:
                got += client.recv(65536)
        assert got == b"x" * 100_000
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
