"""Old home of the stream stores, kept so that ``from server_stub.streams import ...``
still works; they live in ``server_stub.stores`` now."""

from server_stub.stores.base import StoredEvent, StreamStore
from server_stub.stores.memory import MemoryStreamStore

__all__ = ["MemoryStreamStore", "StoredEvent", "StreamStore"]
