"""The watch pool on a scripted client: batching, ordering, failures, cancel."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from client_core import BackoffPolicy, Outcome, PollEvent, Strategy, VideoSimError
from tests.tui.conftest import poll
from tui.model import JobSpec
from tui.watch_pool import JobStarted, PoolBatch, StartFailed, WatchCrashed, WatchEvent, WatchPool

POLLS = 30


class ScriptedClient:
    """Starts jobs at once; each watch reports POLLS events as fast as it can."""

    def __init__(self) -> None:
        self.started = 0

    async def start(
        self, duration_s: float | None = None, outcome: str | None = None, **_: object
    ) -> str:
        await asyncio.sleep(0)
        if outcome == "refuse":
            raise VideoSimError("cannot start a job: Job limit reached")
        self.started += 1
        return f"job-{self.started}"

    async def watch(
        self, job_id: str, policy: BackoffPolicy, strategy: Strategy
    ) -> AsyncIterator[PollEvent]:
        if job_id == "explodes":
            raise RuntimeError("bug in the client")
        if job_id == "forever":
            while True:
                await asyncio.sleep(0.01)
                yield poll(job_id, 1, "pending")
        for attempt in range(1, POLLS):
            await asyncio.sleep(0)
            yield poll(job_id, attempt, "pending", delay=0.0)
        yield poll(job_id, POLLS, "completed", outcome=Outcome.COMPLETED)


async def run_pool(
    pool: WatchPool, until: int, timeout_s: float = 10.0
) -> tuple[list[PoolBatch], list[float]]:
    """Run until ``until`` items were delivered; returns the batches and when each came."""
    batches: list[PoolBatch] = []
    times: list[float] = []
    enough = asyncio.Event()

    def deliver(batch: PoolBatch) -> None:
        batches.append(batch)
        times.append(time.monotonic())
        if sum(len(b.items) for b in batches) >= until:
            enough.set()

    task = asyncio.create_task(pool.run(deliver))
    await asyncio.wait_for(enough.wait(), timeout_s)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return batches, times


async def test_a_flood_of_events_arrives_in_few_ordered_batches() -> None:
    client = ScriptedClient()
    pool = WatchPool(client, clock=time.monotonic, start_concurrency=4, batch_interval_s=0.05)  # type: ignore[arg-type]
    pool.start_jobs([JobSpec()] * 40)
    batches, times = await run_pool(pool, until=40 + 40 * POLLS)

    items = [item for batch in batches for item in batch.items]
    assert len(items) == 40 + 40 * POLLS
    # at most one batch per interval, however many events arrived
    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(times))
    assert len(batches) < len(items) / 10
    # per job: started first, then attempts in order, the final event last
    seen: dict[str, list[int]] = {}
    for item in items:
        if isinstance(item, JobStarted):
            assert item.key not in seen
            seen[item.key] = []
        else:
            assert isinstance(item, WatchEvent)
            seen[item.key].append(item.event.attempt)
    assert all(attempts == list(range(1, POLLS + 1)) for attempts in seen.values())
    assert batches[-1].starting == 0


async def test_failures_are_reported_not_raised() -> None:
    pool = WatchPool(ScriptedClient(), clock=time.monotonic, batch_interval_s=0.01)  # type: ignore[arg-type]
    pool.start_jobs([JobSpec(outcome="refuse")])
    pool.watch("x", "explodes", JobSpec())
    batches, _ = await run_pool(pool, until=2)
    items = [item for batch in batches for item in batch.items]
    failed = [item for item in items if isinstance(item, StartFailed)]
    crashed = [item for item in items if isinstance(item, WatchCrashed)]
    assert [f.error for f in failed] == ["cannot start a job: Job limit reached"]
    assert crashed[0].key == "x" and "bug in the client" in crashed[0].error


async def test_cancel_stops_a_watch() -> None:
    pool = WatchPool(ScriptedClient(), clock=time.monotonic, batch_interval_s=0.01)  # type: ignore[arg-type]
    delivered: list[PoolBatch] = []
    task = asyncio.create_task(pool.run(delivered.append))
    pool.watch("w", "forever", JobSpec())
    await asyncio.sleep(0.1)
    assert pool.cancel("w")
    assert not pool.cancel("w")
    await asyncio.sleep(0.05)
    count = sum(len(b.items) for b in delivered)
    await asyncio.sleep(0.1)
    assert sum(len(b.items) for b in delivered) == count  # nothing after the cancel
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class RecordingStartClient(ScriptedClient):
    def __init__(self) -> None:
        super().__init__()
        self.retry_policies: list[BackoffPolicy] = []

    async def start(
        self,
        duration_s: float | None = None,
        outcome: str | None = None,
        *,
        retry_policy: BackoffPolicy,
    ) -> str:
        self.retry_policies.append(retry_policy)
        return await super().start(duration_s, outcome)


async def test_a_start_keeps_trying_until_the_deadline() -> None:
    client = RecordingStartClient()
    pool = WatchPool(client, clock=time.monotonic, batch_interval_s=0.01, start_deadline_s=42.0)  # type: ignore[arg-type]
    pool.start_jobs([JobSpec()])
    await run_pool(pool, until=1)
    (policy,) = client.retry_policies
    assert policy.deadline_s == 42.0 and (policy.max_attempts or 0) > 100


class GroupStartClient(ScriptedClient):
    """Has start_many: every start goes through it, in groups; odd outcomes fail."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[int] = []

    async def start_many(
        self, specs: list[object], *, deadline_s: float | None = None
    ) -> list[object]:
        from types import SimpleNamespace

        self.groups.append(len(specs))
        results = []
        for spec in specs:
            if getattr(spec, "outcome", None) == "refuse":
                results.append(SimpleNamespace(job_id=None, error=VideoSimError("HTTP 503: full")))
            else:
                self.started += 1
                results.append(SimpleNamespace(job_id=f"job-{self.started}", error=None))
        return results


async def test_starts_go_out_in_groups_when_the_client_has_start_many() -> None:
    client = GroupStartClient()
    pool = WatchPool(client, clock=time.monotonic, start_concurrency=1, batch_interval_s=0.01)  # type: ignore[arg-type]
    pool.start_jobs([JobSpec()] * 5 + [JobSpec(outcome="refuse")])
    batches, _ = await run_pool(pool, until=6)
    items = [item for batch in batches for item in batch.items]
    assert sum(isinstance(item, JobStarted) for item in items) == 5
    (failed,) = [item for item in items if isinstance(item, StartFailed)]
    assert failed.error == "HTTP 503: full"
    assert sum(client.groups) == 6 and len(client.groups) <= 2
