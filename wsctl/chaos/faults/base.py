"""The one small interface every fault implements, and how its attributes are read.

A fault is a frozen dataclass (its JSON ``attributes``, with Toxiproxy's names and
defaults) plus one coroutine ``run(config, stub)`` that reads chunks from ``stub.get()``
and passes them on with ``stub.send()``. The proxy core knows no fault by name; the
table in ``wsctl.chaos.faults`` is the only place they are listed.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from wsctl.clock import Clock

if TYPE_CHECKING:
    from websockets.frames import Frame


MAX_INT_ATTRIBUTE = 2**31 - 1  # every integer attribute (24.8 days in ms, 2 GiB in bytes)


@dataclass(slots=True)
class Chunk:
    """Bytes in flight and the clock reading when they arrived at the proxy."""

    data: bytes
    arrived: float


class Stub(Protocol):
    """What a running fault sees of its place in one direction of one connection.

    ``get`` returns the next chunk, or None when the input has ended (EOF); whatever the
    fault got and has not sent is ``held``: if the fault is removed, the link forwards
    what is held, so removing a delaying fault never drops data.
    """

    clock: Clock
    random: random.Random
    direction: str
    held: list[Chunk | None]

    async def get(self, timeout: float | None = None) -> Chunk | None:
        """Next chunk (None at EOF); raises ``TimeoutError`` after ``timeout`` seconds."""
        ...

    def send(self, item: Chunk | None) -> None:
        """Pass a chunk (or EOF) to the next stage; clears ``held``."""
        ...

    def split(self, chunk: Chunk) -> list[tuple[bytes, Frame | None]]:
        """Cut a chunk into WebSocket frames (frame None: bytes to pass through untouched)."""
        ...

    def at_frame_boundary(self) -> bool:
        """True between two frames, once both directions are past the opening handshake."""
        ...

    def close(self) -> None:
        """Close the whole connection gracefully (FIN to both peers, after pending writes)."""
        ...

    def reset(self) -> None:
        """Abort the whole connection with a TCP RST to both peers."""
        ...

    def applied(self) -> None:
        """Count one application of this fault (a dropped frame, an injected close...)."""
        ...


class InvalidAttribute(ValueError):
    """An attribute has the wrong type or value; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"attributes.{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One registered fault: its config class, its coroutine and which layer it acts on."""

    config: type[Any]
    run: Callable[[Any, Stub], Awaitable[None]]
    layer: str  # "tcp" or "websocket"
    summary: str

    def parse(self, attributes: Any, base: Any = None) -> Any:
        """Build a config from JSON attributes (over ``base`` when updating)."""
        if attributes is None:
            attributes = {}
        if not isinstance(attributes, dict):
            raise InvalidAttribute("*", "attributes must be a JSON object")
        fields = {f.name: f for f in dataclasses.fields(self.config)}
        values = dataclasses.asdict(base) if base is not None else {}
        for key, value in attributes.items():
            field = fields.get(key)
            if field is None:
                valid = ", ".join(fields) or "none"
                raise InvalidAttribute(key, f"unknown attribute (valid: {valid})")
            values[key] = _coerce(key, value, field.type)
        config = self.config(**values)
        check = getattr(config, "validate", None)
        if check is not None:
            check()
        return config


def _coerce(key: str, value: Any, kind: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidAttribute(key, f"expected an integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise InvalidAttribute(key, f"expected an integer, got {value!r}")
        if value < 0:
            raise InvalidAttribute(key, f"must be >= 0, got {value!r}")
        if value > MAX_INT_ATTRIBUTE:  # ms, bytes, KB/s: past this a typo or an overflow
            raise InvalidAttribute(key, f"must be at most {MAX_INT_ATTRIBUTE}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidAttribute(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):  # JSON parsers accept Infinity and NaN
            raise InvalidAttribute(key, f"expected a finite number, got {value!r}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise InvalidAttribute(key, f"expected a string, got {value!r}")
        return value
    raise InvalidAttribute(key, f"unsupported attribute type {kind}")  # pragma: no cover
