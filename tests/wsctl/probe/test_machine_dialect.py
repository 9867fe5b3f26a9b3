"""The probe machine speaking a service's own protocol (the protocol block), on virtual
instants: connect details, sequences, resume, timestamps, heartbeat, Socket.IO."""

import json
import pickle

import pytest

from tests.wsctl.probe.helpers import machine
from wsctl.backoff import BackoffPolicy
from wsctl.errors import InvalidInput
from wsctl.probe.dialect import Dialect, parse
from wsctl.probe.machine import (
    Abort,
    Close,
    Closed,
    Connect,
    Connected,
    ProbeConfig,
    Received,
    Send,
    SendPing,
    State,
    Stop,
    Tick,
    new_metrics,
    unmeasured,
)

STEADY = BackoffPolicy(kind="exponential", base=1, cap=1, fast=None)


def listen(block, **kwargs):
    kwargs.setdefault("backoff", STEADY)
    kwargs.setdefault("heartbeat", "off")
    return machine(mode="listen", dialect=parse(block), stream="alert-{n}", **kwargs)


def seq(n, ts=None):
    return json.dumps({"seq": n} if ts is None else {"seq": n, "ts": ts})


def feed(m, numbers, at=1.0):
    for n in numbers:
        m.handle(Received(at, 100.0, seq(n)))


def reconnect(m, at):
    """Lose the connection at ``at`` and reconnect one second later; the Connect action."""
    m.handle(Closed(at, 1006))
    [connect] = m.handle(Tick(at + 1))
    m.handle(Connected(at + 1))
    return connect


def counters(m):
    return m.metrics.counters


# Connecting ---------------------------------------------------------------------------


def test_connect_carries_the_blocks_query_headers_and_subprotocols():
    """The first Connect has the query (templates filled), headers and subprotocols."""
    m = listen({"headers": {"Authorization": "Bearer ${TOKEN}"}, "subprotocols": ["v2"],
                "query": {"room": "{stream}"}}, env={"TOKEN": "t0k"})
    [connect] = m.start(0.0)
    assert connect == Connect("ws://127.0.0.1:9/ws/s3?room=alert-3", 10.0,
                              (("Authorization", "Bearer t0k"),), ("v2",))


def test_on_open_messages_are_sent_once_open_every_time():
    """on_open goes out (filled) on every connection, the resume message after it once a
    number arrived."""
    m = listen({"on_open": [{"type": "subscribe", "channel": "{stream}"}],
                "sequence": "seq", "resume": {"message": {"type": "replay",
                                                          "from": "{last_seq}"}}})
    m.start(0.0)
    assert m.handle(Connected(0.5)) == [Send('{"type":"subscribe","channel":"alert-3"}')]
    feed(m, [7, 8])
    m.handle(Closed(2.0, 1006))
    m.handle(Tick(3.0))
    assert m.handle(Connected(3.0)) == [Send('{"type":"subscribe","channel":"alert-3"}'),
                                        Send('{"type":"replay","from":8}')]


# Sequences ------------------------------------------------------------------------------


def test_sequence_counts_gaps_duplicates_and_reorders_and_settles_at_stop():
    """Gaps are missing until the end (a late one is reordered), repeats are duplicates."""
    m = listen({"sequence": "seq"})
    m.start(0.0)
    m.handle(Connected(0.0))
    feed(m, [10, 11, 14, 12, 12, 16])  # 13 and 15 never come; 12 late then repeated
    assert counters(m)["messages.lost"] == 0  # still missing, not yet lost
    m.handle(Stop(5.0))
    c = counters(m)
    assert (c["messages.received"], c["messages.lost"], c["messages.reordered"],
            c["messages.duplicated"], c["resyncs"]) == (6, 2, 1, 1, 0)


def test_a_jump_across_a_reconnect_is_loss_and_a_restart_is_a_resync():
    """Numbers skipped while away are lost; a count that starts over after a reconnect is
    a new generation: one resync, and the old generation's holes are lost then."""
    m = listen({"sequence": "seq"})
    m.start(0.0)
    m.handle(Connected(0.0))
    feed(m, [1, 2, 4])  # 3 missing
    reconnect(m, 2.0)
    feed(m, [9, 10], at=3.5)  # 5..8 sent while away: a jump is loss
    reconnect(m, 4.0)
    feed(m, [1, 2, 3], at=5.5)  # the service restarted: a new generation
    c = counters(m)
    assert (c["resyncs"], c["messages.lost"]) == (1, 5)
    m.handle(Stop(6.0))
    assert (counters(m)["messages.lost"], counters(m)["messages.duplicated"]) == (5, 0)
    notes = [r.reason for r in m.take_records()
             if r.state == r.previous and r.reason != "start"]
    assert notes == ["resync: sequence restarted at 1 (highest was 10)"]


def test_a_message_whose_sequence_is_not_a_number_is_invalid_not_counted():
    """A present but bad value is messages.invalid; a message without the path is
    counted, not judged; a non-JSON frame too."""
    m = listen({"sequence": "seq"})
    m.start(0.0)
    m.handle(Connected(0.0))
    for frame in ('{"seq": "x"}', '{"status": "ok"}', "hello", seq(1)):
        m.handle(Received(1.0, 100.0, frame))
    c = counters(m)
    assert (c["messages.invalid"], c["messages.received"]) == (1, 3)


# Resume ------------------------------------------------------------------------------------


def test_resume_query_asks_from_last_seq_and_times_resume_time():
    """After a loss the URL carries since=<highest>; resume_time runs from the loss noticed
    to the first numbered message on the new connection; nothing is lost when the
    service replays the gap."""
    m = listen({"sequence": "seq", "resume": {"query": "since={last_seq}"}})
    [first] = m.start(0.0)
    assert first.url == "ws://127.0.0.1:9/ws/s3"
    m.handle(Connected(0.0))
    feed(m, [1, 2, 3])
    connect = reconnect(m, 2.0)
    assert connect.url == "ws://127.0.0.1:9/ws/s3?since=3"
    m.handle(Received(3.0, 100.0, '{"status": "hello"}'))  # not numbered: not the end
    feed(m, [4, 5, 6], at=3.25)
    m.handle(Stop(4.0))
    resume = m.metrics.histograms["resume_time"].summary()
    assert resume["count"] == 1 and resume["max"] == pytest.approx(1.25, rel=1e-3)
    assert counters(m)["messages.lost"] == 0


# Timestamps and heartbeat ----------------------------------------------------------------


def test_timestamp_gives_delivery_latency_in_ms_or_s():
    """The sender's time (ms by magnitude) against the wall time on arrival."""
    m = listen({"timestamp": "ts"})
    m.start(0.0)
    m.handle(Connected(0.0))
    wall = 1_700_000_000.0
    m.handle(Received(1.0, wall + 0.25, json.dumps({"ts": wall * 1000})))  # ms by size
    m.handle(Received(1.0, wall + 0.5, json.dumps({"ts": wall})))
    latency = m.metrics.histograms["delivery_latency"].summary()
    assert latency["count"] == 2
    assert (latency["min"], latency["max"]) == pytest.approx((0.25, 0.5), rel=1e-3)
    assert "messages.lost" not in counters(m)


def test_application_heartbeat_sends_the_blocks_ping_and_times_its_answer():
    """With protocol.heartbeat, auto is the application ping: its answer gives rtt and is
    not a message; no answer in time drops the connection."""
    m = listen({"heartbeat": {"send": {"op": "ping", "who": "{n}"},
                              "answer": {"op": "pong"}}},
               heartbeat="auto", heartbeat_interval=1.0, heartbeat_timeout=0.5)
    m.start(0.0)
    m.handle(Connected(0.0))
    assert m.handle(Tick(1.0)) == [Send('{"op":"ping","who":3}')]
    m.handle(Received(1.1, 0.0, '{"op": "pong"}'))
    assert m.metrics.histograms["rtt"].summary()["max"] == pytest.approx(0.1, rel=1e-3)
    assert counters(m)["messages.received"] == 0
    m.handle(Tick(2.0))
    actions = m.handle(Tick(2.5))
    assert isinstance(actions[0], Abort) and m.state is State.BACKOFF
    assert "no pong within 0.5s" in actions[0].reason


# Socket.IO ---------------------------------------------------------------------------------

SIO = {"adapter": "socketio", "sequence": "seq", "timestamp": "ts",
       "on_open": [["subscribe", "{stream}"]],
       "socketio": {"namespace": "/feed", "events": ["tick"], "auth": {"n": "{n}"}}}
OPEN = '0{"sid":"abc","upgrades":[],"pingInterval":1000,"pingTimeout":500}'


def sio_open(m, at=0.0):
    m.start(at)
    assert m.handle(Connected(at)) == []  # nothing until Engine.IO's open packet
    assert m.handle(Received(at, 0.0, OPEN)) == [Send('40/feed,{"n":3}')]
    return m.handle(Received(at, 0.0, '40/feed,{"sid":"x"}'))


def test_socketio_connects_the_namespace_then_sends_on_open_and_counts_events():
    """Open -> namespace CONNECT with auth -> on_open emits; tick events are sequenced and
    timed from their payload; other events are not counted; pings are answered."""
    m = listen(SIO)
    assert sio_open(m) == [Send('42/feed,["subscribe","alert-3"]')]
    for n in (1, 2, 4):
        frame = '42/feed,["tick",' + json.dumps({"seq": n, "ts": 99.5}) + "]"
        m.handle(Received(0.5, 100.0, frame))
    m.handle(Received(0.5, 100.0, '42/feed,["status",{"seq":99}]'))
    assert m.handle(Received(0.6, 0.0, "2")) == [Send("3")]
    m.handle(Stop(1.0))
    c = counters(m)
    assert (c["messages.received"], c["messages.lost"]) == (3, 1)
    assert m.metrics.histograms["delivery_latency"].summary()["max"] == \
        pytest.approx(0.5, rel=1e-3)


def test_socketio_liveness_from_ping_interval_plus_timeout():
    """No ping within pingInterval + pingTimeout of the last: 'ping timeout', dropped."""
    m = listen(SIO)
    sio_open(m, at=0.0)
    m.handle(Received(1.0, 0.0, "2"))
    assert m.deadline == pytest.approx(2.5)
    assert m.handle(Tick(2.4)) == []
    actions = m.handle(Tick(2.5))
    assert actions[0] == Abort("ping timeout") and m.state is State.BACKOFF


@pytest.mark.parametrize(("frame", "reason"), [
    ("41/feed,", "io server disconnect"),
    ("1", "transport close"),
    ('44/feed,{"message":"bad token"}', "Socket.IO connect error: bad token"),
])
def test_socketio_endings_are_losses_with_their_reason(frame, reason):
    """A server disconnect, an Engine.IO close and a refused namespace end the connection
    with Socket.IO's reason; the probe reconnects."""
    m = listen(SIO)
    sio_open(m)
    actions = m.handle(Received(1.0, 0.0, frame))
    assert actions[0] == Abort(reason) and m.state is State.BACKOFF
    [lost] = [r for r in m.take_records() if r.state is State.LOST]
    assert lost.reason == reason


def test_socketio_close_1000_is_a_transport_close_not_the_end():
    """A WebSocket close, even 1000, is a transport close: the session reconnects."""
    m = listen(SIO)
    sio_open(m)
    m.handle(Closed(1.0, 1000))
    assert m.state is State.BACKOFF


def test_socketio_stop_leaves_the_namespace_then_closes():
    """A stop sends the namespace DISCONNECT before the close frame."""
    m = listen(SIO)
    sio_open(m)
    actions = m.handle(Stop(1.0))
    assert actions == [Send("41/feed,"), Close(1000, "stopped")]


def test_socketio_frames_that_are_not_engine_io_are_invalid():
    """A server that is not Socket.IO: its frames are messages.invalid, and with no
    namespace CONNECT in time the connection is dropped."""
    m = listen(SIO, connect_timeout=2.0)
    m.start(0.0)
    m.handle(Connected(0.0))
    m.handle(Received(0.5, 0.0, '{"seq": 1}'))
    assert counters(m)["messages.invalid"] == 1
    actions = m.handle(Tick(2.0))
    assert actions[0] == Abort("no namespace CONNECT from the Socket.IO server")


# What exists in which mode ----------------------------------------------------------------


def test_listen_without_a_block_emits_no_sequence_latency_or_resume_metrics():
    """Listen mode alone measures frames and connections; the rest is absent, with what
    to configure."""
    metrics = new_metrics("listen")
    assert {"messages.received", "messages.invalid", "reconnect_time", "rtt"} <= \
        set(metrics.counters) | set(metrics.histograms)
    absent = {"messages.lost", "messages.duplicated", "messages.reordered", "resyncs",
              "delivery_latency", "resume_time", "messages.replayed", "messages.sent"}
    assert not absent & (set(metrics.counters) | set(metrics.histograms))
    reasons = unmeasured("listen")
    assert set(reasons) == absent
    assert "protocol.sequence" in reasons["messages.lost"]


def test_each_mode_emits_what_it_can_measure():
    """sent only in echo, replayed only in resume, resyncs not in echo; a block adds its
    metrics in listen mode; Socket.IO has no rtt unless a heartbeat is asked for."""
    echo, resume = new_metrics("echo"), new_metrics("resume")
    assert "messages.sent" in echo.counters and "messages.sent" not in resume.counters
    assert "messages.replayed" in resume.counters and "messages.replayed" not in echo.counters
    assert "resyncs" not in echo.counters and "delivery_latency" not in echo.histograms
    block = parse({"sequence": "seq", "timestamp": "ts",
                   "resume": {"query": "since={last_seq}"}})
    full = new_metrics("listen", block)
    assert {"messages.lost", "resyncs"} <= set(full.counters)
    assert {"delivery_latency", "resume_time"} <= set(full.histograms)
    sio_block = parse({"adapter": "socketio"})
    assert "rtt" not in new_metrics("listen", sio_block).histograms
    assert "rtt" in new_metrics("listen", sio_block, "protocol").histograms


@pytest.mark.parametrize(("mode", "block", "field"), [
    ("echo", {"adapter": "socketio"}, "protocol.adapter"),
    ("echo", {"sequence": "seq"}, "protocol.sequence"),
    ("resume", {"on_open": [{"a": 1}]}, "protocol.on_open"),
    ("resume", {"adapter": "socketio"}, "protocol.adapter"),
])
def test_a_block_asking_what_the_mode_cannot_do_is_refused(mode, block, field):
    """Echo with Socket.IO, or judging fields outside listen mode: InvalidInput naming it."""
    with pytest.raises(InvalidInput, match=field):
        ProbeConfig("ws://h/", mode=mode, dialect=parse(block))


def test_echo_and_resume_take_the_connection_fields():
    """headers/subprotocols/query in resume and echo, on_open in echo: accepted."""
    block = {"headers": {"X-Token": "a"}, "subprotocols": ["v1"], "query": {"a": 1}}
    ProbeConfig("ws://h/", mode="resume", dialect=parse(block))
    ProbeConfig("ws://h/", mode="echo", dialect=parse({**block, "on_open": ["hi"]}))


def test_config_with_a_block_round_trips_through_json_and_pickle():
    """to_json carries the block as data parse() restores equal; the config pickles."""
    block = parse(SIO)
    config = ProbeConfig("ws://h/", mode="listen", dialect=block, stream="a-{n}")
    data = json.loads(json.dumps(config.to_json()))
    assert parse(data["dialect"]) == block
    assert data["stream"] == "a-{n}" and data["mode"] == "listen"
    assert pickle.loads(pickle.dumps(config)) == config
    assert Dialect().to_data() == {}


def test_protocol_pings_still_work_with_a_block():
    """A block without heartbeat leaves listen mode's protocol pings."""
    m = listen({"sequence": "seq"}, heartbeat="auto", heartbeat_interval=1.0)
    m.start(0.0)
    m.handle(Connected(0.0))
    assert m.handle(Tick(1.0)) == [SendPing(1.0)]
