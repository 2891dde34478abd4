"""A real server as a child process on a free loopback port.

Benchmarks measure the server a user would run, so they start it the way a user does
(``python -m server``), or, for the A/B throughput comparison, the same app served by
uvicorn from an app factory. The child runs in an empty temporary directory with every
``VIDEOSIM_*`` variable removed, so a developer's ``.env`` or environment never changes
what is measured. ``psutil`` gives its CPU time and memory.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from client_core import local_server
from client_core.local_server import LOOPBACK

ROOT = Path(__file__).resolve().parents[1]


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


def run_bench_child(module: str, *arguments: str, timeout_s: float) -> dict[str, Any]:
    """``python -m <module> <arguments>`` in a fresh process (nothing else allocates or
    competes for the interpreter there); its last stdout line is a JSON object."""
    output = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout_s,
        cwd=ROOT,
        env=child_environment(),
    ).stdout
    measured: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return measured


class ServerProcess(local_server.ServerProcess):
    """One server child process; use as a context manager so it is always stopped."""

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        """``command``: the command line, with ``{port}`` where the port goes.

        ``stop_signal``: SIGINT lets a wrapper such as pyinstrument finish its report
        (uvicorn re-raises the signal it stopped on, and only SIGINT becomes a catchable
        KeyboardInterrupt).
        """
        super().__init__(command=command, env=child_environment(env), stop_signal=stop_signal)

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

    def ps(self) -> psutil.Process:
        """A psutil handle on the server process (CPU times, memory)."""
        assert self.pid is not None, "the server is not running"
        return psutil.Process(self.pid)
