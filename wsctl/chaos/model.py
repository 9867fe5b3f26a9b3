"""Values the API speaks in: toxics (Toxiproxy's JSON), addresses, API errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wsctl.chaos.faults import FAULTS, FaultSpec, InvalidAttribute
from wsctl.errors import InvalidInput

STREAMS = ("upstream", "downstream")
DEFAULT_API = "127.0.0.1:8474"  # Toxiproxy's port, on loopback


class ChaosError(Exception):
    """An API-level failure with an HTTP status (Toxiproxy's codes and messages).

    ``kind`` names a failure a client may act on (``port_in_use``); it is sent as an
    extra field of the error body."""

    def __init__(self, message: str, status: int, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind


def not_found(what: str) -> ChaosError:
    return ChaosError(f"{what} not found", 404)


def parse_address(text: str, what: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``:port``) into a pair; InvalidInput if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidInput(f"{what} {text!r} is not host:port")
    host = host.strip("[]") or default_host
    if host == "localhost":
        host = "127.0.0.1"
    return host, int(port)


@dataclass(slots=True)
class Toxic:
    """A fault as the API sees it: Toxiproxy's toxic JSON, parsed."""

    name: str
    type: str
    stream: str
    toxicity: float
    config: Any

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

    @classmethod
    def from_json(cls, body: Any) -> Toxic:
        """Toxiproxy's defaults: stream downstream, toxicity 1.0, name ``<type>_<stream>``."""
        if not isinstance(body, dict):
            raise ChaosError("bad request body: expected a JSON object", 400)
        kind = body.get("type")
        stream = body.get("stream", "downstream") or "downstream"
        if stream not in STREAMS:
            raise ChaosError("stream was invalid, can be either upstream or downstream", 400)
        if kind not in FAULTS:
            valid = ", ".join(FAULTS)
            raise ChaosError(f"invalid toxic type: {kind!r} (valid types: {valid})", 400)
        toxicity = body.get("toxicity", 1.0)
        if toxicity is None:
            toxicity = 1.0
        toxicity = _toxicity(toxicity)
        name = body.get("name") or f"{kind}_{stream}"
        if not isinstance(name, str):
            raise ChaosError("bad request body: name must be a string", 400)
        try:
            config = FAULTS[kind].parse(body.get("attributes"))
        except InvalidAttribute as exc:
            raise ChaosError(f"bad request body: {exc}", 400) from None
        return cls(name, kind, stream, toxicity, config)

    def updated(self, body: Any) -> Toxic:
        """A copy with the attributes and toxicity of a PATCH body applied."""
        if not isinstance(body, dict):
            raise ChaosError("bad request body: expected a JSON object", 400)
        try:
            config = self.spec.parse(body.get("attributes"), base=self.config)
        except InvalidAttribute as exc:
            raise ChaosError(f"bad request body: {exc}", 400) from None
        toxicity = _toxicity(body["toxicity"]) if "toxicity" in body else self.toxicity
        return Toxic(self.name, self.type, self.stream, toxicity, config)


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        message = f"bad request body: toxicity must be a number in [0, 1], got {value!r}"
        raise ChaosError(message, 400)
    return float(value)
