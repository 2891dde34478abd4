"""Start requests and watches as asyncio tasks, inside the polling engine (tui.engine).

Nothing here touches Textual. Every task only *reports*: it puts what happened on one
queue, and :meth:`WatchPool.run` drains that queue at most every ``batch_interval_s`` and
hands the whole batch to a callback (the engine folds it into its board and sends the
changed rows to the dashboard). However many jobs poll at once, a batch per interval.

Starts go out in groups: ``start_many`` (one ``POST /start/batch`` per chunk when the
server offers it) when the client has it, else at most ``start_concurrency`` single starts
at a time. Either way a start honours Retry-After and keeps trying until
``start_deadline_s``; a job that still cannot start is reported with its reason
(:class:`StartFailed`), and the dashboard gives it a row that can be retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from client_core import BackoffPolicy, StartSpec, VideoSimClient, VideoSimError
from tui.model import (
    JobSpec,
    JobStarted,
    Now,
    PoolBatch,
    PoolItem,
    StartFailed,
    WatchCrashed,
    WatchEvent,
)

START_CHUNK = 1000  # specs handed to start_many at once (the server's batch cap by default)

__all__ = [
    "JobStarted",
    "PoolBatch",
    "StartFailed",
    "WatchCrashed",
    "WatchEvent",
    "WatchPool",
]


def start_retry_policy(deadline_s: float) -> BackoffPolicy:
    """How one start is retried: quickly at first, never before a Retry-After, until the
    deadline (the attempt budget is only there because the client requires one)."""
    return BackoffPolicy(
        initial_s=0.25, multiplier=2.0, max_delay_s=5.0, max_attempts=10_000, deadline_s=deadline_s
    )


class WatchPool:
    """Owns every start and watch task of one client; reports through ``run``'s callback."""

    def __init__(
        self,
        client: VideoSimClient,
        *,
        clock: Now,
        start_concurrency: int = 16,
        batch_interval_s: float = 0.1,
        start_deadline_s: float = 60.0,
    ) -> None:
        self._client = client
        self._start_deadline_s = start_deadline_s
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
        start_many = getattr(self._client, "start_many", None)
        while True:
            specs = [await self._start_queue.get()]
            if start_many is None:
                await self._start_one(specs[0])
                continue
            while len(specs) < START_CHUNK and not self._start_queue.empty():
                specs.append(self._start_queue.get_nowait())
            await self._start_group(specs)

    async def _start_one(self, spec: JobSpec) -> None:
        try:
            job_id = await self._client.start(
                duration_s=spec.duration_s,
                outcome=spec.outcome,
                retry_policy=start_retry_policy(self._start_deadline_s),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # VideoSimError, or anything the client did not expect
            self._start_failed(spec, exc)
        else:
            self._started(job_id, spec)
        finally:
            self._starting -= 1

    async def _start_group(self, specs: list[JobSpec]) -> None:
        """Many starts in one call of the client's ``start_many`` (it never raises for a
        single job; anything else fails the whole group with one reason)."""
        try:
            results = await self._client.start_many(
                [StartSpec(spec.duration_s, spec.outcome) for spec in specs],
                deadline_s=self._start_deadline_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for spec in specs:
                self._start_failed(spec, exc)
        else:
            for spec, result in zip(specs, results, strict=True):
                if result.job_id is not None:
                    self._started(result.job_id, spec)
                else:
                    self._start_failed(spec, result.error)
        finally:
            self._starting -= len(specs)

    def _started(self, job_id: str, spec: JobSpec) -> None:
        self._out.put_nowait(JobStarted(job_id, job_id, spec, self._clock()))
        self.watch(job_id, job_id, spec)

    def _start_failed(self, spec: JobSpec, exc: BaseException | None) -> None:
        message = str(exc) if isinstance(exc, VideoSimError) else repr(exc)
        self._out.put_nowait(StartFailed(spec, message, self._clock()))

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
