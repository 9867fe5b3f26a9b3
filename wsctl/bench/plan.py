"""What one bench process is asked to do: a small frozen value that travels to workers as
JSON. Pure; no I/O."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from wsctl.probe.dialect import Dialect

Mode = Literal["echo", "resume", "listen"]
MODES: tuple[Mode, ...] = ("echo", "resume", "listen")
REDACTED = "<redacted>"


# The fastest pair on the figures in docs/transports.md; the CLI and Options use these too.
DEFAULT_TRANSPORT = "picows"
DEFAULT_LOOP = "uvloop"


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """One bench run (or one worker's share of it).

    Connection ``j`` of this process has the global index ``first + j * stride``; it
    arrives at ``start + index / connect_rate`` whatever happened to earlier ones (open
    model). ``connections`` is this process's count, ``total`` the whole run's.
    Recording starts ``warmup`` seconds after the start and lasts ``duration``.
    ``in_flight`` is how many messages a connection may have unanswered (0 = no limit);
    a send held back by it is still timed from its intended instant.
    ``protocol`` is the ``protocol:`` block (``wsctl.probe.dialect.Dialect``) as JSON, so
    that it travels to workers with the rest: headers, subprotocols, query, on_open
    messages, and in listen mode the sequence and timestamp paths.
    """

    url: str
    connections: int
    connect_rate: float
    message_rate: float
    duration: float
    warmup: float = 0.0
    mode: Mode = "echo"
    payload_size: int = 64
    connect_timeout: float = 10.0
    in_flight: int = 1
    transport: str = DEFAULT_TRANSPORT
    loop: str = DEFAULT_LOOP
    first: int = 0
    stride: int = 1
    total: int = 0
    drain: float = 2.0
    protocol: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.total == 0:
            object.__setattr__(self, "total", self.connections)

    def check(self) -> None:
        """Raise ``ValueError`` naming the option that is out of range."""
        if self.connections < 1:
            raise ValueError("--connections must be at least 1")
        for name, value in (("--connect-rate", self.connect_rate),
                            ("--duration", self.duration)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a number greater than zero")
        if not (math.isfinite(self.message_rate) and self.message_rate >= 0):
            raise ValueError("--message-rate must be zero or more")
        if not (math.isfinite(self.warmup) and self.warmup >= 0):
            raise ValueError("--warmup must be zero or more")
        if self.connect_timeout <= 0:
            raise ValueError("--connect-timeout must be greater than zero")
        if self.mode not in MODES:
            raise ValueError(f"--mode must be one of {', '.join(MODES)}")
        if self.payload_size < 0 or self.payload_size > 16 * 1024 * 1024:
            raise ValueError("--payload-size must be between 0 and 16 MiB")
        if self.in_flight < 0:
            raise ValueError("--in-flight must be zero (no limit) or more")
        dialect = self.dialect()
        if dialect is None:
            return
        if dialect.adapter != "none":
            raise ValueError(f"bench does not speak adapter {dialect.adapter!r}; "
                             "use wsctl probe or a scenario for it")
        reads = [name for name, on in (("--sequence", dialect.sequence is not None),
                                       ("--timestamp", dialect.timestamp is not None)) if on]
        if reads and self.mode != "listen":
            verb = "are" if len(reads) > 1 else "is"
            raise ValueError(f"{' and '.join(reads)} {verb} read in --mode listen "
                             f"(this run is --mode {self.mode})")

    def dialect(self) -> Dialect | None:
        """The ``protocol`` block as a validated ``Dialect`` (None without one)."""
        if self.protocol is None:
            return None
        from wsctl.probe.dialect import parse

        return parse(self.protocol)

    @property
    def ramp(self) -> float:
        """Seconds from the start until the last connection of the run is due."""
        return (self.total - 1) / self.connect_rate

    def arrival(self, j: int) -> float:
        """Seconds after the start at which this process's connection ``j`` is due."""
        return (self.first + j * self.stride) / self.connect_rate

    def index(self, j: int) -> int:
        return self.first + j * self.stride

    def url_for(self, j: int) -> str:
        """The URL of connection ``j``: ``{n}`` becomes its global index."""
        return self.url.replace("{n}", str(self.index(j)))

    def split(self, k: int) -> list[BenchPlan]:
        """``k`` shares for ``k`` processes: connections interleaved (i, i+k, i+2k, …) so
        the whole run still arrives at ``connect_rate``; empty shares are left out."""
        out = []
        for i in range(k):
            count = len(range(i, self.connections, k))
            if count:
                out.append(replace(self, connections=count, first=self.first + i * self.stride,
                                   stride=self.stride * k, total=self.total))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """``to_dict`` for a result file: header values written literally (a token, say)
        are redacted; ``${VAR}`` templates are kept, they name the secret, not hold it."""
        out = self.to_dict()
        protocol = out.get("protocol")
        if protocol and protocol.get("headers"):
            protocol["headers"] = {k: v if "${" in v else REDACTED
                                   for k, v in protocol["headers"].items()}
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> BenchPlan:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})
