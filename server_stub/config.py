"""Server settings as one small value object, with the two profiles the EP compares."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Profile = Literal["reference", "baseline"]
HealthMode = Literal["scheduler", "per-connection"]
LoopName = Literal["auto", "asyncio", "uvloop"]


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``wsctl serve`` can set. Defaults are the safe ``reference`` profile.

    Limits of 0 mean "no limit". Durations are seconds.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    profile: Profile = "reference"
    max_connections: int = 10_000
    max_per_client: int = 0
    max_streams: int = 20_000
    max_message_size: int = 64 * 1024
    send_buffer: int = 256 * 1024
    ping_interval: float = 5.0
    ping_timeout: float = 5.0
    health_mode: HealthMode = "scheduler"
    replay_size: int = 1000
    replay_age: float = 60.0
    resume: bool = True
    compression: bool = False
    job_rate: float = 1.0
    job_steps: int = 100
    secret: str | None = None
    origins: tuple[str, ...] = ()
    certfile: str | None = None
    keyfile: str | None = None
    shutdown_timeout: float = 5.0
    retry_hint_ms: int = 1000
    log_format: Literal["text", "json"] = "text"
    log_level: str = "info"
    loop: LoopName = "auto"  # auto: uvloop for reference (if installed), asyncio for baseline

    @property
    def scheme(self) -> str:
        return "wss" if self.certfile else "ws"

    def for_profile(self) -> ServerConfig:
        """Apply the profile: ``baseline`` is EP-0001's "before" (websockets' defaults).

        Baseline: permessage-deflate on, websockets' own keepalive task per connection
        (20 s / 20 s), no admission control, no replay (every resume is a resync).
        """
        if self.profile == "baseline":
            return replace(
                self,
                compression=True,
                health_mode="per-connection",
                ping_interval=20.0,
                ping_timeout=20.0,
                max_connections=0,
                max_per_client=0,
                resume=False,
                replay_size=0,
            )
        return self
