"""Long-polls held by this process: one loop timer for all of them.

Job state comes from the clock (``created_at + duration_s``), so a wait needs only the
job's finish time, never the store: whichever process holds the request can answer it,
whatever store the jobs live in.

A held request is a :class:`Hold`: its job, the moment its wait runs out, and a callback
that wakes it. Holds sit in one heap ordered by when they are due (their job finishes or
their wait runs out, whichever comes first), and one loop timer is armed for the head of
the heap, so holds due at the same time share one timer call. A hold owns no timer, event
or task: GET /status?wait keeps its request's own coroutine parked (server.app) and
:meth:`LongPolls.wait_until_settled` waits on one future.

Timers aim at the next whole millisecond of the loop's clock at or after the job's finish.
uvloop counts in whole milliseconds and fires a timer aimed in between up to 1 ms early;
re-checking after an early fire cost another millisecond or more (p99 2.5-4.1 ms late),
re-checking sooner spun the loop. Aimed at the next millisecond, a timer is never early,
so a hold is woken once, 0-2 ms after its job finished (python -m bench.long_poll_lag).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import math
import time
from collections.abc import Callable

from server.clock import Clock
from server.store import Job

# Stale heap entries (holds that ended before they were due) are dropped all at once
# when they are this many and outnumber the live ones.
_COMPACT_AFTER = 1024
_MARGIN_S = 1e-6


class Hold:
    """One request waiting for its job to leave pending, or for its wait to run out."""

    __slots__ = ("deadline", "finishes_at", "job_id", "live", "wake", "woken")

    def __init__(self, job: Job, deadline: float, wake: Callable[[], object]) -> None:
        self.job_id = job.job_id
        self.finishes_at = job.finishes_at  # on the job's clock
        self.deadline = deadline  # on the loop's clock
        self.wake = wake
        self.live = True  # False once woken or given up
        # True once LongPolls called wake: the job settled, the wait ran out, or the
        # server is stopping.
        self.woken = False


class LongPolls:
    """Parks status requests until their job leaves pending or their wait runs out."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._due: list[tuple[float, int, Hold]] = []  # (loop time, tie-breaker, hold)
        self._order = itertools.count()
        self._stale = 0  # entries of _due whose hold is no longer live
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._jobs: dict[str, int] = {}  # job id -> live holds on it
        self._held = 0
        self._closing = False

    @property
    def held_requests(self) -> int:
        """Status requests parked right now."""
        return self._held

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
        now = self._clock.now()
        if timeout_s <= 0 or self._closing or job.result_at(now) != "pending":
            return None
        deadline = _loop_time_at(timeout_s)
        hold = Hold(job, deadline, wake)
        self._jobs[job.job_id] = self._jobs.get(job.job_id, 0) + 1
        self._held += 1
        self._push(hold, min(deadline, _loop_time_at(hold.finishes_at - now)))
        return hold

    def unpark(self, hold: Hold) -> None:
        """Forget a hold nobody waits for any more; a no-op once it was woken."""
        if hold.live:
            self._end(hold)
            self._stale += 1
            self._compact()

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

    def notify_due(self) -> int:
        """Wake the holds of every job that has finished; returns how many jobs woke.

        The timer does this on its own with the system clock; tests that move a
        :class:`~server.clock.FakeClock` call it right after ``advance()``.
        """
        now = self._clock.now()
        woken: set[str] = set()
        for _, _, hold in list(self._due):
            if hold.live and hold.finishes_at <= now:
                woken.add(hold.job_id)
                self._wake(hold)
                self._stale += 1  # its heap entry stays until popped or compacted
        self._compact()
        return len(woken)

    def close(self) -> None:
        """Wake every hold (each request answers with its job's state at that moment) and
        park no new ones: the server is stopping."""
        self._closing = True
        for _, _, hold in self._due:
            if hold.live:
                self._wake(hold)
        self._due.clear()
        self._stale = 0
        self._arm(math.inf)

    # --- the heap and its timer ---------------------------------------------------------

    def _push(self, hold: Hold, at: float) -> None:
        heapq.heappush(self._due, (at, next(self._order), hold))
        if at < self._timer_at:
            self._arm(at)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if math.isfinite(at):
            self._timer = asyncio.get_running_loop().call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        # Every entry is aimed at a whole millisecond and a timer fires only once the
        # loop's clock reached it; the margin covers asyncio's clock resolution.
        loop_now = asyncio.get_running_loop().time() + _MARGIN_S
        now = self._clock.now()
        due = self._due
        while due and due[0][0] <= loop_now:
            _, _, hold = heapq.heappop(due)
            if not hold.live:
                self._stale -= 1
            elif hold.finishes_at <= now or hold.deadline <= loop_now:
                self._wake(hold)
            else:  # the wall clock and the loop's disagree a little: aim again
                at = min(hold.deadline, _loop_time_at(hold.finishes_at - now))
                heapq.heappush(due, (at, next(self._order), hold))
        if due:
            self._arm(due[0][0])

    def _wake(self, hold: Hold) -> None:
        self._end(hold)
        hold.woken = True
        hold.wake()

    def _end(self, hold: Hold) -> None:
        hold.live = False
        self._held -= 1
        left = self._jobs[hold.job_id] - 1
        if left:
            self._jobs[hold.job_id] = left
        else:
            del self._jobs[hold.job_id]

    def _compact(self) -> None:
        if self._stale > _COMPACT_AFTER and self._stale > len(self._due) - self._stale:
            self._due = [entry for entry in self._due if entry[2].live]
            heapq.heapify(self._due)
            self._stale = 0


def _loop_time_at(seconds_from_now: float) -> float:
    """The loop time ``seconds_from_now`` from now, rounded up to a whole millisecond.

    Computed from time.monotonic(), the clock both uvloop and asyncio count in, not from
    loop.time(), which uvloop rounds down to the millisecond the loop last woke at."""
    if not math.isfinite(seconds_from_now):
        return math.inf
    return math.ceil((time.monotonic() + seconds_from_now) * 1000) / 1000


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
