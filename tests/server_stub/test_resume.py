"""Resume protocol v1 against the real server on 127.0.0.1 (in-process, real sockets)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.server_stub.helpers import recv_events, recv_message
from wsctl import protocol as p

FAST = {"job_rate": 50.0, "ping_interval": 5.0, "ping_timeout": 5.0}


async def test_fresh_connection_gets_welcome_then_contiguous_offsets_from_one(make_server):
    """A fresh client is welcomed (recovered, nothing replayed) and sees offsets 1, 2, 3..."""
    server = await make_server(**FAST)
    async with connect(f"{server.url}/ws/job-1") as ws:
        welcome = await recv_message(ws)
        assert isinstance(welcome, p.Welcome)
        assert (welcome.stream, welcome.offset, welcome.recovered, welcome.replayed) == (
            "job-1", 0, True, 0)
        assert welcome.heartbeat == p.Heartbeat(5.0, 5.0)
        events = await recv_events(ws, 20)
    assert [e.offset for e in events] == list(range(1, 21))
    assert events[0].data == {"step": 1, "total": 100, "status": "running",
                              "message": "job 1: step 1/100 running"}


async def test_resume_replays_the_gap_in_order_without_duplicates(make_server):
    """Resuming from offset N replays N+1... then continues live, no hole, no repeat."""
    server = await make_server(**FAST)
    async with connect(f"{server.url}/ws/a") as ws:
        welcome = await recv_message(ws)
        seen = await recv_events(ws, 5)
    await asyncio.sleep(0.3)  # the job goes on while we are away
    last = seen[-1].offset
    async with connect(f"{server.url}/ws/a?epoch={welcome.epoch}&offset={last}") as ws:
        again = await recv_message(ws)
        assert isinstance(again, p.Welcome)
        assert again.recovered and again.epoch == welcome.epoch
        assert again.replayed == again.offset - last > 5
        events = await recv_events(ws, again.replayed + 10)
    offsets = [e.offset for e in events]
    assert offsets == list(range(last + 1, last + 1 + len(offsets)))


async def test_unknown_epoch_is_a_declared_resync_with_snapshot(make_server):
    """A resume from another epoch answers recovered: false and carries a snapshot."""
    server = await make_server(**FAST)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        await recv_events(ws, 3)
    async with connect(f"{server.url}/ws/a?epoch=nope&offset=2") as ws:
        welcome = await recv_message(ws)
        assert isinstance(welcome, p.Welcome)
        assert welcome.recovered is False and welcome.replayed == 0
        assert welcome.snapshot is not None and welcome.snapshot["offset"] == welcome.offset
        assert welcome.snapshot["data"]["step"] == welcome.offset
        nxt = await recv_events(ws, 1)
        assert nxt[0].offset == welcome.offset + 1


async def test_trimmed_offset_is_a_declared_resync(make_server):
    """When history before the client's offset was trimmed, the answer is recovered: false."""
    server = await make_server(replay_size=5, **FAST)
    async with connect(f"{server.url}/ws/a") as ws:
        welcome = await recv_message(ws)
        await recv_events(ws, 12)
    async with connect(f"{server.url}/ws/a?epoch={welcome.epoch}&offset=1") as ws:
        answer = await recv_message(ws)
        assert isinstance(answer, p.Welcome) and answer.recovered is False
        assert answer.snapshot is not None


async def test_baseline_profile_never_recovers(make_server):
    """The baseline profile has no replay: every resume is a resync; compression is on."""
    server = await make_server(profile="baseline", **FAST)
    async with connect(f"{server.url}/ws/a") as ws:
        welcome = await recv_message(ws)
        await recv_events(ws, 3)
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
    async with connect(f"{server.url}/ws/a?epoch={welcome.epoch}&offset=3") as ws:
        answer = await recv_message(ws)
        assert isinstance(answer, p.Welcome) and answer.recovered is False


async def test_ping_gets_pong_and_ack_trims_the_store(make_server):
    """An application ping is answered with its t; an ack lets the store forget."""
    server = await make_server(**FAST)
    async with connect(f"{server.url}/ws/a", compression=None) as ws:
        await recv_message(ws)
        events = await recv_events(ws, 10)
        await ws.send(p.encode(p.Ping(12.5)))
        while not isinstance(msg := await recv_message(ws), p.Pong):
            pass
        assert msg.t == 12.5
        before = server.store.first("a")
        await ws.send(p.encode(p.Ack(events[-1].offset)))
        await asyncio.sleep(0.1)
        assert before == 1 and server.store.first("a") == events[-1].offset + 1


@pytest.mark.parametrize("frame", ['{"type":"subscribe"}', "garbage", b"\x01\x02"])
async def test_junk_frame_gets_error_then_1008(make_server, frame):
    """Anything but ping/ack gets an error frame naming the problem, then close 1008."""
    server = await make_server(**FAST)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        await ws.send(frame)
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                msg = await recv_message(ws)
                if isinstance(msg, p.Error):
                    assert msg.code == p.ERR_BAD_MESSAGE and msg.message
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.parametrize("frame", [
    '{"type":"ping","t":NaN}', '{"type":"ping","t":Infinity}', '{"type":"ping","t":1e400}',
    '{"type":"ping","t":' + "9" * 309 + "}", '{"type":"ack","offset":' + "7" * 4400 + "}",
    '{"type":"ack","offset":' + str(2**63) + "}"])
async def test_numbers_out_of_range_get_error_then_1008(make_server, frame):
    """NaN, infinities and integers past 64 bits in a client message get an error frame
    and 1008 (not an echoed non-JSON NaN, not a 1011 with a traceback)."""
    server = await make_server(**FAST)
    async with connect(f"{server.url}/ws/a", max_size=None) as ws:
        await recv_message(ws)
        await ws.send(frame)
        errors = []
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                raw = await asyncio.wait_for(ws.recv(), 5)
                json.loads(raw, parse_constant=pytest.fail)  # no bare NaN or Infinity
                if isinstance(msg := p.parse_server(raw), p.Error):
                    errors.append(msg)
        assert [e.code for e in errors] == [p.ERR_BAD_MESSAGE], errors
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_ack_past_what_was_sent_is_a_bad_message(make_server):
    """Acking an offset the server never sent is refused with 1008."""
    server = await make_server(**FAST)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        await ws.send(p.encode(p.Ack(10_000)))
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                await recv_message(ws)
        assert closed.value.rcvd.code == 1008


async def test_oversize_frame_is_closed_1009(make_server):
    """A client frame over max_message_size closes the connection with 1009."""
    server = await make_server(max_message_size=1024, **FAST)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        await ws.send("x" * 2048)
        with pytest.raises(ConnectionClosedError) as closed:
            while True:
                await ws.recv()
        assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize(
    ("path", "status"),
    [("/ws/bad name", 400), ("/ws/" + "x" * 129, 400), ("/ws/a?offset=3", 400),
     ("/ws/a?epoch=e&offset=-1", 400), ("/nowhere", 404)],
)
async def test_bad_handshakes_are_refused_with_status(make_server, path, status):
    """Invalid stream names, half a resume, bad offsets and unknown paths are refused."""
    server = await make_server(**FAST)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.url + path.replace(" ", "%20")):
            pass
    assert refused.value.response.status_code == status


@pytest.mark.parametrize("offset", ["%C2%B2", "%D9%A3", "1e3", "9" * 30])
async def test_non_ascii_or_huge_offsets_are_400_not_500(make_server, offset):
    """Offsets must be ASCII digits ('²' and Arabic-Indic digits pass str.isdigit)."""
    server = await make_server(**FAST)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.url}/ws/a?epoch=e&offset={offset}"):
            pass
    assert refused.value.response.status_code == 400
