"""The embedded default: a ``python -m server`` child process the dashboard starts and stops.

When no server URL is given and nothing answers on the default port, the dashboard runs its
own server on a free loopback port. The child must never outlive the dashboard, so every
exit path stops it: the app's unmount, the CLI's ``finally``, an ``atexit`` hook, and, on
Linux, a parent-death signal that reaches the child even if the dashboard is killed outright.
The dashboard only ever talks to it over HTTP through ``client_core``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO

from client_core import VideoSimClient

PR_SET_PDEATHSIG = 1


class EmbeddedServerError(RuntimeError):
    """The child server did not come up; the message says why in one line."""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def server_answers(url: str, *, timeout_s: float = 1.0) -> bool:
    """True when a videosim server answers GET /healthz at ``url`` (no API key needed)."""
    try:
        async with VideoSimClient(
            url, connect_timeout_s=timeout_s, read_timeout_s=timeout_s
        ) as client:
            return bool((await client.health()).ok)
    except Exception:  # a bad URL or anything else: nothing usable answers there
        return False


def _load_prctl() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once in the parent: the child runs only this call between fork and exec.
_prctl = _load_prctl()


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the process that started us goes away."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # type: ignore[operator]


class EmbeddedServer:
    """One child server process on a free loopback port.

    Start it from the thread that lives as long as the app (the event loop's): Linux sends
    the parent-death signal when the *thread* that forked the child ends.
    """

    def __init__(self, *, args: Sequence[str] = (), port: int | None = None) -> None:
        self.args = list(args)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Spawn the child (returns at once; see :meth:`wait_ready`)."""
        if self.process is not None:
            return
        command = [sys.executable, "-m", "server", "--port", str(self.port), *self.args]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the child runs
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            preexec_fn=_die_with_parent if _prctl is not None else None,
        )
        atexit.register(self.stop)

    async def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Wait until the child answers /healthz; raise with its last stderr line if it died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None:
                raise EmbeddedServerError("embedded server was stopped")
            if self.process.poll() is not None:
                raise EmbeddedServerError(
                    f"embedded server exited with code {self.process.returncode}: "
                    f"{self._last_log_line() or 'no message'}"
                )
            if await server_answers(self.url, timeout_s=0.5):
                return
            await asyncio.sleep(0.1)
        self.stop()
        raise EmbeddedServerError(f"embedded server did not answer within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the child, kill it if it lingers. Safe to call any number of times."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
        atexit.unregister(self.stop)

    def _last_log_line(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode(errors="replace").splitlines()]
        return next((line for line in reversed(lines) if line), "")
