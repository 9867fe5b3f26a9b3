"""Are wsctl's instants where things happen? Probe and bench timings against the wire.

    python benchmarks/observer.py [--probes 100] [--probe-processes 1] [--pause 3]
                                  [--announce early|late] [--bench-connections 100]
                                  [--seed 1] [--keep]

An independent relay (this process, asyncio, 127.0.0.1) sits between the measuring side
and the reference server (`python -m server_stub --port 0`, its own process) and logs
wire instants with `time.monotonic()` (system-wide on Linux, so comparable with the
instants of the other processes): accept, upstream connect, the 101 response passing,
every frame each way (text frames' JSON fields: type, offset, ts, t), resets and closes.

1. 100 probes (a `wsctl.probe.Fleet` in a subprocess, as `wsctl probe` runs it, or
   spread over `--probe-processes` such subprocesses: resume
   mode, app heartbeat every 0.5 s with a 1 s timeout, records written as JSON lines)
   connect through the relay. After a steady stretch the relay cuts every connection at
   one instant (RST to both sides: SO_LINGER 0); later it stops relaying both ways for
   `--pause` seconds without closing anything (half-open), then flushes what it held.
   The fault instant reaches the probes before the fault (`--announce early`, what the
   driver accepts today) or 50 ms after it (`--announce late`, a late fault instant).
2. A bench run (`wsctl.bench.engine.Engine`, its default transport and loop) opens
   `--bench-connections` through the relay and sends echo pings.

Each figure the measuring side reports (taps on its histograms, per probe or connection)
is paired with the same figure read off the wire:

- detect_time: the RST leaving the relay (cut) or the probe's own drop reaching it
  (half-open) minus the fault instant;
- reconnect_time / resume_time: the 101 / welcome of the connection that completed the
  recovery minus the wire's loss instant; reconnect_attempts: connections accepted for
  that probe in the recovery;
- outage_time: last event frame before the loss -> first event frame after it;
- delivery_latency: event frame passing the relay (wall) minus its `ts`;
- rtt: app ping frame -> its pong (paired by the ping's `t`); bench rtt.uncorrected:
  ping -> pong per connection and sequence number;
- bench connect_time: the 101 passing minus the connection's planned arrival instant.

The wire's instants are the relay's reads, a loopback hop (tens of microseconds) from
the endpoints. A timing is "outside" when |measured - wire| > max(5 ms, 1% of the wire
figure); attempts must match exactly. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path

HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 1.0
BOUND_ABS = 0.005
BOUND_REL = 0.01

# --- the relay -------------------------------------------------------------------------


class FrameReader:
    """Incremental HTTP-head + WebSocket frame parser over one direction's bytes."""

    def __init__(self, on_head: Any, on_frame: Any) -> None:
        self.buf = bytearray()
        self.head_done = False
        self.on_head = on_head
        self.on_frame = on_frame

    def feed(self, data: bytes, at: float) -> None:
        buf = self.buf
        buf += data
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.on_head(bytes(buf[:end]), at)
            del buf[:end + 4]
            self.head_done = True
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            mask = None
            if b1 & 0x80:
                if len(buf) < pos + 4:
                    return
                mask = bytes(buf[pos:pos + 4])
                pos += 4
            if len(buf) < pos + length:
                return
            payload = bytes(buf[pos:pos + length])
            del buf[:pos + length]
            if mask is not None:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            self.on_frame(b0 & 0x0F, bool(b0 & 0x80), payload, at)


@dataclass
class Pair:
    """One relayed connection: the client side, the server side, and what passed."""

    cid: int
    relay: Relay
    client: asyncio.Transport
    server: asyncio.Transport | None = None
    path: str = ""
    held: list[tuple[str, bytes | None]] = field(default_factory=list)  # while paused
    closed: bool = False
    up: FrameReader | None = None
    down: FrameReader | None = None


class Relay:
    """A TCP relay that logs wire events as tuples ``(t, cid, kind, info)``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.log: list[tuple[float, int, str, Any]] = []
        self.pairs: dict[int, Pair] = {}
        self.paused = False
        self._next = 0

    def event(self, at: float, cid: int, kind: str, info: Any = None) -> None:
        self.log.append((at, cid, kind, info))

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: ClientSide(self), "127.0.0.1", 0,
                                               backlog=1024)
        return int(self.server.sockets[0].getsockname()[1])

    def new_pair(self, transport: asyncio.Transport) -> Pair:
        at = time.monotonic()
        self._next += 1
        pair = Pair(self._next, self, transport)
        self.pairs[pair.cid] = pair
        self.event(at, pair.cid, "accept")
        pair.up = FrameReader(lambda head, t: self._request(pair, head, t),
                              lambda op, fin, p, t: self._frame(pair, "up", op, fin, p, t))
        pair.down = FrameReader(lambda head, t: self._response(pair, head, t),
                                lambda op, fin, p, t: self._frame(pair, "down", op, fin, p, t))
        asyncio.get_running_loop().create_task(self._connect_upstream(pair))
        return pair

    async def _connect_upstream(self, pair: Pair) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(lambda: ServerSide(pair),
                                                        *self.upstream)
        except OSError:
            self.event(time.monotonic(), pair.cid, "upstream_failed")
            pair.client.abort()
            return
        pair.server = transport
        self.event(time.monotonic(), pair.cid, "upstream")
        if pair.closed:
            transport.abort()
            return
        self.flush(pair, only="up")

    def _request(self, pair: Pair, head: bytes, at: float) -> None:
        line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        pair.path = line[1].split("?", 1)[0] if len(line) > 1 else ""
        self.event(at, pair.cid, "request", pair.path)

    def _response(self, pair: Pair, head: bytes, at: float) -> None:
        status = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        self.event(at, pair.cid, "101" if len(status) > 1 and status[1] == "101"
                   else "response", status[1] if len(status) > 1 else "")

    def _frame(self, pair: Pair, direction: str, opcode: int, fin: bool, payload: bytes,
               at: float) -> None:
        info: dict[str, Any] = {"dir": direction, "op": opcode}
        if opcode == 1 and len(payload) < 4096:
            try:
                obj = json.loads(payload)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                for key in ("type", "offset", "ts", "t"):
                    if key in obj:
                        info[key] = obj[key]
        self.event(at, pair.cid, "frame", info)

    # relaying -------------------------------------------------------------------------

    def relay(self, pair: Pair, direction: str, data: bytes | None, at: float) -> None:
        """Bytes (None: end of stream) read at ``at`` going ``up`` or ``down``."""
        if self.paused or (direction == "up" and pair.server is None):
            pair.held.append((direction, data))
            return
        self._forward(pair, direction, data, at)

    def _forward(self, pair: Pair, direction: str, data: bytes | None, at: float) -> None:
        target = pair.server if direction == "up" else pair.client
        reader = pair.up if direction == "up" else pair.down
        if target is None or reader is None:
            return
        if data is None:
            if not target.is_closing():
                target.close()
            return
        reader.feed(data, at)
        if not target.is_closing():
            target.write(data)

    def flush(self, pair: Pair, only: str | None = None) -> None:
        at = time.monotonic()
        keep = []
        for direction, data in pair.held:
            if only is not None and direction != only:
                keep.append((direction, data))
            else:
                self._forward(pair, direction, data, at)
        pair.held = keep

    def side_lost(self, pair: Pair, side: str, how: str) -> None:
        """One side's TCP connection ended (``how``: eof, reset or error text)."""
        at = time.monotonic()
        self.event(at, pair.cid, f"{side}_lost", how)
        if side == "client":
            pair.closed = True
            if pair.server is not None and not self.paused:
                pair.server.close()
            elif pair.server is not None:
                pair.held.append(("up", None))
        else:
            self.relay(pair, "down", None, at)

    # faults -------------------------------------------------------------------------

    def cut_all(self) -> float:
        """RST every relayed connection, both sides, now; returns the instant."""
        at = time.monotonic()
        self.event(at, 0, "cut")
        linger = struct.pack("ii", 1, 0)
        for pair in list(self.pairs.values()):
            if pair.closed:
                continue
            pair.closed = True
            for side, transport in (("client", pair.client), ("server", pair.server)):
                if transport is None or transport.is_closing():
                    continue
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                transport.abort()
                self.event(time.monotonic(), pair.cid, f"rst_{side}")
        return at

    def pause(self) -> float:
        at = time.monotonic()
        self.paused = True
        self.event(at, 0, "pause")
        return at

    def resume(self) -> float:
        at = time.monotonic()
        self.paused = False
        self.event(at, 0, "resume")
        for pair in list(self.pairs.values()):
            self.flush(pair)
        return at


class ClientSide(asyncio.Protocol):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.pair = self.relay.new_pair(transport)

    def data_received(self, data: bytes) -> None:
        self.relay.relay(self.pair, "up", data, time.monotonic())

    def eof_received(self) -> bool:
        self.relay.side_lost(self.pair, "client", "eof")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # asyncio calls this just before closing the socket: after an abort with
        # SO_LINGER 0, this is when the RST leaves.
        self.relay.event(time.monotonic(), self.pair.cid, "client_closed")
        if not self.pair.closed:
            self.relay.side_lost(self.pair, "client", "reset" if exc else "closed")


class ServerSide(asyncio.Protocol):
    def __init__(self, pair: Pair) -> None:
        self.pair = pair

    def data_received(self, data: bytes) -> None:
        self.pair.relay.relay(self.pair, "down", data, time.monotonic())

    def eof_received(self) -> bool:
        self.pair.relay.side_lost(self.pair, "server", "eof")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.pair.closed:
            self.pair.relay.side_lost(self.pair, "server", "reset")


# --- the measuring side, in subprocesses ------------------------------------------------


class _Tap:
    """A histogram stand-in: logs each recorded value with its probe and instant."""

    def __init__(self, out: list[tuple[str, str, float, float]], probe: str, name: str,
                 inner: Any) -> None:
        self.out, self.probe, self.name, self.inner = out, probe, name, inner

    def record(self, value: float) -> None:
        self.out.append((self.probe, self.name, value, time.monotonic()))
        self.inner.record(value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def probe_worker(url: str, count: int, out_dir: Path, seed: int, worker: int) -> None:
    """A Fleet as `wsctl probe` runs it; stdin says `fault T` and `stop`. Probe ``i`` of
    worker ``k`` is called ``k-i`` (its stream ``obs-k-i``)."""
    from wsctl.backoff import BackoffPolicy
    from wsctl.probe import ioclock
    from wsctl.probe.fleet import Fleet
    from wsctl.probe.machine import ProbeConfig, new_metrics
    from wsctl.probe.runner import RecordsWriter

    taps: list[tuple[str, str, float, float]] = []

    class TappedFleet(Fleet):
        def _start(self, index: int) -> Any:
            probe = super()._start(index)
            metrics = new_metrics()
            for name, hist in list(metrics.histograms.items()):
                metrics.histograms[name] = _Tap(taps, f"{worker}-{index}", name, hist)  # type: ignore[assignment]
            probe.machine.metrics = metrics
            return probe

    class Monotonic:  # RecordsWriter adds the fleet's wall offset: keep raw monotonic
        wall_offset = 0.0

    config = ProbeConfig(url, heartbeat_interval=HEARTBEAT_INTERVAL,
                         heartbeat_timeout=HEARTBEAT_TIMEOUT, connect_timeout=5.0,
                         backoff=BackoffPolicy(base=0.5, cap=5.0))
    writer = RecordsWriter(out_dir / f"records-{worker}.jsonl", [Monotonic()])  # type: ignore[list-item]
    fleet = TappedFleet(config, count, seed=seed, sink=writer, tune_gc=True)

    async def commands() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "fault":
                fleet.inject_fault(float(line[1]))
            elif line[0] == "stop":
                fleet.stop()
                return

    async def main() -> None:
        control = asyncio.create_task(commands())
        result = await fleet.run()
        control.cancel()
        (out_dir / f"result-{worker}.json").write_text(json.dumps(result.to_dict()))

    ioclock.run(main())
    writer.close()
    with (out_dir / f"taps-{worker}.jsonl").open("w") as f:
        for tap in taps:
            f.write(json.dumps(tap) + "\n")


def bench_worker(url: str, count: int, out_dir: Path) -> None:
    """An Engine as `wsctl bench` runs it (default transport and loop), tapped."""
    from wsctl.bench.engine import Engine
    from wsctl.bench.plan import BenchPlan
    from wsctl.bench.runner import loop_factory
    from wsctl.bench.transport import get_transport

    plan = BenchPlan(url, connections=count, connect_rate=100.0, message_rate=5.0,
                     duration=6.0)
    taps: dict[str, list[Any]] = {"connect": [], "rtt": []}
    by_task: dict[Any, int] = {}
    current = [-1, -1]  # connection index and pong seq being delivered

    class Receiver:
        def __init__(self, inner: Any, j: int) -> None:
            self.inner, self.j = inner, j

        def on_message(self, data: Any, at: float) -> None:
            current[0] = self.j
            try:
                current[1] = json.loads(data).get("t", -1)
            except (ValueError, AttributeError):
                current[1] = -1
            self.inner.on_message(data, at)

        def on_close(self, code: int | None, reason: str) -> None:
            self.inner.on_close(code, reason)

    class Transport:
        def __init__(self, inner: Any) -> None:
            self.inner, self.name = inner, inner.name

        async def connect(self, url: str, receiver: Any, **kw: Any) -> Any:
            j = int(url.rsplit("-", 1)[1])
            by_task[asyncio.current_task()] = j
            return await self.inner.connect(url, Receiver(receiver, j), **kw)

    class ConnectTap(list):  # type: ignore[type-arg]
        def append(self, value: int) -> None:
            taps["connect"].append((by_task.get(asyncio.current_task(), -1), value))

    class RttTap(list):  # type: ignore[type-arg]
        def append(self, value: int) -> None:
            taps["rtt"].append((current[0], current[1], value))

    async def main() -> dict[str, Any]:
        engine = Engine(plan, transport=Transport(get_transport(plan.transport)), tune_gc=True)
        engine.rec.connect = ConnectTap()  # type: ignore[assignment]
        engine.rec.rtt_uncorrected = RttTap()  # type: ignore[assignment]
        start = time.monotonic() + 0.2
        rec = await engine.run(start)
        lag = sorted(rec.loop_lag)
        return {"start": start, "rate": plan.connect_rate, "transport": plan.transport,
                "loop": plan.loop, "lag_p99_ms": lag[int(len(lag) * 0.99)] / 1000 if lag else 0,
                "lag_max_ms": lag[-1] / 1000 if lag else 0}

    with asyncio.Runner(loop_factory=loop_factory(plan.loop)) as runner:
        info = runner.run(main())
    info.update(taps)
    (out_dir / "bench.json").write_text(json.dumps(info))


# --- the orchestration ------------------------------------------------------------------


def runqueue_wait(pid: int) -> float:
    """Seconds process ``pid`` has spent runnable but waiting for a CPU (Linux schedstat,
    all its threads' sum is the main thread's here): contention no stamping can undo."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE,
                            text=True)


async def run_all(args: argparse.Namespace, out_dir: Path
                  ) -> tuple[dict[str, float], list[Any]]:
    """Server, relay, the probe phases (cut, half-open pause), then the bench run."""
    server, url = _servers.start([sys.executable, "-m", "server_stub", "--port", "0",
                                  "--job-rate", "2", "--log-level", "warning"])
    host, port = url.removeprefix("ws://").split(":")
    relay = Relay((host, int(port)))
    relay_port = await relay.start()
    base = f"ws://127.0.0.1:{relay_port}"
    faults: dict[str, float] = {}
    try:
        k = args.probe_processes
        workers = [_spawn("--probe-worker", f"{base}/ws/obs-{i}-{{n}}",
                          str(len(range(i, args.probes, k))), str(out_dir),
                          str(args.seed + i), str(i))
                   for i in range(k)]

        def announce(at: float, line: str = "fault") -> None:
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"{line} {at!r}\n")
                worker.stdin.flush()

        await asyncio.sleep(4.0)  # all connected, heartbeats and events flowing
        loop = asyncio.get_running_loop()
        for name, hold in (("cut", 0.0), ("pause", args.pause)):
            at = time.monotonic() + 0.3
            if args.announce == "early":
                announce(at)
            done = loop.create_future()

            def fault(name: str = name, hold: float = hold, done: Any = done) -> None:
                done.set_result(relay.cut_all() if name == "cut" else relay.pause())
                if hold:
                    loop.call_later(hold, relay.resume)

            loop.call_at(loop.time() + (at - time.monotonic()), fault)
            before = [runqueue_wait(worker.pid) for worker in workers]
            actual = await done
            faults[name] = at if args.announce == "early" else actual
            await asyncio.sleep(0.2)
            faults[f"{name}_runqueue"] = max(runqueue_wait(worker.pid) - b
                                             for worker, b in zip(workers, before, strict=True))
            if args.announce == "late":
                await asyncio.sleep(0.05)
                announce(actual)
            await asyncio.sleep(hold + 5.0)
        announce(0.0, "stop")
        for worker in workers:
            await asyncio.to_thread(worker.wait, 30)
        faults["bench"] = time.monotonic()
        bench = _spawn("--bench-worker", f"{base}/ws/bench-{{n}}", str(args.bench_connections),
                       str(out_dir))
        await asyncio.to_thread(bench.wait, 60)
    finally:
        _servers.stop(server)
        relay.server.close()
    return faults, relay.log


# --- the comparison ---------------------------------------------------------------------


@dataclass
class Conn:
    cid: int
    path: str
    accept: float
    opened: float | None = None  # 101 passing
    welcome: float | None = None
    ended: float | None = None  # RST sent, or the client's drop reaching the relay
    events: list[tuple[float, Any]] = field(default_factory=list)  # (t, ts) downstream
    pings: dict[Any, float] = field(default_factory=dict)  # t -> instant (upstream)
    pongs: dict[Any, float] = field(default_factory=dict)  # t -> instant (downstream)


def wire_connections(log: list[tuple[float, int, str, Any]]) -> dict[int, Conn]:
    conns: dict[int, Conn] = {}
    for at, cid, kind, info in log:
        if kind == "accept":
            conns[cid] = Conn(cid, "", at)
            continue
        conn = conns.get(cid)
        if conn is None:
            continue
        if kind == "request":
            conn.path = info
        elif kind == "101":
            conn.opened = at
        elif kind in ("client_lost", "client_closed") and conn.ended is None:
            conn.ended = at
        elif kind == "frame":
            kind_ = info.get("type")
            if info["dir"] == "down":
                if kind_ == "welcome" and conn.welcome is None:
                    conn.welcome = at
                elif kind_ == "event":
                    conn.events.append((at, info.get("ts")))
                elif kind_ == "pong":
                    conn.pongs.setdefault(info.get("t"), at)
            elif kind_ == "ping":
                conn.pings.setdefault(info.get("t"), at)
    return conns


class Table:
    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def add(self, metric: str, measured: float, wire: float) -> None:
        self.rows[metric].append((measured, wire))

    def print(self, title: str) -> None:
        print(f"\n{title}")
        print(f"{'metric':<30} {'samples':>7} {'median d':>11} {'median |d|':>11} "
              f"{'p99 |d|':>9} {'max |d|':>9} {'outside':>8}")
        for metric, pairs in self.rows.items():
            diffs = sorted(abs(m - w) for m, w in pairs)
            if metric.endswith("attempts"):
                outside = sum(1 for m, w in pairs if m != w)
                unit, scale = "", 1.0
            else:
                outside = sum(1 for m, w in pairs
                              if abs(m - w) > max(BOUND_ABS, BOUND_REL * abs(w)))
                unit, scale = " ms", 1000.0
            p99 = diffs[min(len(diffs) - 1, int(len(diffs) * 0.99))]
            signed = statistics.median(m - w for m, w in pairs)
            print(f"{metric:<30} {len(pairs):>7} {signed * scale:>+8.2f}{unit:<3} "
                  f"{statistics.median(diffs) * scale:>8.2f}"
                  f"{unit:<3} {p99 * scale:>6.2f}{unit:<3} {diffs[-1] * scale:>6.2f}{unit:<3} "
                  f"{outside / len(pairs):>7.1%}")


def compare(out_dir: Path, log: list[Any], faults: dict[str, float],
            wall_offset: float) -> Table:
    conns = wire_connections(log)
    by_path: dict[str, list[Conn]] = defaultdict(list)
    for conn in conns.values():
        by_path[conn.path].append(conn)
    taps: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for path in out_dir.glob("taps-*.jsonl"):
        for line in path.read_text().splitlines():
            probe, name, value, at = json.loads(line)
            taps[probe, name].append((value, at))
    table = Table()
    probes = sorted({p for p, _ in taps})
    windows = {"cut": (faults["cut"], faults["pause"]),
               "pause": (faults["pause"], faults["bench"])}
    for p in probes:
        mine = sorted(by_path.get(f"/ws/obs-{p}", []), key=lambda c: c.accept)
        for phase, (begin, end) in windows.items():
            fault = faults[phase]
            old = [c for c in mine if c.accept < fault and (c.ended is None or c.ended >= fault)]
            if not old or old[-1].ended is None:
                continue
            lost = old[-1].ended
            recovery = [c for c in mine if c.accept > lost and c.accept < end]
            done = next((c for c in recovery if c.welcome is not None
                         and (c.ended is None or c.ended > c.welcome)), None)
            if done is None or done.opened is None:
                continue

            def sample(name: str, p: str = p, begin: float = begin, end: float = end
                       ) -> float | None:
                values = [v for v, at in taps.get((p, name), []) if begin <= at < end]
                return values[0] if values else None

            wire = {"detect_time": lost - fault,
                    "reconnect_time": done.opened - lost,
                    "resume_time": done.welcome - lost,
                    "reconnect_attempts": float(recovery.index(done) + 1)}
            before = [t for t, _ in old[-1].events if t < lost]
            after = [t for t, _ in done.events]
            if before and after:
                wire["outage_time"] = after[0] - before[-1]
            for name, value in wire.items():
                measured = sample(name)
                if measured is not None:
                    table.add(f"{name} ({phase})", measured, value)
        # every delivery and rtt sample of this probe, matched by ts / ping t
        events: dict[Any, list[float]] = defaultdict(list)
        pings: dict[float, float] = {}
        for conn in mine:
            for at, ts in conn.events:
                events[ts].append(at)
            for t, at in conn.pings.items():
                if t in conn.pongs:
                    pings[t] = conn.pongs[t] - at
        for value, at in taps.get((p, "delivery_latency"), []):
            ts = at + wall_offset - value
            key = min(events, key=lambda k: abs(k - ts), default=None)
            if key is None or abs(key - ts) > 0.2:
                continue
            seen = min(events[key], key=lambda t: abs(t - at))
            table.add("delivery_latency", value, seen + wall_offset - key)
        ping_ts = sorted(pings)
        for value, at in taps.get((p, "rtt"), []):
            sent = at - value
            key = min(ping_ts, key=lambda k: abs(k - sent), default=None)
            if key is not None and abs(key - sent) < 0.05:
                table.add("rtt", value, pings[key])
    bench = json.loads((out_dir / "bench.json").read_text())
    for j, micros in bench["connect"]:
        conn = next((c for c in by_path.get(f"/ws/bench-{j}", []) if c.opened), None)
        if conn is not None and conn.opened is not None:
            due = bench["start"] + j / bench["rate"]
            table.add("bench connect_time", micros / 1e6, conn.opened - due)
    bench_conns = {j: c for j in range(100_000)
                   for c in by_path.get(f"/ws/bench-{j}", [])[:1]} if bench["rtt"] else {}
    for j, seq, micros in bench["rtt"]:
        conn = bench_conns.get(j)
        if conn is not None and seq in conn.pings and seq in conn.pongs:
            table.add("bench rtt.uncorrected", micros / 1e6, conn.pongs[seq] - conn.pings[seq])
    print(f"bench: transport {bench['transport']}, loop {bench['loop']}, generator loop lag "
          f"p99 {bench['lag_p99_ms']:.1f} ms, max {bench['lag_max_ms']:.1f} ms")
    return table


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-worker":
        probe_worker(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]),
                     int(sys.argv[6]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--bench-worker":
        bench_worker(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--probe-processes", type=int, default=1,
                        help="probe processes the probes are spread over (one loop each)")
    parser.add_argument("--nice", type=int, default=0,
                        help="diagnostic: run every process of the run (relay, server, probes, "
                        "bench) at this nice value (negative needs root): how much of what "
                        "is left is CPU contention from other work on the machine?")
    parser.add_argument("--pause", type=float, default=3.0, help="half-open pause, s")
    parser.add_argument("--announce", choices=("early", "late"), default="early",
                        help="fault instant sent before the fault, or 50 ms after it")
    parser.add_argument("--bench-connections", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the logs; print where")
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)  # inherited by every process started from here
    out_dir = Path(tempfile.mkdtemp(prefix="wsctl-observer-"))
    wall_offset = time.time() - time.monotonic()
    faults, relay_log = asyncio.run(run_all(args, out_dir))
    import wsctl

    print(f"wsctl from {Path(wsctl.__file__).parent}")
    for phase in ("cut", "pause"):
        print(f"{phase}: a probe process waited up to "
              f"{faults[f'{phase}_runqueue'] * 1000:.1f} ms for a CPU from 0.3 s before the "
              "fault to 0.2 s after it")
    lags = [json.loads(path.read_text())["details"]["loop_lag"]
            for path in sorted(out_dir.glob("result-*.json"))]
    print(f"probes: {args.probes} in {args.probe_processes} process(es), loop lag p99 "
          f"{max(lag['p99'] or 0 for lag in lags) * 1000:.1f} ms, max "
          f"{max(lag['max'] or 0 for lag in lags) * 1000:.1f} ms; fault announced {args.announce}")
    table = compare(out_dir, relay_log, faults, wall_offset)
    table.print(f"measured vs wire (outside: |d| > max({BOUND_ABS * 1000:g} ms, "
                f"{BOUND_REL:.0%}); attempts: any difference)")
    if args.keep:
        (out_dir / "wire.jsonl").write_text("\n".join(json.dumps(e) for e in relay_log))
        print(f"logs in {out_dir}")
    else:
        for path in out_dir.iterdir():
            path.unlink()
        out_dir.rmdir()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
