"""The reference server as a real child process, for kill and pause tests."""

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

URL = re.compile(r"ws://127\.0\.0\.1:(\d+)")


class ServerProcess:
    """``python -m server_stub`` on 127.0.0.1; always reaped by ``close()``."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.url = ""
        self.ready_at = 0.0
        self.log = tempfile.TemporaryFile(mode="w+")

    def start(self, port: int = 0, timeout: float = 15.0) -> "ServerProcess":
        """Spawn and wait for the first stdout line with the URL."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server_stub", "--port", str(port), *self.args],
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
        self.port = int(match.group(1))
        self.url = match.group(0)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap (the port is free again afterwards)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def logs(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:]

    def close(self) -> None:
        """Whatever state it is in (stopped included), end it and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._close_pipe()
        self.log.close()
