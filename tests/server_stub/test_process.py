"""The server as a real process: signals, graceful shutdown, port conflicts."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect

from tests.server_stub.helpers import closed_going_away, read_until_closed, recv_message
from wsctl import protocol as p


async def test_sigterm_closes_every_client_with_1001_and_exits_0(server_process):
    """SIGTERM: every client gets 1001 with a retry hint, and the process exits 0."""
    server = server_process("--job-rate", "20", "--retry-hint", "1500ms")
    clients = [await connect(f"{server.url}/ws/s{i}") for i in range(5)]
    for ws in clients:
        assert isinstance(await recv_message(ws), p.Welcome)
    t0 = time.monotonic()
    server.signal(signal.SIGTERM)
    await closed_going_away(clients, 1500, 5)
    assert await asyncio.to_thread(server.proc.wait, 10) == 0
    assert time.monotonic() - t0 < 5


async def test_sigint_is_graceful_too(server_process):
    """Ctrl-C (SIGINT) shuts down the same way: 1001, exit 0."""
    server = server_process()
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        server.signal(signal.SIGINT)
        await read_until_closed(ws, 5)
        assert ws.close_code == 1001
    assert await asyncio.to_thread(server.proc.wait, 10) == 0


def test_port_in_use_is_one_line_and_exit_3(server_process):
    """A second server on a taken port says so in one line and exits 3."""
    first = server_process()
    port = first.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "server_stub", "--port", port],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0
    assert "address already in use" in result.stderr and "Traceback" not in result.stderr


def _self_signed(tmp_path):
    """A throwaway certificate for 127.0.0.1, made with the openssl command."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def test_wss_with_certfile_and_keyfile(server_process, tmp_path):
    """--certfile/--keyfile serve wss://; a client trusting the cert gets a welcome."""
    import ssl

    cert, key = _self_signed(tmp_path)
    server = server_process("--certfile", str(cert), "--keyfile", str(key))
    assert server.url.startswith("wss://")
    context = ssl.create_default_context(cafile=str(cert))
    async with connect(f"{server.url}/ws/a", ssl=context) as ws:
        assert isinstance(await recv_message(ws), p.Welcome)


def test_unreadable_certificate_is_exit_2(tmp_path):
    """A certificate that cannot be loaded is bad input: one line, exit 2."""
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate")
    result = subprocess.run(
        [sys.executable, "-m", "server_stub", "--port", "0", "--certfile", str(bogus),
         "--keyfile", str(bogus)],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 2
    assert "cannot load TLS certificate" in result.stderr and "Traceback" not in result.stderr


async def test_json_log_has_one_line_per_connection_event(server_process):
    """--log-format json logs open (with resume outcome) and close (with code) as JSON lines."""
    import json

    server = server_process("--log-format", "json", "--log-level", "info")
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.proc.wait, 10) == 0
    records = [json.loads(line) for line in server.logs().splitlines()]
    messages = [r["msg"] for r in records]
    assert any(m.startswith("open id=1 ") and "resume=fresh" in m for m in messages)
    assert any(m.startswith("close id=1 ") and "code=1000" in m for m in messages)
    assert all({"ts", "level", "msg"} <= r.keys() for r in records)


def test_host_that_is_not_ours_is_bad_input():
    """--host naming no address of this machine is bad input: one line, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "server_stub", "--port", "0", "--host", "256.1.1.1"],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 2
    assert "--host" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "loop"), [
    ((), "uvloop"),
    (("--loop", "asyncio"), "asyncio"),
    (("--profile", "baseline"), "asyncio"),
    (("--profile", "baseline", "--loop", "uvloop"), "uvloop"),
])
async def test_event_loop_follows_profile_and_option(server_process, args, loop):
    """The reference profile runs on uvloop by default, baseline on asyncio's own loop,
    --loop overrides both; on every loop a client gets its welcome and a clean close."""
    server = server_process("--log-level", "info", *args)
    async with connect(f"{server.url}/ws/a") as ws:
        assert isinstance(await recv_message(ws), p.Welcome)
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.proc.wait, 10) == 0
    listening = next(line for line in server.logs().splitlines() if "listening on" in line)
    assert listening.endswith(f"loop={loop}")


def test_missing_uvloop_is_asyncio_for_auto_and_bad_input_when_asked(monkeypatch):
    """Without uvloop installed, --loop auto falls back to asyncio; --loop uvloop is an
    error that says how to install it."""
    from server_stub import ServerConfig
    from server_stub.main import event_loop
    from wsctl.errors import InvalidInput

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert event_loop(ServerConfig()) == "asyncio"
    with pytest.raises(InvalidInput, match="pip install uvloop"):
        event_loop(ServerConfig(loop="uvloop"))
    monkeypatch.undo()
    assert event_loop(ServerConfig()) == "uvloop"
    assert event_loop(ServerConfig(profile="baseline")) == "asyncio"
