"""A throwaway ``redis-server`` for tests: ``wsctl.scenario.redis_server.RedisServer`` (the
one ``store: redis`` scenarios start: Debian's binary on a free port, persistence off) in
a temporary directory; ``stop()`` ends it (and ``start()`` brings it back empty on the
same port, for tests of a Redis that goes away). Tests skip when the binary is absent."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator

import pytest

from wsctl.scenario.redis_server import MISSING, RedisServer, binary

REDIS_SERVER = binary()


class RedisProcess(RedisServer):
    """A ``RedisServer`` in a temporary directory, started; ``close()`` removes both."""

    def __init__(self) -> None:
        if REDIS_SERVER is None:
            pytest.skip(MISSING)
        self.tmp = tempfile.TemporaryDirectory(prefix="wsctl-redis-")
        super().__init__(self.tmp.name)
        self.start()

    def close(self) -> None:
        self.stop()
        self.tmp.cleanup()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A private redis-server for one test, stopped after it."""
    server = RedisProcess()
    try:
        yield server
    finally:
        server.close()


_shared: RedisProcess | None = None


def shared_redis() -> RedisProcess:
    """One redis-server for the whole test session (started on first use, stopped at
    exit); tests keep apart by key prefix."""
    global _shared
    if _shared is None:
        import atexit

        _shared = RedisProcess()
        atexit.register(_shared.close)
    return _shared


async def until(condition: Callable[[], bool], seconds: float = 2.5) -> None:
    """Wait (polling every 50 ms) until ``condition()`` holds or ``seconds`` pass; the
    test's own assertion then says what was missing."""
    for _ in range(round(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
