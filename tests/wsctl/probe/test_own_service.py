"""Probes with a protocol block against real team-style services on 127.0.0.1 port 0:
loss, duplicates and resyncs against ground truth, and criteria on what a mode cannot
measure judged ERROR, never PASS.

Services: a plain ``websockets`` feed the test pushes by hand (exact ranges), the
``seq_server.py`` process (killed and restarted), a Starlette app under uvicorn with a
``?since=`` resume, and python-socketio apps (conftest). Connections are cut with wsctl's
chaos proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.server import ServerConnection, serve

from tests.serverproc import ServerProcess
from tests.wsctl.probe.conftest import NAMESPACE, PING_INTERVAL, PING_TIMEOUT, Service
from wsctl.backoff import BackoffPolicy
from wsctl.chaos import Chaos
from wsctl.metrics import Result
from wsctl.probe import Fleet, ProbeConfig, State
from wsctl.probe.dialect import parse
from wsctl.probe.driver import websockets_connector
from wsctl.probe.machine import Record
from wsctl.probe.sanity import measurement_problem
from wsctl.results.criteria import judge
from wsctl.results.criteria import parse as criterion

pytestmark = pytest.mark.timeout(90)

FAST = BackoffPolicy(kind="exponential", base=0.05, cap=0.2, fast=0.05)
SEQ_SERVER = Path(__file__).parents[2] / "services" / "seq_server.py"


async def wait_until(predicate: Any, timeout: float = 15.0, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(step)


def received(fleet: Fleet) -> int:
    return fleet.metrics.counters["messages.received"]


def is_open(fleet: Fleet) -> bool:
    return bool(fleet.probes) and fleet.probes[0].machine.state is State.OPEN


class Feed:
    """A ``websockets`` service that pushes ``{"seq": N, "ts": t}`` to every client only
    when the test says so, keeps its history, replays it after ``?since=N``, and can
    "restart" (close everyone with 1012, count from 1 again)."""

    def __init__(self) -> None:
        self.clients: set[ServerConnection] = set()
        self.history: list[str] = []
        self.next = 1
        self.delivered: list[int] = []  # written to some client (ground truth)

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        since = parse_qs(urlsplit(ws.request.path).query).get("since")
        if since:
            for message in self.history[int(since[0]):]:
                await ws.send(message)
        self.clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            self.clients.discard(ws)

    async def push(self, count: int) -> None:
        for _ in range(count):
            message = json.dumps({"seq": self.next, "ts": time.time()})
            self.history.append(message)
            for ws in list(self.clients):
                await ws.send(message)
                self.delivered.append(self.next)
            self.next += 1

    async def restart(self) -> None:
        self.history.clear()
        self.next = 1
        for ws in list(self.clients):
            await ws.close(1012, "restarting")


@pytest.fixture
async def feed() -> AsyncIterator[tuple[Feed, Any]]:
    """The feed behind a chaos proxy: (feed, proxy); probes connect to the proxy."""
    service = Feed()
    async with serve(service.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        chaos = Chaos()
        proxy = await chaos.create(name="feed", listen="127.0.0.1:0",
                                   upstream=f"127.0.0.1:{port}")
        try:
            yield service, proxy
        finally:
            await chaos.close()


def listen_config(proxy: Any, block: dict[str, Any] | None, **kwargs: Any) -> ProbeConfig:
    return ProbeConfig(f"ws://{proxy.listen}/ws/{{stream}}", mode="listen", backoff=FAST,
                       dialect=parse(block) if block is not None else None,
                       stream="feed-{n}", heartbeat="off", **kwargs)


async def cut_and_push(feed: Feed, proxy: Any, fleet: Fleet, while_away: int) -> None:
    """Cut the probe's connection at the proxy, push ``while_away`` numbers nobody gets,
    and let it reconnect."""
    await proxy.stop()
    await wait_until(lambda: not feed.clients and not is_open(fleet))
    await feed.push(while_away)
    await proxy.start()
    await wait_until(lambda: feed.clients and is_open(fleet))


async def run_feed_scenario(feed: Feed, proxy: Any, block: dict[str, Any] | None
                            ) -> Result:
    """Push 1-10, cut while 11-20 are pushed, push 21-30: the exact range 11-20 is what a
    listener without a resume never gets."""
    fleet = Fleet(listen_config(proxy, block), 1, seed=1, spawn_rate=None)
    run = asyncio.create_task(fleet.run())
    await wait_until(lambda: feed.clients and is_open(fleet))
    await feed.push(10)
    await wait_until(lambda: received(fleet) >= 10)
    await cut_and_push(feed, proxy, fleet, 10)
    await feed.push(10)
    await wait_until(lambda: fleet.metrics.counters["messages.received"] >= 20 + (
        10 if block and block.get("resume") else 0))
    fleet.stop()
    return await run


async def test_listen_without_sequence_cannot_pass_messages_lost(feed):
    """The issue's false PASS: listen mode, a server that skipped 10 numbers while the
    probe was away; without a sequence, messages.lost == 0 is ERROR saying what to set,
    never PASS."""
    service, proxy = feed
    result = await run_feed_scenario(service, proxy, None)
    assert result.metrics.counters["messages.received"] == 20
    verdict = judge(criterion("messages.lost", "== 0"), result)
    assert verdict.status == "error"
    assert "protocol.sequence" in verdict.message
    for key in ("messages.duplicated", "resyncs"):
        assert judge(criterion(key, "== 0"), result).status == "error"
    assert judge(criterion("delivery_latency.p99", "< 1s"), result).status == "error"
    assert judge(criterion("messages.sent", "== 0"), result).status == "error"


async def test_listen_with_sequence_fails_messages_lost_with_the_exact_count(feed):
    """The same run with protocol.sequence: seq: FAIL with exactly the 10 numbers pushed
    while the probe was away, none duplicated; latency from the ts field."""
    service, proxy = feed
    result = await run_feed_scenario(service, proxy, {"sequence": "seq", "timestamp": "ts"})
    verdict = judge(criterion("messages.lost", "== 0"), result)
    assert (verdict.status, verdict.measured) == ("fail", 10)
    never_delivered = set(range(1, 31)) - set(service.delivered)
    assert never_delivered == set(range(11, 21))  # the ground truth: 11-20
    counters = result.metrics.counters
    assert (counters["messages.duplicated"], counters["messages.reordered"],
            counters["resyncs"]) == (0, 0, 0)
    assert result.value("delivery_latency.count") == 20
    assert judge(criterion("delivery_latency.p99", "< 5s"), result).status == "pass"


async def test_resume_query_recovers_the_gap_and_times_resume_time(feed):
    """With resume: {query: since={last_seq}} the service replays 11-20 on reconnect:
    nothing lost or duplicated, every number received once, one resume_time."""
    service, proxy = feed
    result = await run_feed_scenario(service, proxy, {
        "sequence": "seq", "resume": {"query": "since={last_seq}"}})
    counters = result.metrics.counters
    assert (counters["messages.received"], counters["messages.lost"],
            counters["messages.duplicated"]) == (30, 0, 0)
    assert result.value("resume_time.count") == 1
    assert judge(criterion("resume_time.max", "< 5s"), result).status == "pass"


async def test_restart_is_one_resync_and_the_old_generations_holes_are_lost(feed):
    """1-10, a cut while 11-20 go out, 21-25, then the service restarts and counts from 1:
    one resync, the 10 old holes lost, nothing duplicated."""
    service, proxy = feed
    fleet = Fleet(listen_config(proxy, {"sequence": "seq"}), 1, seed=1, spawn_rate=None)
    run = asyncio.create_task(fleet.run())
    await wait_until(lambda: service.clients and is_open(fleet))
    await service.push(10)
    await wait_until(lambda: received(fleet) >= 10)
    await cut_and_push(service, proxy, fleet, 10)
    await service.push(5)
    await wait_until(lambda: received(fleet) >= 15)
    await service.restart()
    await wait_until(lambda: service.clients and is_open(fleet)
                     and fleet.probes[0].machine.reconnects == 2)
    await service.push(5)
    await wait_until(lambda: received(fleet) >= 20)
    fleet.stop()
    result = await run
    counters = result.metrics.counters
    assert (counters["resyncs"], counters["messages.lost"],
            counters["messages.duplicated"]) == (1, 10, 0)


# The seq_server process: a real kill and restart ---------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_seq_server(port: int, log: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(SEQ_SERVER), str(port), "--interval",
                             "0.02", "--log", str(log)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "listening" in proc.stdout.readline()
    return proc


class Recording:
    """A connector that keeps, per connection, every sequence number the probe received:
    the client-side ground truth."""

    def __init__(self) -> None:
        self.connections: list[list[int]] = []
        self._connect = websockets_connector()

    async def __call__(self, url: str, timeout: float, **kwargs: Any) -> Any:
        link = await self._connect(url, timeout, **kwargs)
        numbers: list[int] = []
        self.connections.append(numbers)
        recv = link.recv

        async def recording_recv() -> Any:
            frame = await recv()
            numbers.append(json.loads(frame)["seq"])
            return frame

        link.recv = recording_recv
        return link


async def test_seq_server_killed_and_restarted_is_one_resync_with_exact_loss(tmp_path):
    """SIGKILL the service and start it again on the same port: its count restarts, one
    resync; lost is exactly the holes in what the first generation delivered; every
    number received was one the server logged as sent."""
    port, log = free_port(), tmp_path / "sent.log"
    servers = [start_seq_server(port, log)]
    recording = Recording()
    config = ProbeConfig(f"ws://127.0.0.1:{port}/ws/a", mode="listen", backoff=FAST,
                         heartbeat="off", dialect=parse({"sequence": "seq"}))
    fleet = Fleet(config, 1, seed=1, connector=recording, spawn_rate=None)
    run = asyncio.create_task(fleet.run())
    try:
        await wait_until(lambda: received(fleet) >= 20)
        servers[0].kill()
        servers[0].wait()
        servers.append(start_seq_server(port, log))
        await wait_until(lambda: fleet.metrics.counters["resyncs"] == 1)
        await wait_until(lambda: len(recording.connections[-1]) >= 20)
        fleet.stop()
        result = await run
    finally:
        for server in servers:
            server.kill()
            server.wait()
            assert server.stdout is not None
            server.stdout.close()
    first = [n for conn in recording.connections[:-1] for n in conn]
    holes = set(range(min(first), max(first) + 1)) - set(first)
    counters = result.metrics.counters
    assert (counters["resyncs"], counters["messages.duplicated"]) == (1, 0)
    assert counters["messages.lost"] == len(holes)
    assert counters["messages.received"] == sum(map(len, recording.connections))
    logged = {int(line.split()[1]) for line in log.read_text().split("\n") if line}
    assert set(first) | set(recording.connections[-1]) <= logged


# A Starlette app under uvicorn with ?since= ----------------------------------------------


class _Uvicorn(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


class StarletteFeed:
    """A Starlette ``/ws/{client_id}`` endpoint as teams write one: a global feed every
    20 ms, the last 1,000 kept, ``?since=N`` replays after N; what it wrote to each
    connection is logged."""

    def __init__(self) -> None:
        self.clients: set[WebSocket] = set()
        self.history: list[dict[str, Any]] = []
        self.sent: dict[int, list[int]] = {}

    async def produce(self) -> None:
        seq = 0
        while True:
            await asyncio.sleep(0.02)
            seq += 1
            event = {"seq": seq, "ts": time.time() * 1000, "data": {"step": seq}}
            self.history = [*self.history[-999:], event]
            for ws in list(self.clients):
                with contextlib.suppress(Exception):
                    await ws.send_json(event)
                    self.sent.setdefault(id(ws), []).append(seq)

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        since = websocket.query_params.get("since")
        if since is not None:
            for event in list(self.history):
                if event["seq"] > int(since):
                    await websocket.send_json(event)
                    self.sent.setdefault(id(websocket), []).append(event["seq"])
        self.clients.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.discard(websocket)


@pytest.fixture
async def starlette_feed() -> AsyncIterator[tuple[StarletteFeed, Any]]:
    service = StarletteFeed()
    app = Starlette(routes=[WebSocketRoute("/ws/{client_id}", service.endpoint)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = _Uvicorn(uvicorn.Config(app, log_level="warning", lifespan="off",
                                     access_log=False, ws="websockets-sansio"))
    serving = asyncio.create_task(server.serve([sock]))
    producing = asyncio.create_task(service.produce())
    chaos = Chaos()
    proxy = await chaos.create(name="app", listen="127.0.0.1:0",
                               upstream=f"127.0.0.1:{sock.getsockname()[1]}")
    try:
        yield service, proxy
    finally:
        await chaos.close()
        producing.cancel()
        server.should_exit = True
        await serving
        sock.close()


async def starlette_run(service: StarletteFeed, proxy: Any, block: dict[str, Any],
                        recording: Recording) -> Result:
    config = ProbeConfig(f"ws://{proxy.listen}/ws/{{stream}}", mode="listen", backoff=FAST,
                         heartbeat="off", dialect=parse(block), stream="client-{n}")
    fleet = Fleet(config, 1, seed=1, connector=recording, spawn_rate=None)
    run = asyncio.create_task(fleet.run())
    await wait_until(lambda: received(fleet) >= 10)
    await proxy.stop()
    await wait_until(lambda: not service.clients and not is_open(fleet))
    await asyncio.sleep(0.3)  # ~15 events go out while the probe is away
    await proxy.start()
    await wait_until(lambda: is_open(fleet) and len(recording.connections) == 2
                     and len(recording.connections[1]) >= 10)
    fleet.stop()
    return await run


async def test_starlette_app_without_resume_loses_exactly_what_it_did_not_deliver(
        starlette_feed):
    """Cut for ~0.3 s: lost equals the numbers between the first and last received that
    never arrived, which include every number the app produced while no connection of
    the probe existed."""
    service, proxy = starlette_feed
    recording = Recording()
    result = await starlette_run(service, proxy, {"sequence": "seq", "timestamp": "ts"},
                                 recording)
    got = [n for conn in recording.connections for n in conn]
    holes = set(range(min(got), max(got) + 1)) - set(got)
    sent_to_probe = {n for numbers in service.sent.values() for n in numbers}
    never_sent = set(range(min(got), max(got) + 1)) - sent_to_probe
    assert len(never_sent) >= 5 and never_sent <= holes
    counters = result.metrics.counters
    assert counters["messages.lost"] == len(holes)
    assert (counters["messages.duplicated"], counters["resyncs"]) == (0, 0)
    assert result.value("delivery_latency.count") == len(got)


async def test_starlette_app_with_since_resume_loses_nothing(starlette_feed):
    """The same cut with resume: {query: {since: "{last_seq}"}}: the app replays the gap,
    so nothing is lost or duplicated and resume_time is measured once."""
    service, proxy = starlette_feed
    recording = Recording()
    result = await starlette_run(service, proxy, {
        "sequence": "seq", "resume": {"query": {"since": "{last_seq}"}}}, recording)
    got = [n for conn in recording.connections for n in conn]
    assert sorted(got) == list(range(min(got), max(got) + 1))  # ground truth: no hole
    counters = result.metrics.counters
    assert (counters["messages.lost"], counters["messages.duplicated"]) == (0, 0)
    assert result.value("resume_time.count") == 1


# Socket.IO ------------------------------------------------------------------------------

SIO_BLOCK = {"adapter": "socketio", "sequence": "seq", "timestamp": "ts",
             "on_open": [["subscribe", {"channel": "{stream}"}]],
             "socketio": {"namespace": NAMESPACE, "events": ["tick"],
                          "auth": {"token": "s3cret"}}}


def sio_fleet(url: str, records: list[Record], block: dict[str, Any] = SIO_BLOCK) -> Fleet:
    config = ProbeConfig(url, mode="listen", backoff=FAST, dialect=parse(block),
                         stream="alert-{n}")
    return Fleet(config, 1, seed=1, sink=records.extend, spawn_rate=None)


async def test_socketio_events_are_received_sequenced_and_timed(service: Service):
    """Through the probe: namespace joined with auth, on_open emitted, tick events counted
    (status events not), in order with none lost, delivery latency from the ms ts; the
    connection outlives several ping intervals."""
    records: list[Record] = []
    fleet = sio_fleet(service.url, records)
    run = asyncio.create_task(fleet.run())
    await asyncio.sleep(3 * PING_INTERVAL)
    fleet.stop()
    result = await run
    assert service.subscribed == [{"channel": "alert-0"}]
    counters = result.metrics.counters
    assert counters["messages.received"] >= 30
    assert (counters["messages.lost"], counters["messages.duplicated"],
            counters["messages.invalid"], counters["connections.lost"]) == (0, 0, 0, 0)
    assert result.value("delivery_latency.count") == counters["messages.received"]
    assert result.value("delivery_latency.p99") < 2
    assert measurement_problem(result) is None


async def test_socketio_server_disconnect_is_recorded_and_the_probe_comes_back(
        service: Service):
    """sio.disconnect(sid): the probe records 'io server disconnect', reconnects, and the
    new session's count from 1 is one resync, nothing lost."""
    records: list[Record] = []
    fleet = sio_fleet(service.url, records)
    run = asyncio.create_task(fleet.run())
    await wait_until(lambda: received(fleet) >= 5)
    await service.sio.disconnect(service.sids[0], namespace=NAMESPACE)
    await wait_until(lambda: len(service.sids) == 2 and received(fleet) >= 15)
    fleet.stop()
    result = await run
    lost = [r for r in records if r.state is State.LOST]
    assert [r.reason for r in lost] == ["io server disconnect"]
    counters = result.metrics.counters
    assert (counters["resyncs"], counters["messages.lost"]) == (1, 0)


async def test_socketio_paused_server_detected_within_ping_interval_plus_timeout(
        paused_service):
    """SIGSTOP the Socket.IO server process: the probe reports 'ping timeout' no later
    than pingInterval + pingTimeout after the pause (the last ping was before it)."""
    process, url = paused_service
    records: list[Record] = []
    block = {"adapter": "socketio", "sequence": "seq", "socketio": {"namespace": NAMESPACE}}
    fleet = sio_fleet(url, records, block)
    run = asyncio.create_task(fleet.run())
    await wait_until(lambda: received(fleet) >= 3)
    process.send_signal(signal.SIGSTOP)
    paused_at = time.monotonic()
    await wait_until(lambda: any(r.state is State.LOST for r in records), timeout=10)
    process.send_signal(signal.SIGCONT)
    fleet.stop()
    await run
    [lost] = [r for r in records if r.state is State.LOST]
    assert lost.reason == "ping timeout"
    assert 0 < lost.at - paused_at <= PING_INTERVAL + PING_TIMEOUT + 0.3


async def test_socketio_server_seen_without_the_adapter_is_flagged(service: Service):
    """Listen mode without --socketio on a Socket.IO URL: its pings go unanswered, so it
    keeps dropping the probe; the run is flagged, naming Socket.IO, and lost is ERROR."""
    config = ProbeConfig(service.url + "/socket.io/?EIO=4&transport=websocket",
                         mode="listen", backoff=FAST, heartbeat="off",
                         duration=4 * (PING_INTERVAL + PING_TIMEOUT))
    result = await Fleet(config, 1, seed=1, spawn_rate=None).run()
    problem = measurement_problem(result)
    assert problem is not None and "--socketio" in problem
    assert judge(criterion("messages.lost", "== 0"), result).status == "error"


# One test per mode: a criterion on a metric the mode cannot measure is ERROR --------------


async def test_echo_mode_criteria_on_unmeasurable_metrics_are_errors():
    """Echo mode against an echo server: resyncs, delivery_latency, resume_time and
    messages.replayed cannot move there: ERROR with a reason, while rtt passes."""

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="echo", echo_rate=20,
                             duration=0.5, backoff=FAST)
        result = await Fleet(config, 1, seed=1, spawn_rate=None).run()
    assert result.metrics.counters["messages.sent"] > 0
    assert judge(criterion("rtt.p99", "< 1s"), result).status == "pass"
    for key, expect in (("resyncs", "== 0"), ("delivery_latency.p99", "< 1s"),
                        ("resume_time.p99", "< 1s"), ("messages.replayed", "== 0")):
        verdict = judge(criterion(key, expect), result)
        assert verdict.status == "error", key
        assert "cannot be measured here" in verdict.message


async def test_resume_mode_criterion_on_messages_sent_is_an_error():
    """Resume mode against the reference server: messages.sent cannot move there (it
    sends no data), so == 0 is ERROR, not a PASS; lost is measured and passes."""
    server = ServerProcess("--job-rate", "20")
    try:
        config = ProbeConfig(server.url + "/ws/a-{n}", mode="resume", duration=1.0,
                             backoff=FAST)
        result = await Fleet(config, 1, seed=1, spawn_rate=None).run()
    finally:
        server.close()
    verdict = judge(criterion("messages.sent", "== 0"), result)
    assert verdict.status == "error" and "echo" in verdict.message
    assert judge(criterion("messages.lost", "== 0"), result).status == "pass"
    assert result.metrics.counters["messages.received"] > 0
