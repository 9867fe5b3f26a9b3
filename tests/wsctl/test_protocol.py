"""Resume protocol v1 codec."""

import json

import pytest

from wsctl import protocol as p


def test_welcome_round_trips_through_json():
    """A welcome encodes with type first and parses back to the same value."""
    msg = p.Welcome("a", "e1", 3, True, 2, p.Heartbeat(1.0, 2.0))
    text = p.encode(msg)
    assert text.startswith('{"type":"welcome"')
    assert "snapshot" not in json.loads(text)
    assert p.parse_server(text) == msg


def test_event_fast_path_matches_codec():
    """encode_event produces a frame the parser reads as the same event."""
    text = p.encode_event(7, 1700000000.25, json.dumps({"step": 1}))
    assert p.parse_server(text) == p.Event(7, 1700000000.25, {"step": 1})


@pytest.mark.parametrize(
    "t", [0.0, -0.0, 1.5, 1764140000.123456, 1e-300, 1e300, 3.0, float("inf"), -float("inf"),
          float("nan")])
def test_pong_fast_path_is_the_codecs_text(t):
    """encode_pong writes exactly what encode(Pong(t)) writes, non-finite values too."""
    assert p.encode_pong(t) == p.encode(p.Pong(t))
    assert p.encode_pong(float(json.loads('{"t": 12}')["t"])) == p.encode(p.Pong(12.0))


@pytest.mark.parametrize(
    "frame",
    ['{"type":"hello"}', "[1]", "not json", '{"type":"ack","offset":-1}', b"\x00",
     '{"type":"ping","t":true}'],
)
def test_client_junk_is_a_protocol_error(frame):
    """Anything but a well-formed ping or ack is rejected."""
    with pytest.raises(p.ProtocolError):
        p.parse_client(frame)


def test_resume_query_and_retry_hint():
    """Resume parameters are URL-encoded; retry hints are read from close reasons."""
    assert p.resume_query(None, None) == ""
    assert p.resume_query("e 1", 5, "t") == "?epoch=e+1&offset=5&token=t"
    assert p.retry_hint_ms("server going away; retry_ms=1500") == 1500
    assert p.retry_hint_ms("bye") is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [("http://h/ws/a", "must start with ws:// or wss://"), ("ws://", "invalid URL"),
     ("ws://h:99999/ws/a", "invalid URL")],
)
def test_check_url_refuses_what_is_not_a_websocket_url(url, reason):
    """Only ws:// and wss:// URLs with a host (and a valid port) pass; {n} is allowed."""
    from wsctl.errors import InvalidInput

    with pytest.raises(InvalidInput, match=reason):
        p.check_url(url)
    p.check_url("wss://example.test:8443/ws/alert-{n}")


@pytest.mark.parametrize(("frame", "reason"), [
    ('{"type":"ping","t":NaN}', "NaN is not JSON"),
    ('{"type":"ping","t":-Infinity}', "-Infinity is not JSON"),
    ('{"type":"ping","t":1e400}', "out of range"),
    ('{"type":"ping","t":' + "9" * 309 + "}", r"out of range \(64-bit\)"),
    ('{"type":"ack","offset":' + "7" * 5000 + "}", r"out of range \(64-bit\)"),
    ('{"type":"ack","offset":9223372036854775808}', r"out of range \(64-bit\)"),
])
def test_numbers_outside_json_and_64_bits_are_protocol_errors(frame, reason):
    """Non-finite numbers and integers past 64 bits are ProtocolError, never a crash."""
    with pytest.raises(p.ProtocolError, match=reason):
        p.parse_client(frame)
    assert p.parse_client('{"type":"ack","offset":9223372036854775807}').offset == 2**63 - 1


@pytest.mark.parametrize(("epoch", "offset", "token"), [
    ("1700000000-ab", 12, None), ("a b&c=d/é", 0, "tok+en/="), (None, None, "x y"),
    ("e", None, None), (None, None, None), ("e", -1, ""),
])
def test_resume_query_is_what_urlencode_writes(epoch, offset, token):
    """The hand-built query (made on every reconnect attempt) encodes as urlencode does."""
    from urllib.parse import urlencode

    from wsctl.protocol import resume_query

    params = {}
    if epoch is not None and offset is not None:
        params.update(epoch=epoch, offset=str(offset))
    if token:
        params["token"] = token
    assert resume_query(epoch, offset, token) == ("?" + urlencode(params) if params else "")
