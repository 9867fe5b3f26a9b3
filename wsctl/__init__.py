"""wsctl: test and monitor WebSocket reliability.

Commands: ``serve`` (reference server), ``probe``, ``chaos``, ``bench``, ``run``.
Everything a command can do, Python code can do by importing the library.
"""

from wsctl.errors import InvalidInput, RunFailed, WsctlError

__version__ = "0.1.0"

__all__ = ["InvalidInput", "RunFailed", "WsctlError", "__version__"]
