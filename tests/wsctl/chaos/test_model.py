"""The chaos core's typed values: toxics and proxy settings, and reading Toxiproxy's toxic shape."""

from __future__ import annotations

import pytest

from wsctl.chaos.faults.close import Close
from wsctl.chaos.faults.latency import Latency
from wsctl.chaos.model import ProxySpec, Toxic, toxic_from_mapping
from wsctl.errors import InvalidInput


def test_toxic_takes_toxiproxys_defaults() -> None:
    """A typed toxic defaults to downstream, toxicity 1.0, <type>_<stream> and default config."""
    toxic = Toxic("latency", stream="upstream")
    assert (toxic.name, toxic.stream, toxic.toxicity) == ("latency_upstream", "upstream", 1.0)
    assert toxic.config == Latency()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "lag"}, "invalid toxic type: 'lag'"),
        ({"type": "latency", "stream": "up"}, "upstream or downstream"),
        ({"type": "latency", "toxicity": 1.5}, r"toxicity must be a number in \[0, 1\]"),
        ({"type": "latency", "toxicity": True}, "toxicity must be a number"),
        ({"type": "latency", "config": Close()}, "needs a Latency config"),
        ({"type": "close", "config": Close(code=1005)}, "attributes.code"),
    ],
)
def test_toxic_refuses_bad_fields(kwargs: dict[str, object], message: str) -> None:
    """A typed toxic whose type, stream, toxicity or config doesn't fit is InvalidInput."""
    with pytest.raises(InvalidInput, match=message):
        Toxic(**kwargs)  # type: ignore[arg-type]


def test_toxic_from_mapping_reads_toxiproxys_shape() -> None:
    """Every field is read; nulls mean Toxiproxy's defaults."""
    body = {"type": "latency", "stream": "upstream", "toxicity": 0.5, "name": "slow",
            "attributes": {"latency": 300, "jitter": 50}}
    assert toxic_from_mapping(body) == Toxic(
        "latency", Latency(latency=300, jitter=50), name="slow", stream="upstream", toxicity=0.5
    )
    nulls = {"type": "cut", "stream": None, "toxicity": None, "name": None, "attributes": None}
    assert toxic_from_mapping(nulls) == Toxic("cut")


@pytest.mark.parametrize(
    ("body", "message"),
    [({"type": "latency", "name": 3}, "^name must be a string$"),
     ({"type": "latency", "toxicity": "x"}, "^toxicity must be"),
     ({"type": "latency", "attributes": {"latency": "fast"}}, "^attributes.latency: ")],
)
def test_malformed_field_is_a_clean_value_error(body: dict[str, object], message: str) -> None:
    """A malformed field is a ValueError naming it, with no HTTP wording in the message."""
    with pytest.raises(ValueError, match=message):
        toxic_from_mapping(body)


def test_impossible_toxic_from_mapping_is_invalid_input() -> None:
    """An unknown type or stream is InvalidInput (the stream is checked first, as Toxiproxy)."""
    with pytest.raises(InvalidInput, match="upstream or downstream"):
        toxic_from_mapping({"type": "lag", "stream": "sideways"})
    with pytest.raises(InvalidInput, match="invalid toxic type: None"):
        toxic_from_mapping({})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "upstream": "127.0.0.1:1"}, "needs a name"),
        ({"name": "p", "upstream": "nowhere"}, "upstream 'nowhere' is not host:port"),
        ({"name": "p", "upstream": "127.0.0.1:1", "listen": "x"}, "listen 'x' is not"),
        ({"name": "p", "upstream": "127.0.0.1:1", "enabled": "yes"}, "true or false"),
    ],
)
def test_proxy_spec_refuses_bad_fields(kwargs: dict[str, object], message: str) -> None:
    """A proxy without a name, with an address that isn't host:port or a non-bool enabled."""
    with pytest.raises(InvalidInput, match=message):
        ProxySpec(**kwargs)  # type: ignore[arg-type]
