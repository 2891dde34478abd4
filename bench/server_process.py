"""A real server as a child process on a free loopback port.

Benchmarks measure the server a user would run, so they start it the way a user does
(``python -m server``), or, for the A/B throughput comparison, the same app served by
uvicorn from an app factory. The child runs in an empty temporary directory with every
``VIDEOSIM_*`` variable removed, so a developer's ``.env`` or environment never changes
what is measured. ``psutil`` gives its CPU time and memory.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (children inherit it).

    Thousands of held connections need thousands of descriptors on both ends; the soft
    limit is often 1024 while the hard limit allows far more. Returns the new soft limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without VIDEOSIM_* settings, with the repository importable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOSIM_")}
    env.pop("DELAY", None)  # the seed's alias for VIDEOSIM_DELAY
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class ServerProcess:
    """One server child process; use as a context manager so it is always stopped."""

    def __init__(
        self,
        arguments: list[str],
        *,
        env: dict[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        """``arguments``: the command line, with ``{port}`` where the port goes.

        ``stop_signal``: SIGINT lets a wrapper such as pyinstrument finish its report
        (uvicorn re-raises the signal it stopped on, and only SIGINT becomes a catchable
        KeyboardInterrupt).
        """
        self.port = free_port()
        self._stop_signal = stop_signal
        self._arguments = [argument.replace("{port}", str(self.port)) for argument in arguments]
        self._env = child_environment(env)
        self._workdir = tempfile.TemporaryDirectory(prefix="videosim-bench-")
        self._stderr_path = Path(self._workdir.name) / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def videosim(cls, *flags: str) -> ServerProcess:
        """``python -m server --port N <flags>``: the server exactly as users start it."""
        return cls([sys.executable, "-m", "server", "--port", "{port}", *flags])

    @classmethod
    def app_factory(cls, factory: str, env: dict[str, str] | None = None) -> ServerProcess:
        """``uvicorn <module:function> --factory``; the app reads settings from ``env``."""
        arguments = [sys.executable, "-m", "uvicorn", factory, "--factory"]
        arguments += ["--host", LOOPBACK, "--port", "{port}", "--log-level", "warning"]
        return cls(arguments, env=env)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def ps(self) -> psutil.Process:
        """A psutil handle on the server process (CPU times, memory)."""
        return psutil.Process(self.pid)

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        with self._stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                self._arguments,
                cwd=self._workdir.name,
                env=self._env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.stderr_text()[-500:]
                self.stop()
                raise RuntimeError(f"the server exited at start-up: {output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).is_success:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer on {self.url} within {timeout_s:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self._stop_signal)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        self._workdir.cleanup()

    def stderr_text(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
