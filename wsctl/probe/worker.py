"""``python -m wsctl.probe.worker``: one worker process of a probe fleet split over K
(``wsctl.probe.workers.WorkerFleet``).

Line protocol (JSON, one object a line; instants are ``time.monotonic()`` values, one
clock for every process of the machine):

    parent -> worker (stdin):  {"setup": {config, seed, indices, spawn_rate, connector,
                                          live_view, name}}
                               {"start": T}        run; the probes start at instant T
                               {"fault": T}        a fault was injected at instant T
                               {"add": [n, ...]}   start the probes numbered n, from
                                                   now at the worker's spawn_rate
                               {"stop": true}      close every probe politely
                               end of input        the parent is gone: stop
    worker -> parent (stdout): {"ready": PID}      set up, before connecting
                               {"batch": {"records": [...], "states": {...},
                                          "counters": {...}, "running": bool}}
                                                   every 100 ms while it runs, and last
                               {"snapshot": {"probes": [[n, state, reconnects,
                                 ever_opened, last_rtt, last_latency, last_error], ...],
                                 "histograms": {name: [unit, hdr]}}}
                                                   every second with live_view
                               {"result": {...}}   the worker's Result, at the end
                               {"error": "...", "exit_code": N}   instead, when it failed

A record is ``[at, probe, from, to, reason, code, kind]``. A worker raises its
RLIMIT_NOFILE soft limit to the hard limit before connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
from typing import Any

from wsctl.probe import ioclock
from wsctl.probe.fleet import Fleet
from wsctl.probe.machine import ProbeConfig, Record
from wsctl.probe.workers import (
    BATCH,
    SNAPSHOT,
    STREAM_LIMIT,
    ConnectorSpec,
    LossSpans,
    config_from_dict,
    config_to_dict,
    record_to_wire,
)
from wsctl.workerproc import emit, report_failures


class Outbox:
    """The fleet's record sink in a worker: records wait here for the next batch, and
    each one updates the loss spans that late fault instants are judged by."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.spans = LossSpans()
        self.counts: dict[str, int] = {}  # histogram counts at the last snapshot

    def __call__(self, records: list[Record]) -> None:
        self.records.extend(records)
        self.spans.note(records)

    def batch(self, fleet: Fleet) -> None:
        records, self.records = self.records, []
        emit({"batch": {"records": [record_to_wire(r) for r in records],
                        "states": fleet.states(), "counters": dict(fleet.metrics.counters),
                        "running": fleet.running}})

    def snapshot(self, fleet: Fleet) -> None:
        rows = [[m.index, m.state.value, m.reconnects, m.ever_opened, m.last_rtt,
                 m.last_latency, m.last_error] for m in (p.machine for p in fleet.probes)]
        histograms = {}
        for name, hist in fleet.metrics.histograms.items():
            if hist.count != self.counts.get(name, 0):
                self.counts[name] = hist.count
                histograms[name] = [hist.unit, hist.encode()]
        emit({"snapshot": {"probes": rows, "histograms": histograms}})


def connector_for(spec: ConnectorSpec) -> Any:
    from pathlib import Path

    from wsctl.probe.driver import websockets_connector
    from wsctl.probe.runner import tls_context

    context = tls_context(Path(spec.cacert) if spec.cacert else None, spec.insecure)
    return websockets_connector(context, deflate=spec.deflate)


async def serve() -> int:
    from wsctl.fdlimit import raise_fd_limit

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=STREAM_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    setup = json.loads(await stdin.readline())["setup"]
    outbox = Outbox()
    fleet = Fleet(config_from_dict(ProbeConfig, setup["config"]), seed=setup["seed"],
                  connector=connector_for(ConnectorSpec(**setup["connector"])),
                  sink=outbox, spawn_rate=setup["spawn_rate"], tune_gc=True,
                  indices=setup["indices"])
    fleet.watch.name = f"{setup['name']} (pid {os.getpid()})"
    raise_fd_limit()
    # The imports' heap, collected and frozen now rather than by the fleet's quiet_gc
    # once its first probes are started: that full collection (~50 ms, more on a busy
    # machine) would stall the loop while it measures.
    gc.collect()
    gc.freeze()
    emit({"ready": os.getpid()})
    line = await stdin.readline()
    if not line:
        return 0  # the parent gave up before the start
    await asyncio.sleep(max(0.0, float(json.loads(line)["start"]) - time.monotonic()))
    run = asyncio.create_task(fleet.run())
    tasks = [asyncio.create_task(_control(stdin, fleet, outbox)),
             asyncio.create_task(_pump(fleet, outbox, setup["live_view"]))]
    try:
        result = await run
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    outbox.batch(fleet)
    if setup["live_view"]:
        outbox.snapshot(fleet)
    result.config = {**config_to_dict(fleet.config), "count": fleet.count,
                     "seed": fleet.seed,
                     "indices": [p.machine.index for p in fleet.probes]}
    emit({"result": result.to_dict()})
    return 0


async def _control(stdin: asyncio.StreamReader, fleet: Fleet, outbox: Outbox) -> None:
    """Carry out the parent's messages until its end of input (then stop the probes)."""
    while line := await stdin.readline():
        message = json.loads(line)
        if "fault" in message:
            outbox.spans.fault(float(message["fault"]), fleet)
        elif "add" in message:
            if fleet.running:
                fleet.add_numbered(message["add"])
        elif "stop" in message:
            fleet.stop()
    fleet.stop()


async def _pump(fleet: Fleet, outbox: Outbox, live_view: bool) -> None:
    """A batch every ``BATCH`` seconds (and a snapshot every ``SNAPSHOT`` with live
    views) while the fleet runs."""
    ticks = 0
    every = max(1, round(SNAPSHOT / BATCH))
    while True:
        await asyncio.sleep(BATCH)
        outbox.batch(fleet)
        ticks += 1
        if live_view and ticks % every == 0:
            outbox.snapshot(fleet)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it says stop
    return report_failures(lambda: ioclock.run(serve()))


if __name__ == "__main__":
    sys.exit(main())
