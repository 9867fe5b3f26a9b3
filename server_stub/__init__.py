"""The reference server for resume protocol v1: EP-0001's server side, done right.

Importable without the CLI::

    from server_stub import ReferenceServer, ServerConfig
    server = ReferenceServer(ServerConfig(port=0))
    url = await server.start()
    ...
    await server.stop()
"""

from server_stub.config import ServerConfig
from server_stub.main import ReferenceServer, run

__all__ = ["ReferenceServer", "ServerConfig", "run"]
