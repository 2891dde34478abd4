"""In-process fixtures: an app on a fake clock, reached through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from server.app import ServerState, create_app
from server.jobs.clock import FakeClock
from server.settings import ServerSettings
from tests.support.live_server import free_port


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


# --- stores ---------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A real redis-server on a free port, in a temporary directory."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        redis.Redis(port=self.port, socket_timeout=5).flushall()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def start(self) -> None:
        """(Re)start it on the same port; fails the test if it does not answer within 10 s."""
        self.stop()
        self.process = _spawn_redis(self.port, self.directory)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        pytest.fail(f"redis-server did not answer on port {self.port} within 10 s")


def _spawn_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    executable = shutil.which("redis-server")
    if executable is None:  # a failure, never a skip: `make test` installs it
        pytest.fail("redis-server is not installed (make test installs the redis-server package)")
    return subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = RedisServer(_spawn_redis(port, directory), port, directory)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """An empty Redis (restarted if a test stopped it) for this test."""
    if redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store in turn: the suites that take this run once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return "memory"


@pytest.fixture
async def open_server() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Like server_factory, but each app's lifespan runs (its store opens and, at the
    end of the test, closes), as under uvicorn."""
    stack = contextlib.AsyncExitStack()

    async def build(clock: FakeClock | None = None, **overrides: Any) -> Server:
        clock = clock or FakeClock()
        app = create_app(make_settings(**overrides), clock)
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://test")
        )
        return Server(app, clock, http)

    async with stack:
        yield build
