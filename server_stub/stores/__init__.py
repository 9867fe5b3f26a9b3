"""Stream stores: where each stream's numbered history is kept (``--store``).

    memory          in the server's memory (the default); lost with the process
    sqlite:PATH     one SQLite file; survives a crash (stores/sqlite.py)
    redis://H:P/DB  one Redis database, shared by several instances (stores/redis_store.py)

A store kind is one entry of ``KINDS``: the text before the first ``:`` of ``--store``,
mapped to a parser that checks the rest (InvalidInput in one line) and returns a maker
of the store from the replay limits (``max_events``, ``max_age``). The contract every
store keeps is ``StreamStore`` (stores/base.py); tests/server_stub/test_store_contract.py
holds each kind to it.
"""

from __future__ import annotations

from collections.abc import Callable

from server_stub.stores.base import StoredEvent, StreamStore
from server_stub.stores.memory import MemoryStreamStore
from wsctl.errors import InvalidInput

StoreMaker = Callable[[int, float], StreamStore]  # (max_events, max_age) -> store


def _memory(spec: str) -> StoreMaker:
    if spec != "memory":
        raise InvalidInput(f"--store {spec!r}: the memory store takes no options; use memory")
    return MemoryStreamStore


def _sqlite(spec: str) -> StoreMaker:
    from server_stub.stores.sqlite import parse_sqlite  # sqlite3 only when asked for

    return parse_sqlite(spec)


def _redis(spec: str) -> StoreMaker:
    from server_stub.stores.redis_store import parse_redis  # redis-py only when asked for

    return parse_redis(spec)


KINDS: dict[str, Callable[[str], StoreMaker]] = {"memory": _memory, "sqlite": _sqlite,
                                                 "redis": _redis}
STORE_HELP = "memory, sqlite:PATH or redis://HOST:PORT/DB"


def store_maker(spec: str) -> StoreMaker:
    """Check a ``--store`` value and return what makes the store; InvalidInput if wrong."""
    parse = KINDS.get(spec.partition(":")[0])
    if parse is None:
        raise InvalidInput(f"--store {spec!r}: use {STORE_HELP}")
    return parse(spec)


__all__ = ["KINDS", "MemoryStreamStore", "StoredEvent", "StreamStore", "store_maker"]
