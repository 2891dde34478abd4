"""Fixtures shared by every part's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.live_server import LiveServer


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
