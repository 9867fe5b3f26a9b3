"""The redis:// store with real server processes and a real redis-server: a SIGKILL and
restart loses nothing, two instances share streams (one producer each, a client moves to
the other instance and resumes exactly), and a Redis that goes away degrades /ws/health
without a crash."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.redisproc import RedisProcess, redis_server  # noqa: F401
from tests.server_stub.test_store_crash import Reader
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(90)
ARGS = ("--log-level", "warning", "--job-rate", "20", "--job-steps", "1000")


def start(redis: RedisProcess) -> ServerProcess:
    return ServerProcess("--store", redis.url, *ARGS)


def offsets(reader: Reader) -> list[int]:
    return [event["offset"] for run in reader.runs for event in run]


async def resume_all(readers: list[Reader], url: str, more: int) -> None:
    """Each reader resumes at ``url`` from its last offset and reads ``more`` events."""
    for reader in readers:
        reader.url = url
    await asyncio.wait_for(asyncio.gather(*(
        r.read(r.last, r.welcomes[-1]["epoch"], until=r.last + more) for r in readers)), 30)


def assert_exact(readers: list[Reader]) -> None:
    """Every resume was recovered under one epoch, and each reader got every offset from
    its first once, in order."""
    for reader in readers:
        got = offsets(reader)
        assert got == list(range(got[0], got[-1] + 1)), reader.stream
        assert all(w["recovered"] for w in reader.welcomes[1:]), reader.welcomes
        assert len({w["epoch"] for w in reader.welcomes}) == 1


async def test_sigkill_then_restart_resumes_exactly(redis_server: RedisProcess) -> None:  # noqa: F811
    """SIGKILL mid-stream, restart on the same Redis: every client resumes with
    recovered: true, the same epoch, and no offset lost or repeated."""
    server = start(redis_server)
    readers = [Reader(server.url, f"crash-{i}") for i in range(3)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.read(until=10) for r in readers)), 30)
        server.close()  # SIGKILL, then its log file is closed
        server = start(redis_server)
        await resume_all(readers, server.url, 10)
    finally:
        server.close()
    assert_exact(readers)


def producers(redis: RedisProcess, streams: list[str]) -> set[int]:
    """The pids of the instances holding the streams' producer leases."""
    import redis as redis_py

    client = redis_py.Redis(port=redis.port)
    try:
        tokens = [client.get(f"wsctl:{{{s}}}:lease") for s in streams]
    finally:
        client.close()
    return {int(t.decode().partition("-")[0]) for t in tokens if t}


async def test_two_instances_failover(redis_server: RedisProcess) -> None:  # noqa: F811
    """Two instances on one Redis: one producing instance per stream, and clients of both
    get the same events; after SIGKILL of the producing instance its clients resume on
    the other exactly (recovered, nothing lost or repeated) and the survivor produces."""
    servers = [start(redis_server), start(redis_server)]
    streams = [f"fleet-{i}" for i in range(4)]
    readers = [Reader(server.url, s) for server in servers for s in streams]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.read(until=15) for r in readers)), 30)
        (pid,) = producers(redis_server, streams)  # one instance produces them all
        victim = next(s for s in servers if s.proc.pid == pid)
        survivor = next(s for s in servers if s is not victim)
        moved = [r for r in readers if r.url == victim.url]
        stayed = [r for r in readers if r.url == survivor.url]
        victim.kill()
        killed = time.monotonic()
        await asyncio.gather(resume_all(moved, survivor.url, 10),
                             resume_all(stayed, survivor.url, 10))
        failover = time.monotonic() - killed
        after = producers(redis_server, streams)
    finally:
        for server in servers:
            server.close()
    assert_exact(readers)
    assert after == {survivor.proc.pid}
    print(f"failover: every client 10 events further {failover:.2f}s after SIGKILL")


def health(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.http}/ws/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def wait_health(server: ServerProcess, status: int, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        code, body = health(server)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        await asyncio.sleep(0.2)


async def wait_logged(server: ServerProcess, text: str, within: float) -> None:
    deadline = time.monotonic() + within
    while text not in server.logs():
        assert time.monotonic() < deadline, f"{text!r} not logged: {server.logs()}"
        await asyncio.sleep(0.1)


async def test_redis_going_away_degrades_health(redis_server: RedisProcess) -> None:  # noqa: F811
    """With Redis stopped the server stays up, logs a clear error and answers /ws/health
    503 degraded with the reason; when Redis is back it is healthy again and streams
    continue (under a new epoch: this Redis kept nothing)."""
    server = start(redis_server)
    reader = Reader(server.url, "outage")
    try:
        await asyncio.wait_for(reader.read(until=5), 30)
        redis_server.stop()
        body = await wait_health(server, 503, 10)
        assert body["status"] == "degraded" and "redis" in body["reason"]
        assert server.proc.poll() is None
        # The subscription's loss makes health degraded at once; the error that names
        # Redis unreachable comes with the first command that fails (an append, a lease
        # renewal), so Redis stays down until it has been logged.
        await wait_logged(server, "unreachable", 10)
        redis_server.start()
        await wait_health(server, 200, 15)
        fresh = Reader(server.url, "outage-2")
        await asyncio.wait_for(fresh.read(until=3), 30)
        logs = server.logs()
    finally:
        server.close()
    assert "redis" in logs and "unreachable" in logs and "answers again" in logs
    assert offsets(fresh)[:3] == [1, 2, 3]
