"""Soak: the reference server and the chaos proxy under hostile and normal clients for N minutes.

    python benchmarks/soak.py [--minutes 10] [--baseline 60] [--rate 5] [--probes 50]

Two processes are measured: the reference server (`python -m server_stub --port 0`) and
`wsctl chaos serve` with one proxy in front of it. Clients run in their own processes,
never in the measured ones:

- hostile (one process, each kind a small async loop at a bounded rate, from source
  addresses 127.0.0.2-127.0.0.9 so the server's per-address bounds fall on them, not on
  the normal clients): slowloris (request heads a byte a second), protocol-ping floods
  that never read, slow consumers that never read their events, malformed frames and JSON
  (NaN, 1e400, 4,300-digit ints, reserved opcodes, bad UTF-8, unmasked, oversize, deep
  nesting), many stream names from one address, repeated headers, pipelined GETs, and
  chaos API abuse (bad bodies, long and '/' names, NaN schedules, 1 MiB+ bodies, proxy
  loops, create/delete churn). The floods and slow consumers go both directly and through
  the proxy.
- normal (one process): `--probes` resume-protocol clients, half through the proxy and
  half direct, each holding its stream for 20-60 s and then resuming from its offset
  (a gap, duplicate, refusal or unexpected close is an error); and a trickle of `--rate`
  fresh handshakes a second, directly to the server, whose TCP connect + opening
  handshake (up to the 101) is the latency figure.

First the quiet baseline: the same trickle alone for `--baseline` seconds against the
fresh server. Then, each minute, one row: server RSS and fds (/proc/PID/fd), the
server's open WebSocket connections and streams (from its /metrics), proxy RSS, fds and
live connections (its API's /metrics; two fds each), the normal trickle's handshake
p50/p99 in that minute, and errors seen by normal clients.
The server publishes no asyncio task count (neither /metrics nor its log), so tasks are
not shown. At the end the verdict lines against issue 15's targets: RSS and fds growth
from minute 2 to the last minute (< 5%), and the soak's handshake p99 over the quiet one
(<= 2x), over the whole soak and from minute 2 on (minute 1 holds the start-up of the
hostile load: a thousand streams' jobs at once). The hostile population is bounded, not
constant: how many of its connections are open at a sample moves the fd counts, so read
fd growth beside the connection columns; the "fds beyond live connections" verdicts
subtract them (one descriptor per server connection, two per proxied one), which is what
a leak would grow. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path
import psutil
from websockets.asyncio.client import connect

HOSTILE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 10)]
Record = tuple[float, str, Any]  # (wall time, kind, value) sent from a client process


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- raw WebSocket pieces

def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True,
          rsv1: bool = False, length: int | None = None) -> bytes:
    """One client frame; ``length`` may claim more than the payload holds."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade_head(port: int, path: str, extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


async def open_raw(port: int, source: str, *, rcvbuf: int | None = None,
                   limit: int = 65536) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection from ``source``; a small ``rcvbuf`` and ``limit`` stop reading early."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)),
                               5)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=limit)


async def raw_ws(port: int, path: str, source: str, **kw: Any) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Raw connection after the opening handshake; returns the response head too."""
    reader, writer = await open_raw(port, source, **kw)
    writer.write(upgrade_head(port, path))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return reader, writer, head


async def drain_to_eof(reader: asyncio.StreamReader, timeout: float) -> bytes:
    data = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                data += chunk
    except (TimeoutError, OSError):
        pass
    return data


def close_code(data: bytes) -> str:
    """The close code in the server's (unmasked) frames, or how the stream ended."""
    while len(data) >= 2:
        opcode, size = data[0] & 0x0F, data[1] & 0x7F
        start = 2 + {126: 2, 127: 8}.get(size, 0)
        if size >= 126:
            size = int.from_bytes(data[2:start], "big")
        if opcode == 0x8:
            return str(int.from_bytes(data[start:start + 2], "big")) if size >= 2 else "1005"
        data = data[start + size:]
    return "no_close"


def close_quietly(writer: asyncio.StreamWriter) -> None:
    try:
        writer.transport.abort()
    except Exception:
        pass


# ---------------------------------------------------------------- hostile loops

class Hostile:
    """Every hostile kind as an async loop; outcomes counted per kind."""

    def __init__(self, server: int, proxy: int, api: str, stop: Any, queue: Any) -> None:
        self.server, self.proxy, self.api = server, proxy, api
        self.stop, self.queue = stop, queue
        self.counts: Counter[str] = Counter()

    def note(self, kind: str) -> None:
        self.counts[kind] += 1

    async def forever(self, name: str, body: Any, pause: float) -> None:
        """Run ``body`` again and again, at least ``pause`` s apart, until the stop flag."""
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                await body()
            except (OSError, TimeoutError, asyncio.IncompleteReadError, EOFError) as exc:
                self.note(f"{name}:{type(exc).__name__}")
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - start)))

    async def slowloris(self, port: int, source: str) -> None:
        reader, writer = await open_raw(port, source)
        self.note("slowloris")
        try:
            for byte in upgrade_head(port, "/ws/loris")[:-2]:  # never the final CRLF
                writer.write(bytes([byte]))
                await writer.drain()
                got = await drain_to_eof(reader, 1.0)
                if got or reader.at_eof():
                    self.note("slowloris:answered")
                    return
        finally:
            close_quietly(writer)

    async def ping_flood(self, port: int, source: str) -> None:
        reader, writer, head = await raw_ws(port, f"/ws/flood-{source}", source, rcvbuf=4096,
                                            limit=1024)
        self.note("ping_flood:" + head.split(b" ", 2)[1].decode())
        pings = frame(0x9, os.urandom(125)) * 50
        try:
            for _ in range(2000):  # ~2,500 pings/s, at most 40 s per connection
                writer.write(pings)
                await asyncio.wait_for(writer.drain(), 10)
                await asyncio.sleep(0.02)
        except (OSError, TimeoutError):
            self.note("ping_flood:cut")
        finally:
            close_quietly(writer)

    async def slow_consumer(self, port: int, source: str, n: int) -> None:
        reader, writer, head = await raw_ws(port, f"/ws/slow-{n}", source, rcvbuf=4096,
                                            limit=1024)
        self.note("slow_consumer:" + head.split(b" ", 2)[1].decode())
        try:
            for _ in range(120):  # hold up to 2 min, never reading past the head
                # a blind pong a second: it never satisfies the heartbeat (the payload is
                # unpredictable) but its write notices the server's abort
                writer.write(frame(0xA, b""))
                await asyncio.wait_for(writer.drain(), 10)
                if writer.transport.is_closing():
                    break
                await asyncio.sleep(1)
        finally:
            close_quietly(writer)

    MALFORMED = [
        frame(0x1, b'{"type":"ping","t":NaN}'),
        frame(0x1, b'{"type":"ping","t":1e400}'),
        frame(0x1, b'{"type":"ack","offset":' + b"9" * 4300 + b"}"),
        frame(0x1, b'{"type":"ping","t":' + b"9" * 309 + b"}"),
        frame(0x1, b"not json"),
        frame(0x1, b'{"type":"bogus"}'),
        frame(0x1, b"[" * 20000),
        frame(0x3, b"reserved opcode"),
        frame(0x1, b"\xff\xfe bad utf-8"),
        frame(0x1, b"{}", rsv1=True),
        frame(0x1, b'{"type":"ping","t":1}', mask=False),
        frame(0x2, b"x" * 1000, length=1 << 20),  # claims 1 MiB: 1009
        frame(0x9, b"x" * 200),  # control frame over 125 bytes
        frame(0x1, b'{"type":"ping"', fin=False) + frame(0x9, b"") + frame(0x1, b"}"),
    ]

    async def malformed(self, source: str) -> None:
        bad = random.choice(self.MALFORMED)
        reader, writer, head = await raw_ws(self.server, "/ws/malformed", source)
        self.note("malformed")
        try:
            writer.write(bad)
            self.note(f"malformed:{close_code(await drain_to_eof(reader, 5))}")
        finally:
            close_quietly(writer)

    async def many_streams(self, source: str) -> None:
        path = f"/ws/many-{os.urandom(6).hex()}"
        reader, writer, head = await raw_ws(self.server, path, source)
        self.note("many_streams:" + head.split(b" ", 2)[1].decode())
        close_quietly(writer)

    async def http_once(self, port: int, request: bytes, kind: str, source: str) -> None:
        reader, writer = await open_raw(port, source)
        try:
            writer.write(request)
            answer = await drain_to_eof(reader, 5)
            statuses = [line.split(b" ")[1].decode() for line in answer.split(b"\r\n")
                        if line.startswith(b"HTTP/1.1 ")]
            self.note(f"{kind}:{'+'.join(statuses) or 'none'}")
        finally:
            close_quietly(writer)

    async def duplicate_headers(self, source: str) -> None:
        header = random.choice(["Upgrade: websocket", "Host: 127.0.0.1",
                                "Origin: http://a.example\r\nOrigin: http://b.example"])
        await self.http_once(self.server, upgrade_head(self.server, "/ws/dup", header + "\r\n"),
                             "duplicate_headers", source)

    async def pipelined(self, source: str) -> None:
        get = f"GET /ws/health HTTP/1.1\r\nHost: 127.0.0.1:{self.server}\r\n\r\n".encode()
        await self.http_once(self.server, get * random.choice([2, 3, 10]), "pipelined", source)

    def api_abuse_requests(self) -> list[tuple[str, str, bytes]]:
        loop = _free_port()
        return [
            ("POST", "/proxies", b"{"),
            ("POST", "/proxies", b"[" * 100000),
            ("POST", "/proxies", json.dumps({"name": "x" * 201, "listen": "127.0.0.1:0",
                                             "upstream": "127.0.0.1:1"}).encode()),
            ("POST", "/proxies", json.dumps({"name": "x" * 100000, "listen": "127.0.0.1:0",
                                             "upstream": "127.0.0.1:1"}).encode()),
            ("POST", "/proxies", json.dumps({"name": "a/b", "listen": "127.0.0.1:0",
                                             "upstream": "127.0.0.1:1"}).encode()),
            ("POST", "/proxies", json.dumps({"name": "loop", "listen": f"127.0.0.1:{loop}",
                                             "upstream": f"127.0.0.1:{loop}"}).encode()),
            ("POST", "/proxies", json.dumps({"name": "p", "listen": "127.0.0.1:\u00b2",
                                             "upstream": "127.0.0.1:1"}).encode()),
            ("POST", "/proxies", b'{"name": "big", "pad": "' + b"x" * (1 << 20) + b'"}'),
            ("POST", "/proxies/abuse/toxics", b'{"type": ["latency"]}'),
            ("POST", "/proxies/abuse/toxics", b'{"type": "latency", "attributes": '
                                              b'{"latency": 1e400}}'),
            ("POST", "/proxies/abuse/toxics", b'{"type": "latency", "attributes": '
                                              b'{"latency": ' + b"9" * 400 + b"}}"),
            ("POST", "/proxies/abuse/schedules", b'{"at": NaN, "do": "disable"}'),
            ("POST", "/proxies/abuse/schedules", b'{"every": "1us", "do": "disable"}'),
            ("POST", "/proxies/abuse/schedules", b'{"at": 1e400, "do": "disable"}'),
            ("DELETE", "/proxies/" + "y" * 20000, b""),
            ("GET", "/proxies", b""),
        ]

    async def api_abuse(self, source: str) -> None:
        host, port = self.api.rsplit(":", 1)
        method, path, body = random.choice(self.api_abuse_requests())
        if random.random() < 0.2:  # churn: a valid proxy made and deleted
            name = f"churn-{os.urandom(4).hex()}"
            spec = json.dumps({"name": name, "listen": "127.0.0.1:0",
                               "upstream": f"127.0.0.1:{self.server}"}).encode()
            await self._api(int(port), "POST", "/proxies", spec, source, "api:create")
            method, path, body = "DELETE", f"/proxies/{name}", b""
        await self._api(int(port), method, path, body, source, "api")

    async def _api(self, port: int, method: str, path: str, body: bytes, source: str,
                   kind: str) -> None:
        request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                   f"Connection: close\r\n\r\n").encode() + body
        await self.http_once(port, request, kind, source)

    async def run(self) -> None:
        a = HOSTILE_ADDRESSES
        loops = []
        for i in range(20):  # 20 slowloris, half through the proxy
            port = self.proxy if i % 2 else self.server
            loops.append(self.forever("slowloris", lambda p=port: self.slowloris(p, a[0]), 0.2))
        for port in (self.server, self.proxy):
            loops.append(self.forever("ping_flood", lambda p=port: self.ping_flood(p, a[1]), 1))
        for i in range(20):  # 20 slow consumers, half through the proxy
            port = self.proxy if i % 2 else self.server
            loops.append(self.forever("slow_consumer",
                                      lambda p=port, n=i: self.slow_consumer(p, a[2], n), 1))
        loops.append(self.forever("malformed", lambda: self.malformed(a[3]), 0.2))
        loops.append(self.forever("many_streams", lambda: self.many_streams(a[4]), 0.05))
        loops.append(self.forever("duplicate_headers", lambda: self.duplicate_headers(a[5]),
                                  0.2))
        loops.append(self.forever("pipelined", lambda: self.pipelined(a[6]), 0.2))
        loops.append(self.forever("api", lambda: self.api_abuse(a[7]), 0.2))
        reporter = asyncio.create_task(self.report())
        await asyncio.gather(*loops)
        reporter.cancel()
        self.queue.put((time.time(), "hostile", dict(self.counts)))

    async def report(self) -> None:
        while True:
            await asyncio.sleep(10)
            self.queue.put((time.time(), "hostile", dict(self.counts)))


def hostile_main(server: int, proxy: int, api: str, stop: Any, queue: Any) -> None:
    asyncio.run(Hostile(server, proxy, api, stop, queue).run())


# ---------------------------------------------------------------- normal clients

async def trickle(port: int, rate: float, stop: Any, queue: Any, seconds: float) -> None:
    """Fresh handshakes at ``rate`` a second directly to the server; each one's connect time."""
    start = time.monotonic()
    i = 0
    while not stop.is_set() and time.monotonic() - start < seconds:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t0 = time.perf_counter()
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/ws/fresh-{i % 50}", open_timeout=10,
                               ping_interval=None, compression=None)
        except Exception as exc:
            queue.put((time.time(), "error", f"trickle:{type(exc).__name__}"))
        else:
            queue.put((time.time(), "handshake", time.perf_counter() - t0))
            ws.transport.abort()
        i += 1


async def probe(n: int, port: int, stop: Any, queue: Any) -> None:
    """One resume-protocol client: hold 20-60 s, close, resume; gaps and surprises are errors."""
    epoch: str | None = None
    offset = 0
    while not stop.is_set():
        query = f"?epoch={epoch}&offset={offset}" if epoch else ""
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws/probe-{n}{query}", open_timeout=10,
                               ping_interval=None, compression=None) as ws:
                welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if welcome.get("type") != "welcome":
                    queue.put((time.time(), "error", f"probe:{welcome.get('type')}"))
                    continue
                if epoch and (welcome["epoch"] != epoch or not welcome["recovered"]):
                    queue.put((time.time(), "error", "probe:not_recovered"))
                    offset = welcome["offset"]
                if not epoch:
                    offset = welcome["offset"]
                epoch = welcome["epoch"]
                until = time.monotonic() + random.uniform(20, 60)
                while not stop.is_set() and time.monotonic() < until:
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 1))
                    except TimeoutError:
                        continue
                    if message.get("type") == "event":
                        if message["offset"] != offset + 1:
                            queue.put((time.time(), "error", "probe:gap_or_duplicate"))
                        offset = message["offset"]
                queue.put((time.time(), "resume", 1))
        except Exception as exc:
            queue.put((time.time(), "error", f"probe:{type(exc).__name__}"))
            await asyncio.sleep(1)


def normal_main(server: int, proxy: int, probes: int, rate: float, stop: Any, queue: Any,
                seconds: float) -> None:
    async def main() -> None:
        tasks = [probe(n, proxy if n % 2 else server, stop, queue) for n in range(probes)]
        await asyncio.gather(trickle(server, rate, stop, queue, seconds), *tasks)
    asyncio.run(main())


def baseline_main(server: int, rate: float, stop: Any, queue: Any, seconds: float) -> None:
    asyncio.run(trickle(server, rate, stop, queue, seconds))


# ---------------------------------------------------------------- the measured processes

def spawn_chaos(server_port: int, workdir: Path) -> tuple[subprocess.Popen[str], str, int]:
    """`wsctl chaos serve` with proxy "soak" to the server and "abuse" for API abuse."""
    api = f"127.0.0.1:{_free_port()}"
    config = workdir / "proxies.json"
    config.write_text(json.dumps([
        {"name": "soak", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{server_port}"},
        {"name": "abuse", "listen": "127.0.0.1:0",
         "upstream": f"127.0.0.1:{server_port}"},
    ]))
    proc = subprocess.Popen([sys.executable, "-c", "from wsctl.cli.main import run; run()",
                             "chaos", "serve", "--api", api, "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://{api}/proxies/soak", timeout=1) as response:
                listen = json.load(response)["listen"]
                return proc, api, int(listen.rsplit(":", 1)[1])
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("wsctl chaos serve did not come up") from None
            time.sleep(0.1)


def usage(pid: int) -> tuple[float, int]:
    """RSS in MiB and open file descriptors of process ``pid``."""
    rss = psutil.Process(pid).memory_info().rss / 2**20
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def gauges(url: str, wanted: set[str]) -> dict[str, float]:
    """The ``wanted`` series of a Prometheus page, summed over labels."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        if name in wanted:
            values[name] = values.get(name, 0.0) + float(value)
    return values


def drain(queue: Any) -> list[Record]:
    records = []
    while True:
        try:
            records.append(queue.get_nowait())
        except Exception:
            return records


def growth(first: float, last: float) -> str:
    return f"{(last - first) / first * 100:+.1f}%" if first else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--baseline", type=float, default=60.0,
                        help="seconds of the quiet baseline")
    parser.add_argument("--rate", type=float, default=5.0, help="fresh handshakes a second")
    parser.add_argument("--probes", type=int, default=50)
    args = parser.parse_args()

    mp = multiprocessing.get_context("spawn")
    queue = mp.Queue()
    server, url = _servers.start([sys.executable, "-m", "server_stub", "--port", "0"])
    server_port = int(url.rsplit(":", 1)[1])
    workdir = Path(tempfile.mkdtemp(prefix="wsctl-soak-"))
    chaos, api, proxy_port = spawn_chaos(server_port, workdir)
    workers: list[Any] = []
    stop = mp.Event()
    try:
        quiet = mp.Process(target=baseline_main,
                           args=(server_port, args.rate, stop, queue, args.baseline))
        quiet.start()
        quiet.join()
        base = [value for _, kind, value in drain(queue) if kind == "handshake"]
        base_p99 = _pct(base, 0.99)
        print(f"server {url} (pid {server.pid}), chaos proxy :{proxy_port} api {api} "
              f"(pid {chaos.pid}); tasks: not shown (the server publishes no task count)")
        print(f"quiet baseline: {len(base)} handshakes, p50 {_pct(base, 0.5) * 1e3:.1f} ms, "
              f"p99 {base_p99 * 1e3:.1f} ms", flush=True)

        seconds = args.minutes * 60
        workers = [
            mp.Process(target=hostile_main,
                       args=(server_port, proxy_port, api, stop, queue)),
            mp.Process(target=normal_main, args=(server_port, proxy_port, args.probes,
                                                 args.rate, stop, queue, seconds + 60)),
        ]
        for worker in workers:
            worker.start()
        print(f"{'min':>3} {'srv MiB':>8} {'srv fds':>7} {'conns':>6} {'streams':>7} "
              f"{'pxy MiB':>8} {'pxy fds':>7} {'pconns':>6} {'hs n':>5} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'errors':>6}  error kinds", flush=True)
        rows: list[dict[str, Any]] = []
        per_minute: list[list[float]] = []
        hostile: dict[str, int] = {}
        start = time.monotonic()
        for minute in range(1, args.minutes + 1):
            time.sleep(max(0.0, start + minute * 60 - time.monotonic()))
            records = drain(queue)
            handshakes = [value for _, kind, value in records if kind == "handshake"]
            errors = Counter(value for _, kind, value in records if kind == "error")
            for _, kind, value in records:
                if kind == "hostile":
                    hostile = value
            per_minute.append(handshakes)
            srv_rss, srv_fds = usage(server.pid)
            pxy_rss, pxy_fds = usage(chaos.pid)
            srv = gauges(f"http://127.0.0.1:{server_port}/metrics",
                         {"wsctl_server_connections", "wsctl_server_streams"})
            pxy = gauges(f"http://{api}/metrics", {"wsctl_chaos_connections_active"})
            row = {"srv_rss": srv_rss, "srv_fds": srv_fds, "pxy_rss": pxy_rss,
                   "pxy_fds": pxy_fds,
                   # descriptors not held by a live connection (one each on the server,
                   # two per proxied connection): what a leak would grow
                   "srv_spare": srv_fds - srv.get("wsctl_server_connections", 0),
                   "pxy_spare": pxy_fds - 2 * pxy.get("wsctl_chaos_connections_active", 0)}
            rows.append(row)
            p50 = f"{_pct(handshakes, 0.5) * 1e3:7.1f}" if handshakes else f"{'-':>7}"
            p99 = f"{_pct(handshakes, 0.99) * 1e3:7.1f}" if handshakes else f"{'-':>7}"
            print(f"{minute:>3} {srv_rss:8.1f} {srv_fds:7d} "
                  f"{srv.get('wsctl_server_connections', -1):6.0f} "
                  f"{srv.get('wsctl_server_streams', -1):7.0f} {pxy_rss:8.1f} "
                  f"{pxy_fds:7d} {pxy.get('wsctl_chaos_connections_active', -1):6.0f} "
                  f"{len(handshakes):5d} {p50} {p99} "
                  f"{sum(errors.values()):6d}  "
                  f"{', '.join(f'{k} {v}' for k, v in errors.most_common(4))}", flush=True)
        stop.set()
        for worker in workers:
            worker.join(30)
        for _, kind, value in drain(queue):
            if kind == "hostile":
                hostile = value

        print("hostile outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(hostile.items())))
        first, last = rows[min(1, len(rows) - 1)], rows[-1]
        span = f"minute {min(2, len(rows))} -> {len(rows)}"
        for key, label in (("srv_rss", "server RSS"), ("srv_fds", "server fds"),
                           ("srv_spare", "server fds beyond live connections"),
                           ("pxy_rss", "proxy RSS"), ("pxy_fds", "proxy fds"),
                           ("pxy_spare", "proxy fds beyond live connections")):
            print(f"verdict {label} growth {span}: {growth(first[key], last[key])} "
                  f"({first[key]:.1f} -> {last[key]:.1f}; target < 5%)")
        whole = [value for minute in per_minute for value in minute]
        warm = [value for minute in per_minute[1:] for value in minute]
        for label, values in (("whole soak", whole), ("minute 2 on", warm)):
            if values:
                p99 = _pct(values, 0.99)
                print(f"verdict handshake p99 under soak ({label}) / quiet: "
                      f"{p99 / base_p99:.2f}x ({p99 * 1e3:.1f} / {base_p99 * 1e3:.1f} ms over "
                      f"{len(values)} / {len(base)} handshakes; target <= 2x)")
    finally:
        stop.set()
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()
        _servers.stop(chaos)
        _servers.stop(server)


if __name__ == "__main__":
    main()
