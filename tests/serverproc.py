"""The reference server as a real child process, for tests about kills, pauses, restarts
and signals. One implementation for every test package."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

URL = re.compile(r"(wss?)://127\.0\.0\.1:(\d+)")


class ServerProcess:
    """``python -m server_stub --port PORT ARGS`` on 127.0.0.1, started at construction.

    The URL comes from the server's first stdout line; stderr (its connection log) goes
    to ``log_path`` or a temporary file (``logs()``). ``close()`` ends and reaps it in any
    state, paused included.
    """

    def __init__(self, *args: str, port: int = 0, log_path: Path | None = None,
                 timeout: float = 15.0) -> None:
        self.log: IO[str] = log_path.open("a+") if log_path else tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server_stub", "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        match = URL.search(line)
        if not match:
            self.close()
            raise RuntimeError(f"server did not announce a URL: {line!r}\n{self.logs()}")
        self.ready_at = time.monotonic()
        self.port = int(match.group(2))
        self.url = match.group(0)
        self.http = self.url.replace("ws", "http", 1)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL (after SIGCONT, in case it is paused) and reap: the port is free again."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def logs(self) -> str:
        """The last few KB of what the server wrote on stderr."""
        if self.log.closed:
            return ""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def close(self) -> None:
        """End and reap it whatever its state; idempotent."""
        self.kill()
        if not self.log.closed:
            self.log.close()
