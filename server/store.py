"""All jobs, kept as small records whose state is computed from the clock.

A job is pending while ``now < created_at + duration_s`` and then shows its fated outcome;
no thread, task or timer exists per job. Timers exist only for jobs somebody is
long-polling: one ``loop.call_later`` per waited job, however many requests wait on it.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from array import array
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, NamedTuple

from server.clock import Clock
from server.models import FinalOutcome, Result

SPECIAL_JOB_ID = "special-pending-job"
HISTORY_LIMIT = 200
# A timer that fires a hair early (the loop clock and the job clock differ) re-checks
# after at least this long, so a disagreement can never become a busy loop.
_RECHECK_FLOOR_S = 0.005

RequestedOutcome = Literal["completed", "error", "random"]


class JobLimitReached(Exception):
    """The store already holds ``max_jobs`` jobs."""


class StatusRequest(NamedTuple):
    """One answered GET /status, as remembered in a job's history (a tuple: cheap to make)."""

    at: float
    code: int
    retry_after_s: float | None


class Job:
    """One job. ``__slots__`` and shared floats keep a million of them affordable."""

    __slots__ = (
        "created_at",
        "duration_s",
        "fails",
        "first_final_seen_at",
        "history",
        "job_id",
        "status_requests",
    )

    def __init__(self, job_id: str, created_at: float, duration_s: float, fails: bool | None):
        self.job_id = job_id
        self.created_at = created_at
        self.duration_s = duration_s  # math.inf for the special job
        self.fails = fails  # None: no fate (the special job)
        self.status_requests = 0
        self.first_final_seen_at: float | None = None
        self.history: deque[StatusRequest] | None = None  # allocated on the first request

    @property
    def finishes_at(self) -> float:
        return self.created_at + self.duration_s

    @property
    def outcome(self) -> FinalOutcome | None:
        if self.fails is None:
            return None
        return "error" if self.fails else "completed"

    def result_at(self, now: float) -> Result:
        if now < self.finishes_at or self.fails is None:
            return "pending"
        return "error" if self.fails else "completed"


class _Waiters:
    """The requests long-polling one job: a shared event and the one timer that sets it."""

    __slots__ = ("event", "held", "timer")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.held = 0
        self.timer: asyncio.TimerHandle | None = None


class JobStore:
    """Creates, finds and counts jobs; records status requests; parks long-polls."""

    def __init__(
        self,
        clock: Clock,
        *,
        rng: random.Random,
        default_duration_s: float,
        error_rate: float,
        max_jobs: int,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._default_duration_s = float(default_duration_s)
        self._error_rate = error_rate
        self._max_jobs = max_jobs
        self._jobs: dict[str, Job] = {}
        self._order: list[Job] = []  # creation order, for paging
        # Finish times of each fate, sorted: jobs by state are two bisections at any time.
        self._finishes: dict[bool, array[float]] = {False: array("d"), True: array("d")}
        self._waiters: dict[str, _Waiters] = {}
        self._held = 0
        self.special = Job(SPECIAL_JOB_ID, clock.now(), math.inf, None)

    # --- jobs -----------------------------------------------------------------------

    def __len__(self) -> int:
        """Created jobs; the special job is not counted."""
        return len(self._order)

    def create(self, duration_s: float | None = None, outcome: RequestedOutcome = "random") -> Job:
        """One new job; raises :class:`JobLimitReached` when the store is full."""
        return self.create_many([(duration_s, outcome)])[0]

    def create_many(self, specs: Sequence[tuple[float | None, RequestedOutcome]]) -> list[Job]:
        """All of ``specs`` as new jobs in order, or none of them if they do not all fit."""
        if len(self._order) + len(specs) > self._max_jobs:
            raise JobLimitReached(f"Job limit reached: {self._max_jobs} jobs")
        now = self._clock.now()
        return [self._add(now, duration_s, outcome) for duration_s, outcome in specs]

    def seconds_until_room(self, count: int) -> float:
        """How long until ``count`` more jobs fit (for Retry-After at the cap)."""
        return 1.0

    def _add(self, now: float, duration_s: float | None, outcome: RequestedOutcome) -> Job:
        # The seeded generator decides outcomes only. It still spends 128 bits per job, as
        # it did when it also drew the id, so a seed gives the same outcomes as before.
        self._rng.getrandbits(128)
        coin = self._rng.random()
        fails = coin < self._error_rate if outcome == "random" else outcome == "error"
        duration = self._default_duration_s if duration_s is None else float(duration_s)
        job = Job(self._new_id(), now, duration, fails)
        self._jobs[job.job_id] = job
        self._order.append(job)
        insort(self._finishes[fails], job.finishes_at)
        return job

    def _new_id(self) -> str:
        """A random uuid4 from the system's cryptographic source: never reused, never seeded."""
        while True:
            job_id = str(uuid.uuid4())
            if job_id not in self._jobs:
                return job_id

    def export(self) -> Iterator[Job]:
        """Every created job in creation order (the special job is not one), for saving."""
        return iter(self._order)

    def restore(self, jobs: Iterable[Job]) -> None:
        """Take back jobs saved by an earlier server, oldest first, into this empty store.

        Only an empty store, so creation order stays the order of ``_order``. Raises
        ValueError (and keeps nothing) for a duplicate or reserved id, a job without a fate,
        or more jobs than ``max_jobs``.
        """
        if self._order:
            raise ValueError("jobs can only be restored into an empty store")
        restored: dict[str, Job] = {}
        for job in jobs:
            if job.job_id == SPECIAL_JOB_ID:
                raise ValueError(f"job id {SPECIAL_JOB_ID!r} is reserved")
            if job.fails is None:
                raise ValueError(f"job {job.job_id!r} has no outcome")
            if job.job_id in restored:
                raise ValueError(f"job {job.job_id!r} appears twice")
            restored[job.job_id] = job
            if len(restored) > self._max_jobs:
                raise ValueError(f"more jobs than max_jobs allows ({self._max_jobs})")
        self._jobs = restored
        self._order = list(restored.values())
        for fails in (False, True):
            finishes = sorted(job.finishes_at for job in self._order if job.fails is fails)
            self._finishes[fails] = array("d", finishes)

    def get(self, job_id: str) -> Job | None:
        if job_id == SPECIAL_JOB_ID:
            return self.special
        return self._jobs.get(job_id)

    def page(self, offset: int, limit: int) -> list[Job]:
        return self._order[offset : offset + limit]

    def counts_by_state(self) -> dict[Result, int]:
        """Created jobs per state right now, in O(log n)."""
        now = self._clock.now()
        completed = bisect_right(self._finishes[False], now)
        error = bisect_right(self._finishes[True], now)
        return {"pending": len(self) - completed - error, "completed": completed, "error": error}

    def record_status_request(
        self, job: Job, *, at: float, code: int, retry_after_s: float | None, result: Result | None
    ) -> None:
        """Remember one GET /status answer; ``result`` is None when it was a fault."""
        job.status_requests += 1
        if job.history is None:
            job.history = deque(maxlen=HISTORY_LIMIT)
        job.history.append(StatusRequest(at, code, retry_after_s))
        if job.first_final_seen_at is None and result is not None and result != "pending":
            job.first_final_seen_at = at

    # --- long-poll ------------------------------------------------------------------

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
        if timeout_s <= 0 or job.result_at(self._clock.now()) != "pending":
            return
        waiters = self._waiters.get(job.job_id)
        if waiters is None:
            waiters = self._waiters[job.job_id] = _Waiters()
            self._arm(job, waiters)
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
        due = [job_id for job_id in self._waiters if self._finishes_at(job_id) <= now]
        for job_id in due:
            self._wake(job_id)
        return len(due)

    def close(self) -> None:
        """Release every held request (they answer with the state at that moment)."""
        for job_id in list(self._waiters):
            self._wake(job_id)

    def _arm(self, job: Job, waiters: _Waiters) -> None:
        remaining = job.finishes_at - self._clock.now()
        if math.isfinite(remaining):
            loop = asyncio.get_running_loop()
            delay = max(remaining, _RECHECK_FLOOR_S)
            waiters.timer = loop.call_later(delay, self._on_timer, job.job_id)

    def _on_timer(self, job_id: str) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is None:
            return
        if self._finishes_at(job_id) <= self._clock.now():
            self._wake(job_id)
        else:
            self._arm(self._jobs[job_id], waiters)

    def _finishes_at(self, job_id: str) -> float:
        job = self.get(job_id)
        return math.inf if job is None else job.finishes_at

    def _wake(self, job_id: str) -> None:
        waiters = self._waiters.pop(job_id)
        if waiters.timer is not None:
            waiters.timer.cancel()
        waiters.event.set()

    def _forget(self, job_id: str) -> None:
        waiters = self._waiters.pop(job_id, None)
        if waiters is not None and waiters.timer is not None:
            waiters.timer.cancel()
