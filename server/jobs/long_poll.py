"""Long-polls held by this process: counted here, timed by the process's one schedule.

Job state comes from the clock (``created_at + duration_s``), so a wait needs only the
job's finish time, never the store: whichever process holds the request can answer it,
whatever store the jobs live in.

A held request is a :class:`Hold`: its job and a callback that wakes it, with one
:class:`~server.jobs.schedule.Timer` due when the job finishes or the wait runs out,
whichever comes first. A hold owns no task or event: GET /status?wait keeps its request's
own coroutine parked and :meth:`LongPolls.wait_until_settled` waits on one future.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from server.jobs.job import Job
from server.jobs.schedule import Schedule, Timer


class Hold:
    """One request waiting for its job to leave pending, or for its wait to run out."""

    __slots__ = ("job_id", "timer", "wake", "woken")

    def __init__(self, job_id: str, wake: Callable[[], object]) -> None:
        self.job_id = job_id
        self.wake = wake
        self.timer: Timer | None = None
        # True once LongPolls called wake: the job settled, the wait ran out, or the
        # server is stopping.
        self.woken = False


class LongPolls:
    """Parks status requests until their job leaves pending or their wait runs out."""

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule
        self._clock = schedule.clock
        self._holds: set[Hold] = set()
        self._jobs: dict[str, int] = {}  # job id -> live holds on it
        self._closing = False

    @property
    def held_requests(self) -> int:
        """Status requests parked right now."""
        return len(self._holds)

    @property
    def waited_jobs(self) -> int:
        """Jobs that somebody long-polls right now."""
        return len(self._jobs)

    def park(self, job: Job, timeout_s: float, wake: Callable[[], object]) -> Hold | None:
        """Call ``wake()`` once, from the event loop, when ``job`` leaves pending, after
        ``timeout_s`` seconds, or when the server stops, whichever comes first.

        None when there is nothing to wait for (the job is not pending, no wait was asked
        for, or the server is stopping). A hold given up before it is woken (the client
        hung up) must be handed to :meth:`unpark`.
        """
        if timeout_s <= 0 or self._closing or job.result_at(self._clock.now()) != "pending":
            return None
        hold = Hold(job.job_id, wake)
        self._jobs[job.job_id] = self._jobs.get(job.job_id, 0) + 1
        self._holds.add(hold)
        hold.timer = self._schedule.call_at(
            job.finishes_at,
            functools.partial(self._wake, hold),
            deadline=time.monotonic() + timeout_s,
        )
        return hold

    def unpark(self, hold: Hold) -> None:
        """Forget a hold nobody waits for any more; a no-op once it was woken."""
        if hold in self._holds:
            self._end(hold)
            if hold.timer is not None:
                hold.timer.cancel()

    async def wait_until_settled(self, job: Job, timeout_s: float) -> None:
        """Return when ``job`` leaves pending or after ``timeout_s`` seconds, whichever first."""
        woken = asyncio.get_running_loop().create_future()
        hold = self.park(job, timeout_s, functools.partial(_resolve, woken))
        if hold is None:
            return
        try:
            await woken
        finally:
            self.unpark(hold)

    def close(self) -> None:
        """Wake every hold (each request answers with its job's state at that moment) and
        park no new ones: the server is stopping."""
        self._closing = True
        for hold in list(self._holds):
            if hold.timer is not None:
                hold.timer.cancel()
            self._wake(hold)

    def _wake(self, hold: Hold) -> None:
        self._end(hold)
        hold.woken = True
        hold.wake()

    def _end(self, hold: Hold) -> None:
        self._holds.discard(hold)
        left = self._jobs[hold.job_id] - 1
        if left:
            self._jobs[hold.job_id] = left
        else:
            del self._jobs[hold.job_id]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
