"""The job store on its own: state from the clock, counts, history and long-poll timers."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from server.clock import FakeClock, SystemClock
from server.store import DEFAULT_REQUEST_LOG_LENGTH, Job, JobLimitReached, JobStore


def make_store(clock: FakeClock | SystemClock, **overrides: object) -> JobStore:
    options: dict[str, object] = {
        "rng": random.Random(1),
        "default_duration_s": 5.0,
        "error_rate": 0.5,
        "max_jobs": 1000,
    }
    options.update(overrides)
    return JobStore(clock, **options)  # type: ignore[arg-type]


def test_state_is_a_function_of_the_clock() -> None:
    clock = FakeClock()
    store = make_store(clock)
    job = store.create(2.0, "completed")
    assert job.result_at(clock.now()) == "pending"
    assert job.result_at(clock.now() + 1.999) == "pending"
    assert job.result_at(clock.now() + 2.0) == "completed"
    assert job.result_at(clock.now() + 10**9) == "completed"


def test_counts_by_state_follow_the_clock() -> None:
    clock = FakeClock()
    store = make_store(clock)
    for duration, outcome in [(1, "completed"), (3, "error"), (2, "completed"), (9, "error")]:
        store.create(duration, outcome)  # type: ignore[arg-type]
    assert store.counts_by_state() == {"pending": 4, "completed": 0, "error": 0}
    clock.advance(2)
    assert store.counts_by_state() == {"pending": 2, "completed": 2, "error": 0}
    clock.advance(1)
    assert store.counts_by_state() == {"pending": 1, "completed": 2, "error": 1}
    assert len(store) == 4


def test_job_cap() -> None:
    store = make_store(FakeClock(), max_jobs=2)
    store.create()
    store.create()
    with pytest.raises(JobLimitReached, match="Job limit reached: 2 jobs"):
        store.create()
    assert len(store) == 2


def test_history_is_allocated_lazily_and_bounded() -> None:
    clock = FakeClock()
    store = make_store(clock)
    job = store.create(1.0, "error")
    assert job.log is None
    for index in range(DEFAULT_REQUEST_LOG_LENGTH + 50):
        result = job.result_at(clock.now())
        store.record_status_request(
            job, at=clock.now(), code=200, retry_after_s=None, result=result
        )
        if index == 10:
            clock.advance(1)
    assert job.status_requests == DEFAULT_REQUEST_LOG_LENGTH + 50
    assert len(job.requests()) == DEFAULT_REQUEST_LOG_LENGTH
    assert job.first_final_seen_at == job.finishes_at


def test_faulted_requests_do_not_count_as_seeing_the_final_state() -> None:
    clock = FakeClock()
    store = make_store(clock)
    job = store.create(1.0, "completed")
    clock.advance(2)
    store.record_status_request(job, at=clock.now(), code=503, retry_after_s=1, result=None)
    assert job.first_final_seen_at is None
    assert job.status_requests == 1


def test_jobs_are_small() -> None:
    """Slots, no per-job dict: what makes a million jobs affordable."""
    job = make_store(FakeClock()).create()
    assert not hasattr(job, "__dict__")
    assert Job.__slots__


async def test_one_timer_per_waited_job_and_notify_due_wakes_them() -> None:
    clock = FakeClock()
    store = make_store(clock)
    jobs = [store.create(5.0) for _ in range(3)]
    waits = [
        asyncio.create_task(store.wait_until_settled(job, 60)) for job in jobs for _ in range(100)
    ]
    await asyncio.sleep(0)
    assert store.held_requests == 300
    assert store.waited_jobs == 3

    clock.advance(4.9)
    assert store.notify_due() == 0
    clock.advance(0.1)
    assert store.notify_due() == 3
    await asyncio.wait_for(asyncio.gather(*waits), timeout=10)
    assert store.held_requests == 0
    assert store.waited_jobs == 0


async def test_a_real_timer_wakes_waiters_at_the_finish_time() -> None:
    store = make_store(SystemClock())
    job = store.create(0.2)
    started = time.monotonic()
    await asyncio.wait_for(store.wait_until_settled(job, 30), timeout=15)
    assert job.result_at(time.time()) != "pending"
    assert time.monotonic() - started < 10  # woken by the timer, not the 30 s timeout
    assert store.waited_jobs == 0


async def test_timeout_and_cancellation_release_the_timer() -> None:
    clock = FakeClock()
    store = make_store(clock)
    job = store.create(100.0)
    await store.wait_until_settled(job, 0.01)
    assert job.result_at(clock.now()) == "pending"
    assert (store.held_requests, store.waited_jobs) == (0, 0)

    waiting = asyncio.create_task(store.wait_until_settled(job, 60))
    await asyncio.sleep(0)
    assert store.waited_jobs == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert (store.held_requests, store.waited_jobs) == (0, 0)


async def test_close_releases_every_waiter() -> None:
    store = make_store(FakeClock())
    waits = [
        asyncio.create_task(store.wait_until_settled(store.create(50.0), 60)) for _ in range(5)
    ]
    waits.append(asyncio.create_task(store.wait_until_settled(store.special, 60)))
    await asyncio.sleep(0)
    assert store.held_requests == 6
    store.close()
    await asyncio.wait_for(asyncio.gather(*waits), timeout=10)
    assert store.held_requests == 0


def test_a_million_jobs_fit_in_memory_budget() -> None:
    """Per-job cost measured on 20,000 jobs; a million must stay well under 1 GB."""
    import tracemalloc

    store = make_store(FakeClock(), max_jobs=10**6)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(20_000):
        store.create()
    per_job = (tracemalloc.get_traced_memory()[0] - before) / 20_000
    tracemalloc.stop()
    assert per_job < 400, f"{per_job:.0f} bytes per job"
