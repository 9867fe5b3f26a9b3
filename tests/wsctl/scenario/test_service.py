"""The team's service as a process wsctl owns: ready checks, signals to the whole group,
restarts on the same port, and clear errors when it will not start."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import connect

from wsctl.errors import InvalidInput, RunFailed
from wsctl.scenario import service as service_module
from wsctl.scenario.service import ReadyCheck, ServiceProcess, service_from

SERVER = str(Path(__file__).parents[2] / "services" / "seq_server.py")


def _service(tmp_path: Path, *extra: str, ready: str | None = "http://127.0.0.1:{port}/ws/health",
             **kw: object) -> ServiceProcess:
    spec = service_from([sys.executable, SERVER, "{port}", *extra],
                        "ws://127.0.0.1:{port}/ws/{stream}", ready, **kw)  # type: ignore[arg-type]
    return ServiceProcess(spec, tmp_path / "service.log")


async def _first_seq(url: str) -> int:
    async with asyncio.timeout(5):
        async with connect(url) as ws:
            import json

            return int(json.loads(await ws.recv())["seq"])


async def test_start_kill_and_start_again_on_the_same_port(tmp_path: Path) -> None:
    """{port} is chosen once; after SIGKILL the service starts again on that port."""
    svc = _service(tmp_path)
    try:
        await svc.start()
        port = svc.port
        assert port and str(port) in svc.url
        url = svc.url.replace("{stream}", "a")
        assert await _first_seq(url) >= 1
        pid = svc.pid()
        await svc.kill()
        assert svc.state == "stopped"
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        await svc.start()
        assert svc.port == port and svc.incarnations == 2
        assert await _first_seq(url) >= 1
    finally:
        svc.close()
    assert svc not in service_module.LIVE


async def test_signals_reach_every_process_of_the_group(tmp_path: Path) -> None:
    """With worker processes (a parent that only waits), pause stops every worker, and
    kill leaves no process of the tree behind."""
    svc = _service(tmp_path, "--workers", "2")
    try:
        await svc.start()
        group = svc._group()
        assert len(group) == 3  # the parent and its two workers
        pids = [p.pid for p in group]
        await svc.pause()
        assert all(psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in pids)
        with pytest.raises((TimeoutError, OSError)):
            async with asyncio.timeout(0.5):
                await _first_seq(svc.url.replace("{stream}", "a"))
        await svc.resume()
        assert await _first_seq(svc.url.replace("{stream}", "a")) >= 1
        rss = svc.rss()
        assert rss is not None and rss > sum(psutil.Process(pid).memory_info().rss
                                             for pid in pids[:1])
        await svc.kill()
        assert not [pid for pid in pids if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    finally:
        svc.close()


async def test_term_then_start_waits_for_the_exit(tmp_path: Path) -> None:
    """term sends the stop signal and returns; start waits until the old one is gone."""
    svc = _service(tmp_path, stop_signal="SIGINT")
    try:
        await svc.start()
        first = svc.pid()
        await svc.term()
        await svc.start()
        assert svc.pid() != first and svc.state == "running"
        assert svc.last_exit is not None
    finally:
        svc.close()


async def test_a_service_that_exits_is_a_clear_error(tmp_path: Path) -> None:
    """Exit before ready: the error names the command, the status and its last output."""
    spec = service_from([sys.executable, "-c", "import sys; print('boom: no config');"
                         " sys.exit(7)", "{port}"], "ws://127.0.0.1:{port}/",
                        "tcp://127.0.0.1:{port}")
    svc = ServiceProcess(spec, tmp_path / "s.log")
    with pytest.raises(RunFailed) as info:
        await svc.start()
    message = str(info.value)
    assert "exited with status 7" in message and "boom: no config" in message
    assert sys.executable in message
    assert svc not in service_module.LIVE


async def test_never_ready_times_out_and_is_stopped(tmp_path: Path) -> None:
    """A log regex that never matches: RunFailed after the timeout, process gone."""
    spec = service_from([sys.executable, SERVER, "{port}"], "ws://127.0.0.1:{port}/",
                        "log:this never appears", ready_timeout=1.0)
    svc = ServiceProcess(spec, tmp_path / "s.log")
    with pytest.raises(RunFailed, match="not ready after 1s"):
        await svc.start()
    assert svc.state == "stopped" and svc not in service_module.LIVE


async def test_log_ready_can_announce_the_port(tmp_path: Path) -> None:
    """A log regex's first group, when numeric, is the port the service chose."""
    port = service_module.free_port()
    spec = service_from([sys.executable, SERVER, str(port)], "ws://127.0.0.1:{port}/ws/x",
                        r"log:listening on (\d+)")
    svc = ServiceProcess(spec, tmp_path / "s.log")
    try:
        await svc.start()
        assert svc.port == port and svc.url == f"ws://127.0.0.1:{port}/ws/x"
    finally:
        svc.close()


def test_bad_ready_and_signal_are_invalid_input() -> None:
    """Ready checks and stop signals are validated before anything runs."""
    with pytest.raises(InvalidInput, match="http://"):
        ReadyCheck.parse("ftp://x")
    with pytest.raises(InvalidInput, match="not a signal"):
        service_from(["x"], "ws://h/", stop_signal="SIGNOPE")
    with pytest.raises(InvalidInput, match="empty"):
        service_from([], "ws://h/")
    with pytest.raises(InvalidInput, match="the url uses"):
        service_from(["node", "server.js"], "ws://127.0.0.1:{port}/")


async def test_kill_all_leaves_nothing(tmp_path: Path) -> None:
    """The last resort on the way out kills a paused group too."""
    svc = _service(tmp_path, "--workers", "1")
    await svc.start()
    pids = [p.pid for p in svc._group()]
    await svc.pause()
    service_module.kill_all()
    await asyncio.sleep(0.1)
    assert not [pid for pid in pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert os.getpgid(os.getpid()) != svc.pgid
