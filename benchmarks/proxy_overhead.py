"""What does ``wsctl chaos`` (no faults) add to a WebSocket echo round trip?

One run measures these paths to the same websockets echo server (its own process):

    direct         client -> echo server
    bare relay     client -> simplest asyncio relay (own process) -> echo server
    proto asyncio  client -> asyncio Protocol relay, data_received -> write (own process):
                   the floor any relay on asyncio's own loop can reach
    proto uvloop   the same relay on uvloop: the floor of a Python relay on uvloop
    wsctl chaos    client -> `wsctl chaos serve` proxy, no toxics, default loop (uvloop
                   where installed; own process) -> echo server
    chaos asyncio  the same with `--loop asyncio`
    socat          client -> socat (C, one process per connection: `fork`, 256 KiB reads)
                   -> echo server: a relay outside Python, for scale (skipped when socat
                   is not installed: `apt-get install socat`)

Latency: one message at a time, paced at ~1,000 msg/s, p50/p99 of the round trip.
Throughput: 64 KiB binary messages, pipelined, MB/s of echoed payload, with the cores
the client, the echo server and the relay each used meanwhile (medians over rounds): on
a 2-core machine direct already keeps both cores busy, so whatever a relay spends comes
out of the endpoints' share.
Rounds alternate between the paths so drift on the machine hits all of them alike.

    python benchmarks/proxy_overhead.py [--messages 3000] [--count 3000] [--rounds 3]

Targets (issue 17): wsctl's added p50 <= 0.8 x the asyncio Protocol relay's added p50;
proxied throughput >= 80% of direct. (Issue 7's: <= 1.15 x the bare relay's added p50,
>= 50% of direct.) Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from _servers import tree_cpu  # benchmarks/_servers.py: scripts here run from this folder
from websockets.asyncio.client import connect

ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""

# The simplest possible proxy: asyncio streams, one copy loop per direction.
BARE_RELAY = """
import asyncio, sys
UP = int(sys.argv[1])
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
async def handle(r, w):
    ur, uw = await asyncio.open_connection("127.0.0.1", UP)
    await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)
async def main():
    s = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()
asyncio.run(main())
"""


# The leanest asyncio relay: no streams, no coroutines on the data path. argv[2] "uvloop"
# runs it on uvloop (which reads from connection_made on even when it paused there: what
# comes before the upstream is connected is kept, and the forwarding method set after).
PROTOCOL_RELAY = """
import asyncio, sys
UP = int(sys.argv[1])
if sys.argv[2:] == ["uvloop"]:
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
class Side(asyncio.Protocol):
    def __init__(self, peer=None):
        self.peer = peer
        self.early = []
    def connection_made(self, transport):
        self.transport = transport
        if self.peer is None:
            transport.pause_reading()
            asyncio.ensure_future(self.connect())
        else:
            self.forward_from_now()
    async def connect(self):
        loop = asyncio.get_running_loop()
        _, up = await loop.create_connection(lambda: Side(self), "127.0.0.1", UP)
        self.peer = up
        self.forward_from_now()
        self.transport.resume_reading()
    def forward_from_now(self):
        self.data_received = self.forward
        self.transport.set_protocol(self)
        for data in self.early:
            self.forward(data)
    def forward(self, data):
        self.peer.transport.write(data)
    def data_received(self, data):
        self.early.append(data)
    def connection_lost(self, exc):
        if self.peer is not None:
            self.peer.transport.close()
async def main():
    loop = asyncio.get_running_loop()
    s = await loop.create_server(Side, "127.0.0.1", 0)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_script(code: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def spawn_socat(upstream_port: int) -> tuple[subprocess.Popen[str], int] | None:
    """socat relaying a free port to ``upstream_port`` (None when socat is missing)."""
    socat = shutil.which("socat")
    if socat is None:
        return None
    port = free_port()
    # -b: read up to 256 KiB at once, as asyncio's and uvloop's transports do (socat's
    # default is 8 KiB)
    proc = subprocess.Popen([socat, "-b", "262144",
                             f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                             f"TCP:127.0.0.1:{upstream_port}"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:  # listening yet?
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("socat did not come up")
        time.sleep(0.05)


def spawn_wsctl_chaos(
    upstream_port: int, workdir: Path, loop: str = "auto"
) -> tuple[subprocess.Popen[str], int]:
    api = f"127.0.0.1:{free_port()}"
    config = workdir / f"proxies-{loop}.json"
    proxy = {"name": "bench", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}"}
    config.write_text(json.dumps([proxy]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from wsctl.cli.main import run; run()",
            "chaos",
            "serve",
            "--api",
            api,
            "--config",
            str(config),
            "--loop",
            loop,
        ],
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30  # a loaded machine starts slowly
    while True:
        try:
            with urllib.request.urlopen(f"http://{api}/proxies/bench", timeout=1) as response:
                listen = json.load(response)["listen"]
                return proc, int(listen.rsplit(":", 1)[1])
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("wsctl chaos serve did not come up") from None
            time.sleep(0.05)


async def latency(port: int, messages: int, rate: float) -> list[float]:
    """Round trips (s) of ``messages`` 32-byte messages sent at ``rate`` per second."""
    payload = os.urandom(32)
    samples = []
    async with connect(f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None) as ws:
        for _ in range(50):  # warm up
            await ws.send(payload)
            await ws.recv()
        start = time.perf_counter()
        for i in range(messages):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            samples.append(time.perf_counter() - sent)
    return samples


async def throughput(port: int, count: int, size: int = 64 * 1024) -> float:
    """MB/s of echoed payload with ``count`` pipelined messages of ``size`` bytes."""
    payload = os.urandom(size)
    async with connect(
        f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None, max_size=None
    ) as ws:
        for _ in range(20):
            await ws.send(payload)
            await ws.recv()
        window = asyncio.Semaphore(32)  # messages in flight

        async def send() -> None:
            for _ in range(count):
                await window.acquire()
                await ws.send(payload)

        start = time.perf_counter()
        sender = asyncio.create_task(send())
        for _ in range(count):
            await ws.recv()
            window.release()
        await sender
        return count * size / (time.perf_counter() - start) / 1e6


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    targets: dict[str, int], rounds: int, messages: int, count: int, rate: float,
    echo: psutil.Process, relays: dict[str, psutil.Process | None],
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[tuple[float, ...]]]]:
    """Latency samples, throughput (MB/s) and, per throughput run, the cores used by
    the client (this process), the echo server and the relay (client, echo, relay)."""
    rtts: dict[str, list[float]] = {name: [] for name in targets}
    mbps: dict[str, list[float]] = {name: [] for name in targets}
    cores: dict[str, list[tuple[float, ...]]] = {name: [] for name in targets}
    for r in range(rounds):
        order = list(targets) if r % 2 == 0 else list(reversed(targets))
        for name in order:
            rtts[name] += await latency(targets[name], messages, rate)
            relay = relays.get(name)
            before = (time.process_time(), tree_cpu(echo), tree_cpu(relay), time.perf_counter())
            mbps[name].append(await throughput(targets[name], count))
            after = (time.process_time(), tree_cpu(echo), tree_cpu(relay), time.perf_counter())
            wall = after[3] - before[3]
            used = zip(after[:3], before[:3], strict=True)
            cores[name].append(tuple((a - b) / wall for a, b in used))
    return rtts, mbps, cores


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="latency samples per round")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    parser.add_argument("--count", type=int, default=3000, help="64 KiB messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    procs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            echo, echo_port = spawn_script(ECHO_SERVER)
            procs.append(echo)
            relay, relay_port = spawn_script(BARE_RELAY, str(echo_port))
            procs.append(relay)
            targets = {"direct": echo_port, "bare relay": relay_port}
            relays: dict[str, psutil.Process | None] = {"bare relay": psutil.Process(relay.pid)}
            for name, loop in (("proto asyncio", "asyncio"), ("proto uvloop", "uvloop")):
                proto, targets[name] = spawn_script(PROTOCOL_RELAY, str(echo_port), loop)
                procs.append(proto)
                relays[name] = psutil.Process(proto.pid)
            for name, loop in (("wsctl chaos", "auto"), ("chaos asyncio", "asyncio")):
                chaos, targets[name] = spawn_wsctl_chaos(echo_port, Path(tmp), loop)
                procs.append(chaos)
                relays[name] = psutil.Process(chaos.pid)
            socat = spawn_socat(echo_port)
            if socat is None:
                print("socat not installed (apt-get install socat): its row is left out")
            else:
                procs.append(socat[0])
                targets["socat"] = socat[1]
                relays["socat"] = psutil.Process(socat[0].pid)
            rtts, mbps, cores = asyncio.run(
                measure(targets, args.rounds, args.messages, args.count, args.rate,
                        psutil.Process(echo.pid), relays)
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)

    p50 = {n: pct(s, 0.50) * 1e6 for n, s in rtts.items()}
    p99 = {n: pct(s, 0.99) * 1e6 for n, s in rtts.items()}
    tput = {n: statistics.median(v) for n, v in mbps.items()}
    added = {n: p50[n] - p50["direct"] for n in rtts}
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, "
        f"{args.rounds} rounds x {args.messages} msgs @ {args.rate:g}/s, "
        f"{args.count} x 64 KiB for throughput"
    )
    print(f"{'path':<14} {'p50 us':>8} {'p99 us':>8} {'+p50 us':>8} {'MB/s':>8} {'vs direct':>9}"
          f"   cores in the throughput runs: {'client':>6} {'echo':>5} {'relay':>5} {'all':>5}")
    for name in rtts:
        used = [statistics.median(c[i] for c in cores[name]) for i in range(3)]
        print(
            f"{name:<14} {p50[name]:8.0f} {p99[name]:8.0f} {added[name]:8.0f} {tput[name]:8.0f} "
            f"{tput[name] / tput['direct']:8.0%}   {'':29}{used[0]:>6.2f} {used[1]:>5.2f} "
            f"{used[2]:>5.2f} {sum(used):>5.2f}"
        )

    def ratio(name: str, floor: str) -> float:
        return added[name] / added[floor] if added[floor] > 0 else float("nan")

    for name in ("wsctl chaos", "chaos asyncio"):
        to_proto = ratio(name, "proto asyncio")
        share = tput[name] / tput["direct"]
        print(
            f"{name}: added p50 / asyncio proto relay's = {to_proto:.2f} (target <= 0.8: "
            f"{'met' if to_proto <= 0.8 else 'MISSED'}), / uvloop proto relay's = "
            f"{ratio(name, 'proto uvloop'):.2f}, / bare relay's = {ratio(name, 'bare relay'):.2f}"
            f"; throughput / direct = {share:.0%} (target >= 80%: "
            f"{'met' if share >= 0.8 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
