"""Fixtures shared by every part's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer

# A test module that mentions any of these starts a process (a server, redis-server, the
# dashboard's engine, a terminal, a browser) or mounts a disk: its tests are marked slow,
# and `make test-fast` runs the others.
_STARTS_A_PROCESS = (
    "LiveServer",
    "live_server",
    "ServerProcess",
    "subprocess",
    "redis",
    "store_url",
    "server_for",
    "run_child",
    "pty",
    "tmux",
    "chromium",
    "make_app",
    "Dashboard",
    "mount",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow_modules: dict[Path, bool] = {}
    for item in items:
        path = item.path
        if path not in slow_modules:
            text = path.read_text()
            slow_modules[path] = any(word in text for word in _STARTS_A_PROCESS)
        if slow_modules[path]:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def live_server_factory() -> Iterator[Callable[..., LiveServer]]:
    """Start real servers with given flags; all are stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(*args: str, env: dict[str, str] | None = None) -> LiveServer:
        server = LiveServer(args=list(args), env=env or {})
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    """One default-ish server per test module: short delay, hints and long-poll on, and
    webhook failures recorded with their cause."""
    with LiveServer(args=["--delay", "0.5", "--seed", "7", "--callback-failure-details"]) as server:
        yield server
