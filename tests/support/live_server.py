"""A real server process on a free loopback port, for tests that talk HTTP.

Runs ``python -m server`` as a child process (not in-thread), so tests can kill
it, restart it on the same port, and see exactly what a user's client would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """Handle on one server child process; ``args`` are ``python -m server`` flags."""

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # A file, not a pipe: nobody reads while the server runs, and a full pipe would block it.
    _stderr: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> LiveServer:
        env = {**os.environ, **self.env}
        # Never let a developer's own settings leak into a test server.
        for key in list(env):
            if key.startswith("VIDEOSIM_") and key not in self.env:
                del env[key]
        command = [sys.executable, "-m", "server", "--port", str(self.port), *self.args]
        # Closed (and deleted) in stop(); it must outlive this method.
        self._stderr = tempfile.NamedTemporaryFile(prefix="videosim-server-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.stderr_text()
                raise RuntimeError(f"server exited with {self.process.returncode}: {stderr}")
            try:
                headers = {"X-Api-Key": self.env.get("VIDEOSIM_API_KEY", "")}
                if httpx.get(f"{self.url}/healthz", timeout=0.5, headers=headers).is_success:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server on port {self.port} did not answer within {timeout_s}s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_text(self) -> str:
        """What the server wrote to stderr so far (for failure messages)."""
        if self._stderr is None:
            return ""
        with open(self._stderr.name, "rb") as log:
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.stop()

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
