"""Which transport and event loop should ``wsctl bench`` use? (issue 6, "Targets")

Runs the bench engine's hot path — the ``wsctl.bench.transport`` interface, every message
timestamped with ``time.monotonic()`` at send and receipt and recorded into a
``wsctl.metrics.Histogram`` — over each transport/loop pair, against one echo server in its
own process (the same server for every variant):

    websockets+asyncio  websockets+uvloop  picows+asyncio  picows+uvloop
    bare-websockets     reference: plain ``await ws.send(); await ws.recv()`` loops on
                        websockets' own client, no timestamps, no histogram

Two loads on 100 connections (closed: 4,000 echo round trips each; open: 1,000 each at 100/s):

    closed  each connection sends, waits for the echo, sends the next
    open    each connection sends at a fixed rate whatever the echoes do; rtt counted from
            the intended send time (coordinated-omission corrected)

Every client run is a fresh process; its CPU time (user + system, whole process including
interpreter start-up, imports and connecting) comes from getrusage at its end. Reported:
round trips per CPU-second, wall time of the message phase, rtt p50/p99. Rounds interleave
the variants so drift on the machine hits all alike; the table shows medians and ratios to
websockets+asyncio.

    python benchmarks/transports.py      # closed 100 x 4,000; open 100 x 1,000 at 100/s; 3 rounds
    python benchmarks/transports.py --messages 1000 --rounds 1 --modes closed   # quick look

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import _servers  # benchmarks/_servers.py: scripts here run from this folder's path

VARIANTS = ("websockets+asyncio", "websockets+uvloop", "picows+asyncio", "picows+uvloop",
            "bare-websockets")
BASELINE = "websockets+asyncio"
PAYLOAD = '{"type":"echo","data":"0123456789abcdef0123"}'  # 44 bytes, like a small event


# --- the echo server (one process for the whole benchmark) ---------------------------------

def serve_echo() -> None:
    """A picows echo server on uvloop: fast enough that the client is what gets measured."""
    import picows
    import uvloop

    text, binary, close = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY, picows.WSMsgType.CLOSE

    class Echo(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            kind = frame.msg_type
            if kind is text or kind is binary:
                transport.send(kind, frame.get_payload_as_memoryview())
            elif kind is close:
                # A close frame without a code reads as NO_INFO (0); echoing that would write
                # the invalid code 0 (Node's ws then fails the connection).
                code = frame.get_close_code()
                transport.send_close(code if code != picows.WSCloseCode.NO_INFO
                                     else picows.WSCloseCode.OK)
                transport.disconnect()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        server = await picows.ws_create_server(lambda request: Echo(), "127.0.0.1", 0,
                                               backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(f"picows echo listening on ws://127.0.0.1:{port}", flush=True)
        await stop.wait()
        server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


# --- one client run (its own process) -------------------------------------------------------

class ClosedLoop:
    """Receiver: on each echo, record its rtt and send the next (no await on the hot path)."""

    __slots__ = ("channel", "record", "remaining", "sent_at", "done")

    def __init__(self, record: Callable[[float], None], count: int,
                 done: asyncio.Future[None]) -> None:
        self.channel: Any = None
        self.record = record
        self.remaining = count
        self.sent_at = 0.0
        self.done = done

    def start(self) -> None:
        self.sent_at = time.monotonic()
        self.channel.send(PAYLOAD)

    def on_message(self, data: str | bytes, at: float) -> None:
        self.record(at - self.sent_at)
        self.remaining -= 1
        if self.remaining:
            self.sent_at = time.monotonic()
            self.channel.send(PAYLOAD)
        elif not self.done.done():
            self.done.set_result(None)

    def on_close(self, code: int | None, reason: str) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(f"closed early: {code} {reason}"))


class OpenLoop:
    """Receiver: echoes come back in order, so the oldest intended send time is theirs."""

    __slots__ = ("channel", "record", "remaining", "intended", "done")

    def __init__(self, record: Callable[[float], None], count: int,
                 done: asyncio.Future[None]) -> None:
        self.channel: Any = None
        self.record = record
        self.remaining = count
        self.intended: deque[float] = deque()
        self.done = done

    def on_message(self, data: str | bytes, at: float) -> None:
        self.record(at - self.intended.popleft())
        self.remaining -= 1
        if not self.remaining and not self.done.done():
            self.done.set_result(None)

    def on_close(self, code: int | None, reason: str) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(f"closed early: {code} {reason}"))


async def open_loop_schedule(receivers: list[OpenLoop], count: int, rate: float) -> None:
    """Send ``count`` messages per connection at ``rate`` per second each, on schedule.

    Send k (of all connections together) is due at start + k / (connections x rate); a
    tick sends everything due, then sleeps to the next due time but at least 1 ms.
    """
    total_rate = len(receivers) * rate
    total = len(receivers) * count
    start = time.monotonic()
    k = 0
    n = len(receivers)
    while k < total:
        now = time.monotonic()
        due_until = min(total, int((now - start) * total_rate) + 1)
        while k < due_until:
            receiver = receivers[k % n]
            receiver.intended.append(start + k / total_rate)
            receiver.channel.send(PAYLOAD)
            k += 1
        await asyncio.sleep(max(start + k / total_rate - time.monotonic(), 0.001))


async def run_client(transport_name: str, url: str, connections: int, count: int,
                     mode: str, rate: float) -> dict[str, Any]:
    from wsctl.bench.transport import get_transport
    from wsctl.metrics import Histogram

    loop = asyncio.get_running_loop()
    rtt = Histogram("rtt")
    record = rtt.record
    transport = get_transport(transport_name)
    dones = [loop.create_future() for _ in range(connections)]
    receivers: list[Any]
    if mode == "closed":
        receivers = [ClosedLoop(record, count, done) for done in dones]
    else:
        receivers = [OpenLoop(record, count, done) for done in dones]
    channels = await asyncio.gather(
        *(transport.connect(url, receiver, timeout=30.0) for receiver in receivers))
    for receiver, channel in zip(receivers, channels, strict=True):
        receiver.channel = channel
    cpu0 = _cpu()
    started = time.monotonic()
    if mode == "closed":
        for receiver in receivers:
            receiver.start()
        await asyncio.gather(*dones)
    else:
        await asyncio.gather(open_loop_schedule(receivers, count, rate), *dones)
    wall = time.monotonic() - started
    phase_cpu = _cpu() - cpu0
    for channel in channels:
        channel.close()
    await asyncio.gather(*(channel.wait_closed() for channel in channels))
    summary = rtt.summary()
    return {"messages": rtt.count, "wall": wall, "phase_cpu": phase_cpu,
            "p50": summary["p50"], "p99": summary["p99"]}


async def run_bare(url: str, connections: int, count: int) -> dict[str, Any]:
    """Plain websockets client loops: the reference a Locust user reaches ~0.8x of."""
    from websockets.asyncio.client import connect

    conns = await asyncio.gather(*(connect(url, compression=None, ping_interval=None)
                                   for _ in range(connections)))

    async def loop(ws: Any) -> None:
        for _ in range(count):
            await ws.send(PAYLOAD)
            await ws.recv()

    cpu0 = _cpu()
    started = time.monotonic()
    await asyncio.gather(*(loop(ws) for ws in conns))
    wall = time.monotonic() - started
    phase_cpu = _cpu() - cpu0
    await asyncio.gather(*(ws.close() for ws in conns))
    return {"messages": connections * count, "wall": wall, "phase_cpu": phase_cpu,
            "p50": None, "p99": None}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_main(variant: str, url: str, connections: int, count: int, mode: str,
                rate: float) -> None:
    """Run one variant in this process and print one JSON line with its figures."""
    transport_name, _, loop_name = variant.partition("+")
    if variant == "bare-websockets":
        coro = run_bare(url, connections, count)
        loop_name = "asyncio"
    else:
        coro = run_client(transport_name, url, connections, count, mode, rate)
    factory = None
    if loop_name == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        out = runner.run(coro)
    out["cpu"] = _cpu()  # whole process: start-up, imports, connects, messages, closing
    print(json.dumps(out), flush=True)


# --- the driver -----------------------------------------------------------------------------

def run_variant(variant: str, url: str, args: argparse.Namespace, mode: str,
                server_pid: int) -> dict[str, Any]:
    import psutil

    server = psutil.Process(server_pid)
    before = server.cpu_times()
    count = args.messages if mode == "closed" else args.open_messages
    command = [sys.executable, __file__, "--client", variant, "--url", url,
               "--connections", str(args.connections), "--messages", str(count),
               "--mode", mode, "--rate", str(args.rate)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} {mode} failed:\n{done.stderr[-2000:]}")
    after = server.cpu_times()
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["server_cpu"] = (after.user + after.system) - (before.user + before.system)
    return out


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--messages", type=int, default=4000,
                        help="echo round trips per connection (default 4000)")
    parser.add_argument("--open-messages", type=int, default=1000,
                        help="open loop: messages per connection (default 1000)")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="open loop: messages per second per connection (default 100; "
                             "100 x 100 = 10,000 msg/s, which every variant sustains here)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="closed,open", help="closed,open (default both)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", help="also write every run's figures to this file")
    # Internal: run as the echo server or as one client.
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="closed", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_echo:
        serve_echo()
        return
    if args.client:
        client_main(args.client, args.url, args.connections, args.messages, args.mode,
                    args.rate)
        return

    variants = [v for v in args.variants.split(",") if v]
    modes = [m for m in args.modes.split(",") if m]
    load_before = os.getloadavg()
    server, url = _servers.start([sys.executable, __file__, "--serve-echo"])
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for mode in modes:
            for round_no in range(args.rounds):
                for variant in variants:
                    if variant == "bare-websockets" and mode == "open":
                        continue  # the reference line is a closed loop by definition
                    out = run_variant(variant, url, args, mode, server.pid)
                    runs.setdefault((mode, variant), []).append(out)
                    print(f"  round {round_no + 1} {mode:6} {variant:19} "
                          f"{out['messages'] / out['cpu']:>9,.0f} msg/CPU-s  "
                          f"wall {out['wall']:.2f}s  cpu {out['cpu']:.2f}s  "
                          f"server cpu {out['server_cpu']:.2f}s", file=sys.stderr, flush=True)
    finally:
        _servers.stop(server)
    load_after = os.getloadavg()

    print(f"\n{args.connections} connections; closed loop {args.messages:,} echo round trips "
          f"each; open loop {args.open_messages:,} each at {args.rate:g} msg/s per connection; "
          f"{args.rounds} interleaved rounds, medians; echo server: picows on uvloop, own process")
    print(f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} "
          f"(1 min), {os.cpu_count()} cores")
    header = (f"{'mode':6} {'variant':19} {'msg/CPU-s':>10} {'ratio':>6} {'phase msg/CPU-s':>15}"
              f" {'CPU s':>6} {'wall s':>7} {'rtt p50 ms':>10} {'rtt p99 ms':>10}"
              f" {'server CPU s':>12}")
    print(header)
    print("-" * len(header))
    for mode in modes:
        base = runs.get((mode, BASELINE))
        base_eff = (statistics.median(r["messages"] / r["cpu"] for r in base) if base else None)
        for variant in variants:
            rows = runs.get((mode, variant))
            if not rows:
                continue
            eff = statistics.median(r["messages"] / r["cpu"] for r in rows)
            phase = statistics.median(r["messages"] / r["phase_cpu"] for r in rows)
            cpu = statistics.median(r["cpu"] for r in rows)
            wall = statistics.median(r["wall"] for r in rows)
            p50s = [r["p50"] for r in rows if r["p50"] is not None]
            p99s = [r["p99"] for r in rows if r["p99"] is not None]
            p50 = statistics.median(p50s) if p50s else None
            p99 = statistics.median(p99s) if p99s else None
            server_cpu = statistics.median(r["server_cpu"] for r in rows)
            ratio = f"{eff / base_eff:.2f}x" if base_eff else "-"
            print(f"{mode:6} {variant:19} {eff:>10,.0f} {ratio:>6} {phase:>15,.0f}"
                  f" {cpu:>6.2f} {wall:>7.2f} {fmt_ms(p50):>10} {fmt_ms(p99):>10}"
                  f" {server_cpu:>12.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({f"{mode} {variant}": rows for (mode, variant), rows in runs.items()},
                      fh, indent=1)


if __name__ == "__main__":
    main()
