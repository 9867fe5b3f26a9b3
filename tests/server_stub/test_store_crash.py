"""Crash survival with the SQLite store: a real server subprocess, SIGKILL mid-stream,
restart on the same file. Epochs unchanged, offsets continue with no hole, jobs resume
from their stored progress, and resumes are ``recovered: true`` with exact replays."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.serverproc import ServerProcess
from tests.verdicts import settled
from wsctl.scenario.model import loads
from wsctl.scenario.runner import run_suite

pytestmark = pytest.mark.timeout(90)
STEPS = 7  # job steps: offset k is step (k - 1) % STEPS + 1 while no job restarts at 1


class Reader:
    """One client of one stream: what it was told and the events of each connection."""

    def __init__(self, url: str, stream: str) -> None:
        self.url, self.stream = url, stream
        self.welcomes: list[dict[str, Any]] = []
        self.runs: list[list[dict[str, Any]]] = []

    async def read(self, offset: int | None = None, epoch: str | None = None,
                   until: int | None = None) -> None:
        """Connect (resuming when ``offset`` is given) and read until the connection
        ends or an event with offset ``until`` arrives."""
        query = f"?epoch={epoch}&offset={offset}" if offset is not None else ""
        events: list[dict[str, Any]] = []
        self.runs.append(events)
        try:
            async with connect(f"{self.url}/ws/{self.stream}{query}") as ws:
                async for text in ws:
                    message = json.loads(text)
                    if message["type"] == "welcome":
                        self.welcomes.append(message)
                    elif message["type"] == "event":
                        events.append(message)
                        if until is not None and message["offset"] >= until:
                            return
        except (ConnectionClosed, OSError):
            return

    @property
    def last(self) -> int:
        return self.runs[-1][-1]["offset"]


async def test_sigkill_then_restart_resumes_every_client_exactly(tmp_path):
    """After SIGKILL and a restart on the same file, each client resuming from its last
    offset (one from far back, outside the hot window) gets recovered: true under the same
    epoch and every offset once, in order, with job steps carrying on."""
    args = ("--store", f"sqlite:{tmp_path}/streams.db", "--job-rate", "40",
            "--job-steps", str(STEPS), "--log-level", "warning")
    server = ServerProcess(*args)
    readers = [Reader(server.url, f"crash-{i}") for i in range(8)]
    try:
        tasks = [asyncio.create_task(r.read()) for r in readers]
        await asyncio.sleep(1.0)  # about 40 events each
        server.close()  # SIGKILL: no shutdown, no final commit
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert all(r.last >= 20 for r in readers), [r.last for r in readers]
        epochs = [r.welcomes[0]["epoch"] for r in readers]
        back_to = [r.last for r in readers]
        back_to[0] = 3  # this one asks for nearly everything again: read from the file
        server = ServerProcess(*args, port=server.port)
        await asyncio.wait_for(asyncio.gather(*(
            r.read(offset, epoch, until=r.last + 40)
            for r, offset, epoch in zip(readers, back_to, epochs, strict=True))), 20)
    finally:
        server.close()
    for reader, offset, epoch in zip(readers, back_to, epochs, strict=True):
        welcome = reader.welcomes[-1]
        assert (welcome["epoch"], welcome["recovered"]) == (epoch, True), welcome
        assert welcome["offset"] >= reader.runs[0][-1]["offset"]  # nothing sent was lost
        after = [e["offset"] for e in reader.runs[1]]
        assert after == list(range(offset + 1, offset + 1 + len(after)))  # no hole, no dup
        assert len(after) >= 40
        for event in reader.runs[0] + reader.runs[1]:  # the job carried on where it was
            assert event["data"]["step"] == (event["offset"] - 1) % STEPS + 1, event
    assert readers[0].welcomes[-1]["replayed"] >= readers[0].runs[0][-1]["offset"] - 3


async def test_probes_see_no_resync_and_no_loss_across_a_kill():
    """Probes through the scenario runner, server on SQLite killed for 1 s: every probe
    lost its connection and resumed, none resynced, nothing lost."""
    suite = loads("""
name: durable
duration: 5s
server: {store: sqlite, ping_interval: 1s, ping_timeout: 1s, job_rate: 20}
probes: {count: 10, stream: "dur-{n}", backoff: {base: 100ms, cap: 500ms}}
timeline:
  - {at: 1500ms, do: server.kill, for: 1s}
criteria:
  connections.lost: ">= 10"
  resyncs: "== 0"
  messages.lost: "== 0"
  messages.received: ">= 500"
""", "durable.yaml")
    report = await run_suite(suite)
    outcome = report.scenarios[0]
    assert outcome.error is None, outcome.error
    assert [settled(v) for v in outcome.verdicts] == ["pass"] * 4, outcome.verdicts
