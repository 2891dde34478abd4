"""A videosim server as a child process on a free loopback port.

The dashboard's embedded server, the tests that talk HTTP and the benchmarks all need the
same thing: run ``python -m server`` the way a user would, wait until it answers, and make
sure it never outlives whoever started it. This is that one helper. It starts the server as
a *process* (the package is never imported here), so ``client_core`` still knows no server
code and a test can kill or restart the child exactly as a crash or an operator would.

The child runs in an empty temporary directory with every ``VIDEOSIM_*`` variable (and the
seed's ``DELAY``) removed unless passed in ``env``, so a developer's ``.env`` or shell never
changes what a test or a benchmark sees. Its stderr goes to a file (a pipe that nobody reads
would fill and block it); :meth:`ServerProcess.last_error_line` reads it back for messages.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from client_core.parent_death import guarded

LOOPBACK = "127.0.0.1"
READY_POLL_S = 0.05


class ServerStartError(RuntimeError):
    """The child server did not come up; the message says why in one line."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (on ``host``, loopback by default)."""
    with socket.create_server((host, 0)) as listener:
        return int(listener.getsockname()[1])


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without videosim settings, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOSIM_")}
    env.pop("DELAY", None)  # the seed's alias for VIDEOSIM_DELAY
    env.update(extra or {})
    return env


class ServerProcess:
    """One server child process. Use as a context manager, or call :meth:`stop`.

    ``command`` defaults to ``python -m server --port {port}`` followed by ``args``;
    ``{port}`` in any part is replaced by the chosen port. ``die_with_parent`` (Linux) makes
    the kernel send the child SIGTERM when the starting *thread* ends, so even a SIGKILLed
    parent leaves nothing behind: start it from a thread that lives as long as you do.
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        die_with_parent: bool = False,
    ) -> None:
        self.port = port or free_port()
        base = command or [sys.executable, "-m", "server", "--port", "{port}"]
        self.command = [part.replace("{port}", str(self.port)) for part in [*base, *args]]
        self.env = dict(env or {})
        self.stop_signal = stop_signal
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._stderr_after_stop = ""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- starting -----------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the child and return at once (see :meth:`wait_ready`)."""
        if self.process is not None:
            return
        self._workdir = tempfile.TemporaryDirectory(prefix="videosim-server-")
        with self._stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                guarded(self.command) if self.die_with_parent else self.command,
                cwd=self._workdir.name,
                env=child_environment(self.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        atexit.register(self.stop)

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        """Spawn, then block until ``/healthz`` answers; raise ServerStartError if it never does."""
        self.spawn()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._raise_if_exited()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(READY_POLL_S)
        self.stop()
        raise ServerStartError(f"server on port {self.port} did not answer within {timeout_s:g} s")

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """The async form of :meth:`start`'s wait, for callers on an event loop."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=0.5) as http:
            while time.monotonic() < deadline:
                self._raise_if_exited()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(READY_POLL_S * 2)
        self.stop()
        raise ServerStartError(f"server on port {self.port} did not answer within {timeout_s:g} s")

    def _raise_if_exited(self) -> None:
        if self.process is None:
            raise ServerStartError("the server was stopped before it answered")
        if self.process.poll() is not None:
            code = self.process.returncode
            line = self.last_error_line() or "no message"
            self.stop()
            raise ServerStartError(f"server exited with code {code}: {line}")

    # --- stopping -----------------------------------------------------------------------

    def stop(self, timeout_s: float = 10.0) -> None:
        """Send the stop signal, kill if it lingers. Safe to call any number of times."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if self._workdir is not None:
            self._stderr_after_stop = (
                self.stderr_text()
            )  # readable after stop, for failure messages
            self._workdir.cleanup()
            self._workdir = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.stop()

    def restart(self, timeout_s: float = 30.0) -> ServerProcess:
        """Stop, then start again on the same port (clients keep their URL)."""
        self.stop()
        return self.start(timeout_s)

    # --- output ---------------------------------------------------------------------------

    @property
    def _stderr_path(self) -> Path:
        assert self._workdir is not None
        return Path(self._workdir.name) / "stderr.log"

    def stderr_text(self) -> str:
        """What the server wrote to stderr so far (kept after :meth:`stop`)."""
        if self._workdir is None:
            return self._stderr_after_stop
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def last_error_line(self) -> str:
        lines = [line.strip() for line in self.stderr_text().splitlines()]
        return next((line for line in reversed(lines) if line), "")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
