"""The polling engine: the client, its watch pool and the health checks on a loop of their own.

Thousands of watches mean hundreds of HTTP round trips a second. On the UI's event loop,
each key press and repaint would wait behind that backlog; on a second loop, in a thread
that a Textual worker runs, the UI only competes for the interpreter, not for a queue.

The engine holds two clients, two lanes. A client admits requests first come, first served
under its in-flight cap, and with thousands of watches that queue holds thousands of polls
(seconds of waiting when the engine is busy). Requests someone is waiting for, POST /start
from the spawn form and the detail view's record, go through the second client, the quick
lane, so they wait for the server and not for the polls.

The UI thread uses the thread-safe methods below; everything the engine has to say comes
back as messages posted to the app (``post_message`` is thread-safe in Textual).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from textual.message import Message

from client_core import VideoSimClient
from tui.messages import EngineReady, HealthChecked, PollEventsBatch
from tui.model import JobSpec
from tui.watch_pool import Clock, PoolBatch, WatchPool

T = TypeVar("T")
ClientFactory = Callable[[str], VideoSimClient]


class EngineNotReady(RuntimeError):
    """The engine's loop is not running (not started yet, or stopped)."""


class PollingEngine:
    def __init__(
        self,
        url: str,
        client_factory: ClientFactory,
        post: Callable[[Message], object],
        *,
        clock: Clock,
        start_concurrency: int,
        batch_interval_s: float,
        health_interval_s: float,
    ) -> None:
        self.url = url
        self._client_factory = client_factory
        self._post = post
        self._clock = clock
        self._start_concurrency = start_concurrency
        self._batch_interval_s = batch_interval_s
        self._health_interval_s = health_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._client: VideoSimClient | None = None  # watches and health checks
        self._quick_client: VideoSimClient | None = None  # the quick lane (see the module doc)
        self._pool: WatchPool | None = None
        self._stopped = threading.Event()

    # -- in the engine's thread ------------------------------------------------------------

    def run(self) -> None:
        """The thread's body (a Textual thread worker): runs until :meth:`stop`."""
        try:
            asyncio.run(self._serve())
        finally:
            self._loop = self._pool = self._client = self._quick_client = None
            self._stopped.set()

    async def _serve(self) -> None:
        self._main = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        async with (
            self._client_factory(self.url) as client,
            self._client_factory(self.url) as quick_client,
        ):
            self._client, self._quick_client = client, quick_client
            self._pool = WatchPool(
                client,
                clock=self._clock,
                start_client=quick_client,
                start_concurrency=self._start_concurrency,
                batch_interval_s=self._batch_interval_s,
            )
            self._post(EngineReady())
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._pool.run(self._deliver))
                    group.create_task(self._check_health(client))
            except asyncio.CancelledError:
                pass  # stop() was called: close the client and end the thread

    def _deliver(self, batch: PoolBatch) -> None:
        self._post(PollEventsBatch(batch))

    async def _check_health(self, client: VideoSimClient) -> None:
        while True:
            try:
                health = await client.health()
                self._post(HealthChecked(health.ok, health.latency_s, health.error))
            except Exception as exc:  # the check itself must never end the loop
                self._post(HealthChecked(False, None, str(exc)))
            await asyncio.sleep(self._health_interval_s)

    # -- from the UI thread ----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._loop is not None and self._pool is not None

    def start_jobs(self, specs: Iterable[JobSpec]) -> None:
        batch = list(specs)
        self._soon(lambda pool: pool.start_jobs(batch))

    def watch(self, key: str, job_id: str, spec: JobSpec) -> None:
        self._soon(lambda pool: pool.watch(key, job_id, spec))

    def cancel(self, key: str) -> None:
        self._soon(lambda pool: pool.cancel(key))

    async def call(
        self, request: Callable[[VideoSimClient], Awaitable[T]], *, quick: bool = False
    ) -> T:
        """Run ``request(client)`` on the engine's loop and await its result from another
        loop: the compare view's batch on the polling client, or with ``quick`` a request
        someone waits for (the detail view's job record) in the quick lane."""
        loop, client = self._loop, self._quick_client if quick else self._client
        if loop is None or client is None:
            raise EngineNotReady("not connected to a server")

        async def run() -> T:
            return await request(client)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel every task, close the client, and wait for the thread to end."""
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            try:
                loop.call_soon_threadsafe(main.cancel)
            except RuntimeError:  # the loop closed in the meantime
                return
            self._stopped.wait(timeout_s)

    def _soon(self, action: Callable[[WatchPool], object]) -> None:
        loop, pool = self._loop, self._pool
        if loop is None or pool is None:
            raise EngineNotReady("not connected to a server")
        loop.call_soon_threadsafe(action, pool)
