"""The engine behind the dashboard: start requests and watches as asyncio tasks.

Nothing here touches Textual. Every task only *reports*: it puts what happened on one
queue, and :meth:`WatchPool.run` drains that queue at most every ``batch_interval_s`` and
hands the whole batch to a callback (the app turns it into one Textual message). However
many jobs poll at once, the UI sees a handful of messages per second.

Start requests have a lane of their own: a second client (the engine's quick lane), used
by at most ``start_concurrency`` start workers. A client admits requests first come, first
served under its in-flight cap, so on the polling client a spawn queued behind every poll
already waiting (thousands when the engine is busy) and started a few jobs a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from client_core import ClientError, PollEvent, VideoSimClient
from tui.model import JobSpec

Clock: TypeAlias = Callable[[], float]


@dataclass(frozen=True, slots=True)
class JobStarted:
    """POST /start answered: the job exists and its watch has begun under ``key``."""

    key: str
    job_id: str
    spec: JobSpec
    at: float


@dataclass(frozen=True, slots=True)
class StartFailed:
    spec: JobSpec
    error: str
    at: float


@dataclass(frozen=True, slots=True)
class WatchEvent:
    key: str
    event: PollEvent
    at: float


@dataclass(frozen=True, slots=True)
class WatchCrashed:
    """A watch raised instead of ending with an outcome; the job is marked failed."""

    key: str
    error: str
    at: float


PoolItem: TypeAlias = JobStarted | StartFailed | WatchEvent | WatchCrashed


@dataclass(frozen=True, slots=True)
class PoolBatch:
    """Everything that happened since the previous batch, in arrival order."""

    items: list[PoolItem] = field(default_factory=list)
    starting: int = 0  # start requests still queued or in flight


class WatchPool:
    """Owns every start and watch task of one client; reports through ``run``'s callback."""

    def __init__(
        self,
        client: VideoSimClient,
        *,
        clock: Clock,
        start_client: VideoSimClient | None = None,
        start_concurrency: int = 16,
        batch_interval_s: float = 0.1,
    ) -> None:
        self._client = client
        self._start_client = start_client or client  # the start lane (see the module doc)
        self._clock = clock
        self._start_concurrency = start_concurrency
        self._batch_interval_s = batch_interval_s
        self._out: asyncio.Queue[PoolItem] = asyncio.Queue()
        self._start_queue: asyncio.Queue[JobSpec] = asyncio.Queue()
        self._starting = 0
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._start_workers: list[asyncio.Task[None]] = []

    def start_jobs(self, specs: Iterable[JobSpec]) -> None:
        """Queue POST /start requests; at most ``start_concurrency`` are in flight at once,
        and each started job is watched right away under its job id."""
        for spec in specs:
            self._starting += 1
            self._start_queue.put_nowait(spec)

    def watch(self, key: str, job_id: str, spec: JobSpec) -> None:
        """Watch an existing job (the special job, or a retry) under a caller-chosen key."""
        self.cancel(key)
        self._watches[key] = asyncio.create_task(
            self._watch(key, job_id, spec), name=f"watch {key}"
        )

    def cancel(self, key: str) -> bool:
        task = self._watches.pop(key, None)
        if task is None:
            return False
        task.cancel()
        return True

    async def run(self, deliver: Callable[[PoolBatch], None]) -> None:
        """Run the start workers and deliver batches until cancelled; then stop every task."""
        self._start_workers = [
            asyncio.create_task(self._start_worker(), name=f"start worker {n}")
            for n in range(self._start_concurrency)
        ]
        try:
            while True:
                first = await self._out.get()
                # Let more items arrive: one batch per interval however many tasks report.
                await asyncio.sleep(self._batch_interval_s)
                items = [first]
                while not self._out.empty():
                    items.append(self._out.get_nowait())
                deliver(PoolBatch(items=items, starting=self._starting))
        finally:
            await self.close()

    async def close(self) -> None:
        tasks = [*self._start_workers, *self._watches.values()]
        self._start_workers.clear()
        self._watches.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _start_worker(self) -> None:
        while True:
            spec = await self._start_queue.get()
            try:
                job_id = await self._start_client.start(
                    duration_s=spec.duration_s, outcome=spec.outcome
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ClientError, or anything the client did not expect
                message = str(exc) if isinstance(exc, ClientError) else repr(exc)
                self._out.put_nowait(StartFailed(spec, message, self._clock()))
            else:
                self._out.put_nowait(JobStarted(job_id, job_id, spec, self._clock()))
                self.watch(job_id, job_id, spec)
            finally:
                self._starting -= 1

    async def _watch(self, key: str, job_id: str, spec: JobSpec) -> None:
        try:
            async for event in self._client.watch(
                job_id, policy=spec.policy, strategy=spec.strategy
            ):
                self._out.put_nowait(WatchEvent(key, event, self._clock()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client promises not to raise; never crash the UI if it does
            self._out.put_nowait(WatchCrashed(key, f"watch failed: {exc!r}", self._clock()))
        finally:
            if self._watches.get(key) is asyncio.current_task():
                del self._watches[key]
