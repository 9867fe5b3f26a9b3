"""The chaos core's values, typed: toxics, proxy settings, addresses.

Constructors check their arguments and raise ``InvalidInput`` with a clean message.
``toxic_from_mapping`` reads Toxiproxy's toxic shape (JSON bodies, a scenario's YAML);
turning HTTP requests into these values is ``wsctl.chaos.api``'s job alone.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsctl.chaos.faults import FAULTS, FaultSpec
from wsctl.errors import InvalidInput

STREAMS = ("upstream", "downstream")
DEFAULT_API = "127.0.0.1:8474"  # Toxiproxy's port, on loopback
DEFAULT_LISTEN = "127.0.0.1:0"  # any free port on loopback
DEFAULT_MAX_CONNECTIONS = 4096
"""``wsctl chaos serve``'s cap on each proxy's live connections: each holds two file
descriptors, so a loop through two proxies stays under the usual 20,000 per process."""
# Proxy and toxic names: URL-unreserved characters, so a name is always one path segment
# that can be read and deleted again (a "/" or a 10 MB name could not).
NAME = re.compile(r"[A-Za-z0-9._~-]{1,200}")
_PORT = re.compile(r"[0-9]{1,5}")  # ASCII digits only: str.isdigit() admits "²"


def check_name(name: object, what: str = "name") -> str:
    """``name`` if it is 1-200 of ``A-Z a-z 0-9 . _ ~ -``; InvalidInput otherwise."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        shown = name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "…"
        raise InvalidInput(f"{what}: use 1-200 of A-Z a-z 0-9 . _ ~ -, got {shown!r}")
    return name


def parse_address(text: str, what: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``:port``) into a pair; InvalidInput if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not _PORT.fullmatch(port) or int(port) > 65535:
        raise InvalidInput(f"{what} {text!r} is not host:port")
    host = host.strip("[]") or default_host
    if host == "localhost":
        host = "127.0.0.1"
    return host, int(port)


MAX_UPSTREAMS = 64  # upstreams of one proxy


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """What a proxy is asked to be: Toxiproxy's proxy fields, checked, plus ``upstreams``.

    ``upstreams`` (wsctl's extension) is the list a proxy balances new connections over;
    ``upstream`` is its first. Give either (or both, ``upstream`` first in the list).
    """

    name: str
    upstream: str = ""
    listen: str = DEFAULT_LISTEN
    enabled: bool = True
    upstreams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InvalidInput("a proxy needs a name")
        check_name(self.name)
        if not isinstance(self.enabled, bool):
            raise InvalidInput("enabled must be true or false")
        upstreams = check_upstreams(self.upstreams) if self.upstreams else ()
        if not isinstance(self.upstream, str):
            raise InvalidInput("upstream must be a string")
        if not upstreams:
            if not self.upstream:
                raise InvalidInput("missing required field: upstream")
            upstreams = (self.upstream,)
        elif self.upstream and self.upstream != upstreams[0]:
            raise InvalidInput(f"upstream {self.upstream!r} must be the first of upstreams "
                               "(or be left out)")
        for field, value in (("listen", self.listen), ("upstream", upstreams[0])):
            if not isinstance(value, str):
                raise InvalidInput(f"{field} must be a string")
            parse_address(value, field)
        object.__setattr__(self, "upstreams", upstreams)
        object.__setattr__(self, "upstream", upstreams[0])


def check_upstreams(value: Any) -> tuple[str, ...]:
    """A list of 1-64 distinct ``host:port`` strings as a tuple; InvalidInput otherwise."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInput("upstreams must be a list of host:port strings")
    if not 1 <= len(value) <= MAX_UPSTREAMS:
        raise InvalidInput(f"upstreams must list 1 to {MAX_UPSTREAMS} addresses, got {len(value)}")
    for address in value:
        if not isinstance(address, str):
            raise InvalidInput(f"upstreams must be host:port strings, got {address!r}")
        parse_address(address, "upstream")
        if value.count(address) > 1:
            raise InvalidInput(f"upstreams lists {address} twice")
    return tuple(value)


def upstreams_after(
    current: tuple[str, ...], upstream: str | None, upstreams: Any = None
) -> tuple[str, ...] | Any:
    """The upstream list an update asks for (checked later, by ``ProxySpec``): ``upstreams``
    if given; else ``upstream`` alone, unless it names the current first upstream (a
    Toxiproxy client sending back the proxy it read), which keeps the list; else as is."""
    if upstreams is not None:
        return upstreams
    if not upstream or upstream == current[0]:
        return current
    return (upstream,)


@dataclass(frozen=True, slots=True)
class Toxic:
    """A fault as the core applies it: Toxiproxy's toxic, typed.

    ``config`` is the fault's attributes (an instance of ``FAULTS[type].config``; None:
    its defaults). Toxiproxy's defaults: stream downstream, toxicity 1.0, name
    ``<type>_<stream>``. InvalidInput if a field does not fit.
    """

    type: str
    config: Any = None
    name: str = ""
    stream: str = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        _check_stream(self.stream)
        spec = FAULTS[_check_type(self.type)]
        try:
            toxicity = check_toxicity(self.toxicity)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        config = spec.config() if self.config is None else self.config
        if not isinstance(config, spec.config):
            raise InvalidInput(
                f"a {self.type} toxic needs a {spec.config.__name__} config, got {config!r}"
            )
        check = getattr(config, "validate", None)
        if check is not None:
            try:
                check()
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        if not isinstance(self.name, str):
            raise InvalidInput("name must be a string")
        if self.name:
            check_name(self.name)
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "toxicity", toxicity)
        object.__setattr__(self, "name", self.name or f"{self.type}_{self.stream}")

    @property
    def spec(self) -> FaultSpec:
        return FAULTS[self.type]

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dataclasses.asdict(self.config),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


def toxic_from_mapping(data: Mapping[str, Any]) -> Toxic:
    """A toxic from Toxiproxy's shape ``{type, stream, toxicity, name, attributes}``.

    InvalidInput if there can't be such a toxic (unknown type or stream); ValueError
    naming the field if a field is malformed (toxicity, name, an attribute).
    """
    stream = data.get("stream") or "downstream"
    _check_stream(stream)
    kind = _check_type(data.get("type"))
    spec = FAULTS[kind]
    toxicity = data.get("toxicity")
    toxicity = 1.0 if toxicity is None else check_toxicity(toxicity)
    name = data.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    check_name(name)
    config = spec.parse(data.get("attributes"))
    return Toxic(type=kind, config=config, name=name, stream=stream, toxicity=toxicity)


def check_toxicity(value: Any) -> float:
    """A toxicity as a float; ValueError unless it is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"toxicity must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_stream(stream: Any) -> None:
    if stream not in STREAMS:
        raise InvalidInput("stream was invalid, can be either upstream or downstream")


def _check_type(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in FAULTS:
        raise InvalidInput(f"invalid toxic type: {kind!r} (valid types: {', '.join(FAULTS)})")
    return kind
