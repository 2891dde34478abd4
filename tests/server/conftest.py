"""In-process fixtures: an app on a fake clock, reached through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from server.app import ServerState, create_app
from server.clock import FakeClock
from server.settings import ServerSettings


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's VIDEOSIM_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("VIDEOSIM_") or name == "DELAY":
            monkeypatch.delenv(name)


def make_settings(**overrides: Any) -> ServerSettings:
    """Settings from defaults and ``overrides`` only (no .env file)."""
    return ServerSettings(_env_file=None, **overrides)  # type: ignore[call-arg]


@dataclass
class Server:
    """An app, the fake clock it runs on, and an HTTP client talking to it."""

    app: FastAPI
    clock: FakeClock
    http: httpx.AsyncClient

    @property
    def state(self) -> ServerState:
        return self.app.state.videosim

    async def start(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/start", json=body or None)
        assert response.status_code == 200, response.text
        return response.json()

    def advance(self, seconds: float) -> None:
        """Move time on and wake the long-polls that are now due, as timers would."""
        self.clock.advance(seconds)
        self.state.store.notify_due()

    async def until_held(self, count: int) -> None:
        """Let the loop run until ``count`` long-polls are parked in the store."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.state.store.held_requests == count:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(
            f"expected {count} held requests, got {self.state.store.held_requests}"
        )


ServerFactory = Callable[..., Server]


@pytest.fixture
async def server_factory() -> AsyncIterator[ServerFactory]:
    """Build in-process servers with given settings; all clients are closed at the end."""
    clients: list[httpx.AsyncClient] = []

    def build(clock: FakeClock | None = None, **overrides: Any) -> Server:
        clock = clock or FakeClock()
        app = create_app(make_settings(**overrides), clock)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        clients.append(http)
        return Server(app, clock, http)

    yield build
    for http in clients:
        await http.aclose()


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    """The default server (5 s jobs, hints and long-poll on), seeded."""
    return server_factory(seed=7)


@pytest.fixture
def clean_cwd(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run in an empty directory so only the test's own .env file is read."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
