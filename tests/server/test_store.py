"""The job store on its own: state from the clock, counts, history and long-poll timers."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from server.jobs import schedule
from server.jobs.clock import FakeClock, SystemClock
from server.jobs.job import DEFAULT_REQUEST_LOG_LENGTH, Job, JobLimitReached
from server.jobs.long_poll import LongPolls
from server.jobs.schedule import Schedule
from server.stores.job_table import JobTable


def make_store(clock: FakeClock | SystemClock, **overrides: object) -> JobTable:
    options: dict[str, object] = {
        "rng": random.Random(1),
        "default_duration_s": 5.0,
        "error_rate": 0.5,
        "max_jobs": 1000,
    }
    options.update(overrides)
    return JobTable(clock, **options)  # type: ignore[arg-type]


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


def test_the_request_log_ring_keeps_the_newest_in_order() -> None:
    from server.jobs import request_log
    from server.jobs.request_log import StatusRequest

    log = None
    for n in range(7):
        retry = None if n % 2 else n + 0.4
        log = request_log.append(log, 3, StatusRequest(1000.5 + n, 200 + n, retry))
    assert request_log.entries(log) == [
        StatusRequest(1004.5, 204, 4),
        StatusRequest(1005.5, 205, None),
        StatusRequest(1006.5, 206, 6),
    ]
    assert request_log.append(None, 0, StatusRequest(1.0, 200, None)) is None
    rebuilt = request_log.build(request_log.entries(log), 2)
    assert request_log.entries(rebuilt) == request_log.entries(log)[1:]


async def test_one_timer_for_every_wait_and_fire_due_wakes_them() -> None:
    clock = FakeClock()
    store = make_store(clock)
    timers = Schedule(clock)
    polls = LongPolls(timers)
    jobs = [store.create(5.0) for _ in range(3)]
    waits = [
        asyncio.create_task(polls.wait_until_settled(job, 60)) for job in jobs for _ in range(100)
    ]
    await asyncio.sleep(0)
    assert polls.held_requests == 300
    assert polls.waited_jobs == 3

    clock.advance(4.9)
    assert timers.fire_due() == 0
    clock.advance(0.1)
    assert timers.fire_due() == 300
    await asyncio.wait_for(asyncio.gather(*waits), timeout=10)
    assert polls.held_requests == 0
    assert polls.waited_jobs == 0


async def test_a_real_timer_wakes_waiters_at_the_finish_time() -> None:
    store = make_store(SystemClock())
    polls = LongPolls(Schedule(SystemClock()))
    job = store.create(0.2)
    started = time.monotonic()
    await asyncio.wait_for(polls.wait_until_settled(job, 30), timeout=15)
    assert job.result_at(time.time()) != "pending"
    assert time.monotonic() - started < 10  # woken by the timer, not the 30 s timeout
    assert polls.waited_jobs == 0


@pytest.mark.parametrize("alarm", ["timerfd", "loop timer"])
async def test_no_wait_is_woken_before_its_job_finished(
    alarm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Woken by the alarm (a timerfd, or the loop's millisecond timers where there is none),
    never early, never by the 30 s timeout; once nothing is due the alarm is given back."""
    if alarm == "loop timer":
        monkeypatch.setattr(schedule, "_timerfd", None)
    store = make_store(SystemClock())
    timers = Schedule(SystemClock())
    polls = LongPolls(timers)

    async def wait(job: Job) -> float:
        await polls.wait_until_settled(job, 30)
        return time.time() - job.finishes_at

    jobs = [store.create(0.005 * n) for n in range(1, 21)]
    lags = await asyncio.wait_for(asyncio.gather(*(wait(job) for job in jobs)), timeout=15)
    assert min(lags) >= 0
    assert (polls.held_requests, polls.waited_jobs) == (0, 0)
    assert not timers.armed


async def test_timeout_and_cancellation_release_the_timer() -> None:
    clock = FakeClock()
    store = make_store(clock)
    polls = LongPolls(Schedule(clock))
    job = store.create(100.0)
    await polls.wait_until_settled(job, 0.01)
    assert job.result_at(clock.now()) == "pending"
    assert (polls.held_requests, polls.waited_jobs) == (0, 0)

    waiting = asyncio.create_task(polls.wait_until_settled(job, 60))
    await asyncio.sleep(0)
    assert polls.waited_jobs == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert (polls.held_requests, polls.waited_jobs) == (0, 0)


async def test_abandoned_waits_leave_no_timers_or_entries_behind() -> None:
    """Clients that hang up over and over must not grow the long-polls' bookkeeping: the
    entries of holds given up before they were due are dropped once they pile up."""
    clock = FakeClock()
    store = make_store(clock)
    timers = Schedule(clock)
    polls = LongPolls(timers)
    job = store.create(3600.0)
    for _ in range(5_000):
        waiting = asyncio.create_task(polls.wait_until_settled(job, 60))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    assert (polls.held_requests, polls.waited_jobs) == (0, 0)
    assert len(timers) <= 2_100


async def test_close_releases_every_waiter() -> None:
    store = make_store(FakeClock())
    polls = LongPolls(Schedule(FakeClock()))
    waits = [
        asyncio.create_task(polls.wait_until_settled(store.create(50.0), 60)) for _ in range(5)
    ]
    waits.append(asyncio.create_task(polls.wait_until_settled(store.special, 60)))
    await asyncio.sleep(0)
    assert polls.held_requests == 6
    polls.close()
    await asyncio.wait_for(asyncio.gather(*waits), timeout=10)
    assert polls.held_requests == 0


async def test_a_timer_that_fires_before_the_job_clock_says_done_rechecks_within_ms() -> None:
    """The loop's clock and the job's disagree a little: a timer that fires while the job
    clock still says pending aims again at the next millisecond (a 5 ms floor once made
    that a 5 ms late answer), without waiting for the wait to run out."""
    clock = FakeClock()
    store = make_store(clock)
    polls = LongPolls(Schedule(clock))
    job = store.create(0.02)
    waiting = asyncio.create_task(polls.wait_until_settled(job, 60))
    clock.advance(0.0199)  # when the timer fires, the job clock says 0.1 ms to go
    await asyncio.sleep(0.05)
    assert not waiting.done()
    clock.advance(0.0001)
    began = time.monotonic()
    await asyncio.wait_for(waiting, timeout=5)  # no fire_due: the timer's re-check
    assert time.monotonic() - began < 1
    assert (polls.held_requests, polls.waited_jobs) == (0, 0)


async def test_the_schedule_runs_a_timer_once_when_either_clock_says_so() -> None:
    """A moment on the server's clock waits for that clock (a fake one: until it is moved
    and fire_due runs); a deadline on the monotonic clock does not; a cancelled timer
    never runs; an empty schedule holds no alarm."""
    clock = FakeClock()
    timers = Schedule(clock)
    ran: list[str] = []
    timers.call_at(clock.now() + 0.01, lambda: ran.append("moment"))
    deadline_ran = asyncio.Event()
    timers.call_later(0.01, lambda: (ran.append("deadline"), deadline_ran.set()))
    cancelled = timers.call_later(0.01, lambda: ran.append("cancelled"))
    cancelled.cancel()
    assert timers.armed
    await asyncio.wait_for(deadline_ran.wait(), timeout=10)
    assert timers.fire_due() == 0 and ran == ["deadline"]  # the fake clock stood still
    clock.advance(0.01)
    assert timers.fire_due() == 1 and ran == ["deadline", "moment"]
    assert timers.fire_due() == 0  # once
    stale = timers.call_later(0, lambda: None)  # the alarm's next pass drops the stale entry
    stale.cancel()
    empty = asyncio.Event()
    timers.call_later(0.02, empty.set)
    await asyncio.wait_for(empty.wait(), timeout=10)
    assert not timers.armed and len(timers) == 0
