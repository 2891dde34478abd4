"""Long-polls held by this process: one timer per waited job, however many wait on it.

Job state comes from the clock (``created_at + duration_s``), so a wait needs only the
job's finish time, never the store: whichever process holds the request can answer it,
whatever store the jobs live in.
"""

from __future__ import annotations

import asyncio
import math

from server.clock import Clock
from server.store import Job

# A timer that fires a hair early re-checks after at least this long, so a disagreement
# between the loop's clock and the job's can never become a busy loop. uvloop keeps
# timers in whole milliseconds and fires up to 1 ms early: a 5 ms floor made that a 5 ms
# late answer (lag p90 5.3 ms), a 0.5 ms floor a spin of ~25 timer calls per job; one
# millisecond is uvloop's own step (python -m bench.long_poll_lag: p90 1.2 ms).
_RECHECK_FLOOR_S = 0.001


class _Waiters:
    """The requests long-polling one job: a shared event and the one timer that sets it."""

    __slots__ = ("event", "finishes_at", "held", "timer")

    def __init__(self, finishes_at: float) -> None:
        self.event = asyncio.Event()
        self.finishes_at = finishes_at
        self.held = 0
        self.timer: asyncio.TimerHandle | None = None


class LongPolls:
    """Parks status requests until their job leaves pending or their wait runs out."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waiters: dict[str, _Waiters] = {}
        self._held = 0
        self._closing = False

    @property
    def held_requests(self) -> int:
        """Status requests parked in :meth:`wait_until_settled` right now."""
        return self._held

    @property
    def waited_jobs(self) -> int:
        """Jobs that have a timer running because somebody long-polls them."""
        return len(self._waiters)

    async def wait_until_settled(self, job: Job, timeout_s: float) -> None:
        """Return when ``job`` leaves pending or after ``timeout_s`` seconds, whichever first."""
        if timeout_s <= 0 or self._closing or job.result_at(self._clock.now()) != "pending":
            return
        waiters = self._waiters.get(job.job_id)
        if waiters is None:
            waiters = self._waiters[job.job_id] = _Waiters(job.finishes_at)
            self._arm(job.job_id, waiters)
        waiters.held += 1
        self._held += 1
        try:
            async with asyncio.timeout(timeout_s):
                await waiters.event.wait()
        except TimeoutError:
            pass
        finally:
            waiters.held -= 1
            self._held -= 1
            if waiters.held == 0 and not waiters.event.is_set():
                self._forget(job.job_id)

    def notify_due(self) -> int:
        """Wake the waiters of every job that has finished; returns how many jobs woke.

        The timers do this on their own with the system clock; tests that move a
        :class:`~server.clock.FakeClock` call it right after ``advance()``.
        """
        now = self._clock.now()
        due = [job_id for job_id, waiters in self._waiters.items() if waiters.finishes_at <= now]
        for job_id in due:
            self._wake(job_id)
        return len(due)

    def close(self) -> None:
        """Release every held request (they answer with the state at that moment) and
        hold no new ones: the server is stopping."""
        self._closing = True
        for job_id in list(self._waiters):
            self._wake(job_id)

    def _arm(self, job_id: str, waiters: _Waiters) -> None:
        remaining = waiters.finishes_at - self._clock.now()
        if math.isfinite(remaining):
            loop = asyncio.get_running_loop()
            delay = max(remaining, _RECHECK_FLOOR_S)
            waiters.timer = loop.call_later(delay, self._on_timer, job_id)

    def _on_timer(self, job_id: str) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is None:
            return
        if waiters.finishes_at <= self._clock.now():
            self._wake(job_id)
        else:
            self._arm(job_id, waiters)

    def _wake(self, job_id: str) -> None:
        waiters = self._waiters.pop(job_id)
        if waiters.timer is not None:
            waiters.timer.cancel()
        waiters.event.set()

    def _forget(self, job_id: str) -> None:
        waiters = self._waiters.pop(job_id, None)
        if waiters is not None and waiters.timer is not None:
            waiters.timer.cancel()
