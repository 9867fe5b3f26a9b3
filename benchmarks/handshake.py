"""Connection set-up, EP-0001's "20% faster": reference profile vs baseline, two loads.

    python benchmarks/handshake.py [--serial 300] [--burst 300] [--rounds 5]
                                   [--client-processes 2] [--no-deflate]
                                   [--server-arg=--loop --server-arg=asyncio]
                                   [--tree before=/path/to/other/checkout]

Two loads, each against a fresh server process per measurement (`python -m server_stub
--port 0 --profile baseline|reference`, started the way `wsctl run` starts it: default
log level, logs written), the profiles interleaved and their order alternated by round:

- serial: one client opens N connections in a row (TCP connect + opening handshake,
  then it reads the welcome, closes, and opens the next): the handshake's cost without
  queueing.
- burst: N clients arrive evenly within one second and hold their connections until all
  have opened, as `wsctl run`'s `after` scenario does (300 probes, spawn rate 300/s).
- raw (`--loads raw`, or add it to the list): serial, but over blocking sockets with a
  hand-written request and no client library, so that the client's own cost (the floor)
  shrinks from ~0.35 ms to ~0.07 ms and what is measured is the server's part.

Clients run in their own worker processes (never in the server's), on asyncio with the
probe's own connector (`wsctl.probe.driver.websockets_connector`: websockets' client
connection, the request written as soon as TCP is up), offering permessage-deflate as
browsers do; the same client for both profiles. Each worker measures its own loop lag,
so a saturated client shows.

`connect` is the `connect_time` metric, stamped as the probe stamps it: from just before
the TCP connect to the 101 read (docs/probe.md, "How connect_time is timed"). `welcome`
runs on to the first frame (the stream attached). `server CPU/conn` is the server
process's user + system CPU for the measurement divided by connections.
Per load and profile: the median over rounds of each round's figure, and reference /
baseline for connect p50 (issue 13's target: <= 0.70; EP-0001's: <= 0.80).

`floor` is the instrument's own cost: the same clients against a trivial responder (this
script with `--floor-server`: a bare protocol on uvloop that answers 101 and a two-byte
welcome, no HTTP parser, no per-connection state). No server can be measured below it,
so `connect p50 - floor` is the part a server's code can change, printed per profile.

`--tree NAME=PATH` adds both profiles of the server in another checkout (started with
PYTHONPATH=PATH), interleaved with this one's in the same rounds: before/after a change
on the same machine state.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import multiprocessing
import os
import signal
import socket
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path
import psutil

from wsctl.probe.driver import websockets_connector

PROFILES = ("baseline", "reference")
LOADS = ("serial", "burst", "raw")
DEFAULT_LOADS = ("serial", "burst")
FLOOR = "floor"
LAG_BOUND = 0.005  # client loop lag p99 past which the figures are flagged as distorted


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _lag_monitor(samples: list[float], stop: asyncio.Event, period: float = 0.005) -> None:
    """How late the loop wakes a 5 ms timer: the client's own delay, recorded."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + period
        await asyncio.sleep(period)
        samples.append(max(0.0, loop.time() - due))


async def _serial(url: str, count: int, deflate: bool) -> dict[str, list[float]]:
    connects, welcomes = [], []
    connect = websockets_connector(deflate=deflate)
    for i in range(count):
        ws = await connect(f"{url}/ws/hs-{i}", 10)
        await ws.recv()  # the welcome: the server has attached the stream
        connects.append(ws.opened_at - ws.started_at)
        welcomes.append(time.monotonic() - ws.started_at)
        await ws.close()
    return {"connect": connects, "welcome": welcomes}


async def _burst(url: str, indexes: list[int], count: int, window: float, start_at: float,
                 deflate: bool) -> dict[str, list[float]]:
    connects: list[float] = []
    welcomes: list[float] = []
    errors: list[float] = []
    conns: list[Any] = []
    # start_at is wall time, shared by every worker; arrivals are spread evenly over window
    loop = asyncio.get_running_loop()
    base = loop.time() + (start_at - time.time())

    connect = websockets_connector(deflate=deflate)

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, base + window * i / count - loop.time()))
        try:
            ws = await connect(f"{url}/ws/hs-{i}", 30)
        except Exception:
            errors.append(1.0)
            return
        conns.append(ws)
        await ws.recv()
        connects.append(ws.opened_at - ws.started_at)
        welcomes.append(time.monotonic() - ws.started_at)

    await asyncio.gather(*(one(i) for i in indexes))
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return {"connect": connects, "welcome": welcomes, "errors": errors}


def _raw(url: str, count: int, deflate: bool) -> dict[str, list[float]]:
    """Like ``_serial``, over blocking sockets with a hand-written request: next to no
    client code between the bytes, so the figures are the server's and the kernel's."""
    port = int(url.rsplit(":", 1)[1])
    offer = ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
             if deflate else "")
    close = b"\x88\x82\x00\x00\x00\x00\x03\xe8"  # masked (zero mask) close 1000
    connects, welcomes = [], []
    for i in range(count):
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws/hs-{i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{offer}\r\n").encode()
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(4096)
            opened = time.perf_counter()
            while len(data.partition(b"\r\n\r\n")[2]) < 2:  # the welcome's frame header
                data += sock.recv(4096)
            welcomed = time.perf_counter()
            assert data.startswith(b"HTTP/1.1 101 "), data[:100]
            sock.sendall(close)
        connects.append(opened - started)
        welcomes.append(welcomed - started)
    return {"connect": connects, "welcome": welcomes}


def client_worker(load: str, url: str, indexes: list[int], count: int, start_at: float,
                  deflate: bool) -> dict[str, list[float]]:
    """One client process's share of a load; returns its samples and its loop lag."""
    if load == "raw":
        time.sleep(max(0.0, start_at - time.time()))
        return {**_raw(url, count, deflate), "lag": [0.0]}

    async def run() -> dict[str, list[float]]:
        lags: list[float] = []
        stop = asyncio.Event()
        monitor = asyncio.create_task(_lag_monitor(lags, stop))
        if load == "serial":
            await asyncio.sleep(max(0.0, start_at - time.time()))
            result = await _serial(url, count, deflate)
        else:
            result = await _burst(url, indexes, count, 1.0, start_at, deflate)
        stop.set()
        await monitor
        result["lag"] = lags
        return result

    return asyncio.run(run())


def server_command(profile: str, tree: str | None, server_args: list[str]) -> list[str]:
    """``python -m server_stub`` for a profile, from another checkout when ``tree`` is set."""
    if profile == FLOOR:
        return [sys.executable, os.path.abspath(__file__), "--floor-server"]
    env = ["env", "-C", tree, f"PYTHONPATH={tree}"] if tree else []  # execs: same pid
    return [*env, sys.executable, "-m", "server_stub", "--port", "0", "--profile", profile,
            *server_args]


class _FloorProtocol(asyncio.Protocol):
    """Answers any upgrade with 101 and a ``{}`` text frame; echoes a close frame."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.head = b""
        self.open = False

    def data_received(self, data: bytes) -> None:
        if self.open:
            if data and data[0] & 0x0F == 8:  # close frame: answer 1000 and hang up
                self.transport.write(b"\x88\x02\x03\xe8")
                self.transport.close()
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            return
        key = next(line.split(b":", 1)[1].strip() for line in self.head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest())
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                             b"\r\n\r\n\x81\x02{}")
        self.open = True


def floor_server() -> None:
    """Run the trivial responder until SIGTERM; first stdout line is its URL."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FloorProtocol, "127.0.0.1", 0)
        print(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


def measure(pool: ProcessPoolExecutor, workers: int, load: str, command: list[str],
            count: int, deflate: bool) -> dict[str, float]:
    """One fresh server, one load; the round's figures."""
    server, url = _servers.start(command)
    try:
        proc = psutil.Process(server.pid)
        time.sleep(0.2)  # let start-up settle (its CPU is not the handshakes')
        cpu0 = sum(proc.cpu_times()[:2])
        start_at = time.time() + 0.3  # every worker is up and waiting by then
        shares = workers if load == "burst" else 1
        futures = [pool.submit(client_worker, load, url, list(range(k, count, shares)), count,
                               start_at, deflate) for k in range(shares)]
        results = [f.result() for f in futures]
        cpu = sum(proc.cpu_times()[:2]) - cpu0
    finally:
        _servers.stop(server)
    connects = [t for r in results for t in r["connect"]]
    welcomes = [t for r in results for t in r["welcome"]]
    lags = [t for r in results for t in r["lag"]]
    return {
        "connect_p50": statistics.median(connects), "connect_p90": _pct(connects, 0.9),
        "welcome_p50": statistics.median(welcomes),
        "cpu_per_conn": cpu / count, "lag_p99": _pct(lags, 0.99), "lag_max": max(lags),
        "errors": sum(len(r.get("errors", [])) for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", type=int, default=300, help="connections in a row")
    parser.add_argument("--burst", type=int, default=300, help="clients arriving in 1 s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--client-processes", type=int, default=2,
                        help="client worker processes for the burst")
    parser.add_argument("--no-deflate", action="store_true",
                        help="do not offer permessage-deflate")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra flag for both servers (repeat), e.g. --server-arg=--loop "
                             "--server-arg=asyncio")
    parser.add_argument("--loads", default=",".join(DEFAULT_LOADS),
                        help="which loads to run, comma-separated: serial, burst, raw "
                             "(default: serial,burst)")
    parser.add_argument("--no-floor", action="store_true",
                        help="do not measure the trivial responder (the instrument's floor)")
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="also measure the server of another checkout (repeat)")
    args = parser.parse_args()
    if args.floor_server:
        floor_server()
        return
    deflate = not args.no_deflate
    counts = {"serial": args.serial, "burst": args.burst, "raw": args.serial}
    loads = [load for load in LOADS if load in args.loads.split(",")]
    trees: dict[str, str | None] = {"": None}
    for item in args.tree:
        name, _, path = item.partition("=")
        trees[f"@{name}"] = path
    variants = [(profile + tree, server_command(profile, path, args.server_arg))
                for tree, path in trees.items() for profile in PROFILES]
    if not args.no_floor:
        variants.append((FLOOR, server_command(FLOOR, None, [])))
    figures: dict[tuple[str, str], list[dict[str, float]]] = {
        (load, v[0]): [] for load in loads for v in variants}
    print(f"load average {os.getloadavg()[0]:.2f}; serial {args.serial} in a row, burst "
          f"{args.burst} in 1 s over {args.client_processes} client processes; "
          f"{args.rounds} rounds; deflate {'offered' if deflate else 'not offered'}; "
          f"server args {' '.join(args.server_arg) or '(none)'}; other trees "
          f"{' '.join(args.tree) or '(none)'}", flush=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.client_processes, mp_context=context) as pool:
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for load in loads:
                for label, command in order:
                    f = measure(pool, args.client_processes, load, command, counts[load],
                                deflate)
                    figures[(load, label)].append(f)
                    print(f"  round {r + 1} {load:6} {label:9} connect p50 "
                          f"{f['connect_p50'] * 1e3:6.3f} ms p90 {f['connect_p90'] * 1e3:6.3f}"
                          f"  welcome p50 {f['welcome_p50'] * 1e3:6.3f}  server CPU/conn "
                          f"{f['cpu_per_conn'] * 1e3:.3f} ms  client lag p99 "
                          f"{f['lag_p99'] * 1e3:.1f} max {f['lag_max'] * 1e3:.1f} ms"
                          + (f"  ERRORS {f['errors']:.0f}" if f["errors"] else ""), flush=True)

    def med(load: str, profile: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[(load, profile)])

    print(f"\nmedians of {args.rounds} rounds (ms)")
    width = max(9, *(len(v[0]) for v in variants))
    print(f"{'load':6} {'server':{width}} {'connect p50':>11} {'p90':>7} {'welcome p50':>11} "
          f"{'server CPU/conn':>15} {'client lag p99':>14}")
    for load in loads:
        for profile, _ in variants:
            print(f"{load:6} {profile:{width}} {med(load, profile, 'connect_p50') * 1e3:11.3f} "
                  f"{med(load, profile, 'connect_p90') * 1e3:7.3f} "
                  f"{med(load, profile, 'welcome_p50') * 1e3:11.3f} "
                  f"{med(load, profile, 'cpu_per_conn') * 1e3:15.3f} "
                  f"{med(load, profile, 'lag_p99') * 1e3:14.1f}")
    print("\nreference / baseline, connect p50 (issue 13's target <= 0.70, EP-0001's <= 0.80):")
    for tree in trees:
        ref, base = "reference" + tree, "baseline" + tree
        for load in loads:
            ratios = [r["connect_p50"] / b["connect_p50"] for r, b in
                      zip(figures[(load, ref)], figures[(load, base)], strict=True)]
            ratio = med(load, ref, "connect_p50") / med(load, base, "connect_p50")
            cpu = med(load, ref, "cpu_per_conn") / med(load, base, "cpu_per_conn")
            above = ""
            if not args.no_floor:  # the part of connect p50 a server's code can change
                floor = med(load, FLOOR, "connect_p50")
                r_above = med(load, ref, "connect_p50") - floor
                b_above = med(load, base, "connect_p50") - floor
                above = (f"; above the floor {r_above * 1e3:.3f} vs {b_above * 1e3:.3f} ms"
                         + (f" = {r_above / b_above:.2f}" if b_above > 0 else ""))
            print(f"  {load:6} {tree or 'this tree':10} {ratio:.2f}  (per round "
                  f"{min(ratios):.2f}-{max(ratios):.2f}; server CPU/conn {cpu:.2f}{above})")
    worst = max(f["lag_p99"] for runs in figures.values() for f in runs)
    if worst > LAG_BOUND:
        print(f"WARNING: client loop lag p99 reached {worst * 1e3:.1f} ms (bound "
              f"{LAG_BOUND * 1e3:.0f} ms): the measuring side was saturated, so these "
              "latencies are not the server's alone; rerun on a quieter machine")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
