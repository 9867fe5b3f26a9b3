"""The sans-I/O Socket.IO client, frame by frame, against the v5 / Engine.IO v4 specs."""

import pytest

from wsctl.probe.socketio import (
    Ack,
    Connected,
    ConnectError,
    Disconnect,
    Event,
    Malformed,
    Open,
    ProtocolError,
    SocketIOClient,
    Unsupported,
    decode,
    encode,
    engine_url,
)

OPEN = '0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'


def opened(namespace: str = "/", auth=None, now: float = 0.0) -> SocketIOClient:
    client = SocketIOClient(namespace, auth)
    client.receive_text(OPEN, now)
    return client


def connected(namespace: str = "/") -> SocketIOClient:
    client = opened(namespace)
    prefix = "" if namespace == "/" else namespace + ","
    client.receive_text(f'40{prefix}{{"sid":"s1"}}', 0.1)
    client.events_received()
    client.data_to_send()
    return client


@pytest.mark.parametrize(("url", "expected"), [
    ("ws://h:1", "ws://h:1/socket.io/?EIO=4&transport=websocket"),
    ("ws://h:1/", "ws://h:1/socket.io/?EIO=4&transport=websocket"),
    ("wss://h/custom/?token=x", "wss://h/custom/?token=x&EIO=4&transport=websocket"),
    ("ws://h/socket.io/?EIO=4&transport=websocket", "ws://h/socket.io/?EIO=4&transport=websocket"),
])
def test_engine_url(url, expected):
    """An empty path becomes /socket.io/, a custom one is kept; EIO=4 joins the query once."""
    assert engine_url(url) == expected


def test_open_packet_gives_heartbeat_in_seconds_and_connects_the_namespace():
    """The open packet yields Open (ms -> s) and the client answers with CONNECT 40."""
    client = opened(now=10.0)
    assert client.events_received() == [Open("abc", 25.0, 20.0, 1000000)]
    assert client.data_to_send() == ["40"]
    assert client.deadline == 55.0


def test_namespace_connect_with_auth_and_its_ack():
    """A custom namespace with auth: 40/ns,{auth}; the server's 40/ns,{sid} is Connected."""
    client = opened("/chat", {"token": "t"})
    assert client.data_to_send() == ['40/chat,{"token":"t"}']
    client.receive_text('40/chat,{"sid":"s9"}', 1.0)
    assert client.events_received()[-1] == Connected("/chat", "s9")
    assert client.state == "connected"


def test_main_namespace_auth_has_no_namespace_prefix():
    """Auth on the main namespace is sent as 40{...} (no '/,')."""
    assert opened("/", {"k": 1}).data_to_send() == ['40{"k":1}']


def test_ping_is_answered_and_moves_the_deadline():
    """Server ping 2 -> pong 3; the liveness deadline becomes now + interval + timeout."""
    client = connected()
    client.receive_text("2", 30.0)
    assert client.data_to_send() == ["3"]
    assert client.deadline == 75.0
    client.check(74.9)
    assert client.events_received() == []


def test_no_ping_within_interval_plus_timeout_is_a_ping_timeout():
    """check() at the deadline reports Disconnect('ping timeout') and closes the session."""
    client = connected()
    client.check(45.0)
    assert client.events_received() == [Disconnect("ping timeout")]
    assert client.closed and client.deadline is None


def test_events_main_namespace_with_payload():
    """42["name", payload, more] -> Event with args; payload is the first argument."""
    client = connected()
    client.receive_text('42["tick",{"seq":7},"x"]', 1.0)
    [event] = client.events_received()
    assert event == Event("tick", ({"seq": 7}, "x"))
    assert event.payload == {"seq": 7}
    assert client.data_to_send() == []


def test_event_without_arguments_has_no_payload():
    """42["ping"] is an event whose payload is None."""
    client = connected()
    client.receive_text('42["ping"]', 1.0)
    assert client.events_received()[0].payload is None


def test_event_with_ack_id_is_acknowledged():
    """An event asking for an ack (42/ns,12[...]) is answered 43/ns,12[] so the server's
    callback completes."""
    client = connected("/chat")
    client.receive_text('42/chat,12["tick",1]', 1.0)
    assert client.events_received() == [Event("tick", (1,), 12)]
    assert client.data_to_send() == ["43/chat,12[]"]


def test_packets_of_other_namespaces_are_ignored():
    """An event for another namespace is not this session's."""
    client = connected("/chat")
    client.receive_text('42["tick",1]', 1.0)
    client.receive_text('42/news,["tick",1]', 1.0)
    assert client.events_received() == []


def test_emits_wait_for_the_namespace_then_go_in_order():
    """emit() before Connected is queued and flushed right after the CONNECT ack."""
    client = opened("/chat")
    client.emit("subscribe", {"channel": "a"})
    client.emit("hello")
    assert client.data_to_send() == ["40/chat,"]
    client.receive_text('40/chat,{"sid":"s"}', 1.0)
    assert client.data_to_send() == ['42/chat,["subscribe",{"channel":"a"}]',
                                     '42/chat,["hello"]']
    client.emit("late", 1, ack_id=3)
    assert client.data_to_send() == ['42/chat,3["late",1]']


def test_ack_from_server():
    """43<id>[...] -> Ack."""
    client = connected()
    client.receive_text('433["ok"]', 1.0)
    assert client.events_received() == [Ack(3, ("ok",))]


def test_server_disconnect_packet_is_reported_with_its_reason():
    """41 (server-side disconnect of the namespace) -> Disconnect('io server disconnect')."""
    client = connected()
    client.receive_text("41", 2.0)
    assert client.events_received() == [Disconnect("io server disconnect")]
    assert client.closed
    client.receive_text('42["tick",1]', 2.1)
    assert client.events_received() == []


def test_custom_namespace_disconnect():
    """41/chat, closes a /chat session."""
    client = connected("/chat")
    client.receive_text("41/chat,", 2.0)
    assert client.events_received() == [Disconnect("io server disconnect")]


def test_engine_close_is_a_transport_close():
    """Engine.IO close packet 1 -> Disconnect('transport close')."""
    client = connected()
    client.receive_text("1", 2.0)
    assert client.events_received() == [Disconnect("transport close")]


def test_connect_error_carries_the_servers_message():
    """44{"message": ...} -> ConnectError; queued emits are dropped, the session is over."""
    client = opened()
    client.emit("x")
    client.receive_text('44{"message":"Not authorized","data":{"code":401}}', 1.0)
    assert client.events_received()[-1] == ConnectError("Not authorized", {"code": 401})
    assert client.closed
    assert client.data_to_send() == ["40"]


def test_binary_event_is_unsupported_and_its_attachments_skipped():
    """451-["name",{placeholder}] + one binary frame: one Unsupported, nothing else."""
    client = connected()
    client.receive_text('451-["file",{"_placeholder":true,"num":0}]', 1.0)
    client.receive_bytes(b"\x01\x02", 1.0)
    client.receive_text('42["tick",1]', 1.1)
    events = client.events_received()
    assert isinstance(events[0], Unsupported) and "1 attachment" in events[0].reason
    assert events[1:] == [Event("tick", (1,))]


def test_stray_binary_frame_is_unsupported():
    """A binary frame no packet announced is reported, not decoded."""
    client = connected()
    client.receive_bytes(b"xyz", 1.0)
    assert isinstance(client.events_received()[0], Unsupported)


@pytest.mark.parametrize("frame", ["9", "", "4x", '42{"not":"a list"}', "42[1]", "42[bad json"])
def test_malformed_frames_are_reported_and_skipped(frame):
    """Frames that break the protocol yield Malformed; the session goes on."""
    client = connected()
    client.receive_text(frame, 1.0)
    [event] = client.events_received()
    assert isinstance(event, Malformed)
    assert client.state == "connected"


def test_anything_before_the_open_packet_is_malformed():
    """A frame before Engine.IO's open packet is reported; the client still waits."""
    client = SocketIOClient()
    client.receive_text('42["x"]', 0.0)
    assert isinstance(client.events_received()[0], Malformed)
    client.receive_text(OPEN, 0.1)
    assert isinstance(client.events_received()[0], Open)


def test_open_without_heartbeat_fields_is_malformed():
    """An open packet without pingInterval/pingTimeout cannot give liveness: Malformed."""
    client = SocketIOClient()
    client.receive_text('0{"sid":"a"}', 0.0)
    assert isinstance(client.events_received()[0], Malformed)
    assert client.state == "opening" and client.deadline is None


def test_upgrade_noop_and_pong_packets_are_ignored():
    """Engine.IO 3, 5 and 6 need no action from a WebSocket-only client."""
    client = connected()
    for frame in ("3", "5", "6"):
        client.receive_text(frame, 1.0)
    assert client.events_received() == [] and client.data_to_send() == []


def test_probe_ping_is_answered_with_its_payload():
    """2probe is answered 3probe (the payload is echoed)."""
    client = connected()
    client.receive_text("2probe", 1.0)
    assert client.data_to_send() == ["3probe"]


def test_client_disconnect_sends_the_namespace_disconnect():
    """disconnect() sends 41[/ns,] and closes; nothing is sent after."""
    client = connected("/chat")
    client.disconnect()
    client.emit("x")
    assert client.data_to_send() == ["41/chat,"]
    assert client.closed


@pytest.mark.parametrize(("packet", "kind", "namespace", "ack_id", "data"), [
    ("0", "0", "/", None, None),
    ('0/admin,{"sid":"x"}', "0", "/admin", None, {"sid": "x"}),
    ('2/admin,456["a",1]', "2", "/admin", 456, ["a", 1]),
    ('212["foo"]', "2", "/", 12, ["foo"]),
    ("1/admin,", "1", "/admin", None, None),
    ('52-/admin,["baz",{}]', "5", "/admin", None, ["baz", {}]),
])
def test_decode_matches_the_spec_examples(packet, kind, namespace, ack_id, data):
    """The spec's encoding examples decode to their type, namespace, ack id and data."""
    decoded = decode(packet)
    assert (decoded.kind, decoded.namespace, decoded.ack_id, decoded.data) == (
        kind, namespace, ack_id, data)


def test_encode_matches_the_spec_examples():
    """encode() writes the spec's forms, prefixed by Engine.IO's message type 4."""
    assert encode("2", "/", ["foo"]) == '42["foo"]'
    assert encode("3", "/admin", ["bar"], 13) == '43/admin,13["bar"]'
    assert encode("1", "/admin") == "41/admin,"


def test_decode_refuses_a_binary_packet_without_count():
    """5["x"] has no attachment count: a ProtocolError."""
    with pytest.raises(ProtocolError):
        decode('5["x"]')


def test_bad_namespace_is_refused():
    """A namespace must start with / and have no comma (the encoding's delimiter)."""
    with pytest.raises(ValueError):
        SocketIOClient("chat")
    with pytest.raises(ValueError):
        SocketIOClient("/a,b")
