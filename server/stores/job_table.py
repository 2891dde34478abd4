"""The memory store's table of jobs: found by id, counted by state and expired by finish
time, all in this process.

A finished job is kept ``retention_s`` seconds, then it expires with its request log, so
memory is bounded by the rate of starts, not by the uptime. Jobs are also kept sorted by
finish time (the expiry order), so expiring the oldest is a slice off the front and jobs
by state are two bisections.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from server.jobs.clock import Clock
from server.jobs.job import (
    DEFAULT_REQUEST_LOG_LENGTH,
    DEFAULT_RETENTION_S,
    SPECIAL_JOB_ID,
    Job,
    JobLimitReached,
    NewJobs,
    RequestedOutcome,
)
from server.models import DeliveryChannel, Result

# Expired jobs are dropped in slices (a memmove of the sorted arrays): at least this many
# at once, or whatever expired once this many seconds have passed since the last sweep.
_SWEEP_BATCH = 256
_SWEEP_EVERY_S = 1.0


class JobTable:
    """Creates, finds, counts and expires jobs, in this process's memory. The memory and
    SQLite stores keep their jobs here."""

    def __init__(
        self,
        clock: Clock,
        *,
        rng: random.Random,
        default_duration_s: float,
        error_rate: float,
        max_jobs: int,
        retention_s: float = DEFAULT_RETENTION_S,
        request_log_length: int = DEFAULT_REQUEST_LOG_LENGTH,
    ) -> None:
        self._clock = clock
        self._new_jobs = NewJobs(rng, error_rate=error_rate, default_duration_s=default_duration_s)
        self._max_jobs = max_jobs
        self._retention_s = retention_s
        self.request_log_length = request_log_length
        self._jobs: dict[str, Job] = {}  # in creation order, for paging
        # Per fate, the finish times sorted and the jobs in the same order: jobs by state
        # are two bisections at any time, and the expired ones are a prefix.
        self._finishes: dict[bool, array[float]] = {False: array("d"), True: array("d")}
        self._by_finish: dict[bool, list[Job]] = {False: [], True: []}
        self._last_sweep = clock.now()
        self.special = Job(SPECIAL_JOB_ID, clock.now(), math.inf, None)

    # --- jobs -----------------------------------------------------------------------

    @property
    def max_jobs(self) -> int:
        return self._max_jobs

    def __len__(self) -> int:
        """Live (not expired) created jobs; the special job is not counted."""
        return len(self._jobs) - self._expired_unswept(self._clock.now())

    def is_full(self) -> bool:
        return len(self) >= self._max_jobs

    def create(self, duration_s: float | None = None, outcome: RequestedOutcome = "random") -> Job:
        """One new job; raises :class:`JobLimitReached` when the store is full."""
        return self.create_many([(duration_s, outcome)])[0]

    def create_many(self, specs: Sequence[tuple[float | None, RequestedOutcome]]) -> list[Job]:
        """All of ``specs`` as new jobs in order, or none of them if they do not all fit."""
        now = self._clock.now()
        self._sweep(now, force=len(self._jobs) + len(specs) > self._max_jobs)
        if len(self._jobs) + len(specs) > self._max_jobs:
            raise JobLimitReached(f"Job limit reached: {self._max_jobs} jobs")
        return [self._add(now, duration_s, outcome) for duration_s, outcome in specs]

    def seconds_until_room(self, count: int) -> float:
        """How long until ``count`` more jobs fit, as far as expiry alone frees room."""
        now = self._clock.now()
        need = len(self) + count - self._max_jobs
        if need <= 0:
            return 0.0
        live = []
        for fails in (False, True):
            first = self._expired_count(fails, now)
            live.append(self._finishes[fails][first : first + need])  # copies need, not all
        finishes = list(islice(heapq.merge(*live), need))
        if len(finishes) < need:  # more than the cap could ever hold
            return self._retention_s
        return finishes[-1] + self._retention_s - now

    def _add(self, now: float, duration_s: float | None, outcome: RequestedOutcome) -> Job:
        job = self._new_jobs.make(self._new_id(), now, duration_s, outcome)
        self._jobs[job.job_id] = job
        self._insert_by_finish(job)
        return job

    def discard(self, jobs: Sequence[Job]) -> None:
        """Forget ``jobs`` as if they had never been created (their start was not
        committed); a job already gone is skipped."""
        for job in jobs:
            if self._jobs.get(job.job_id) is not job:
                continue
            del self._jobs[job.job_id]
            fails = bool(job.fails)
            finishes, by_finish = self._finishes[fails], self._by_finish[fails]
            index = bisect_left(finishes, job.finishes_at)
            while by_finish[index] is not job:  # jobs finishing at the same time
                index += 1
            del finishes[index]
            del by_finish[index]

    def _insert_by_finish(self, job: Job) -> None:
        fails = bool(job.fails)
        index = bisect_right(self._finishes[fails], job.finishes_at)
        self._finishes[fails].insert(index, job.finishes_at)
        self._by_finish[fails].insert(index, job)

    def _new_id(self) -> str:
        """A random uuid4 from the system's cryptographic source: never reused, never seeded."""
        while True:
            job_id = str(uuid.uuid4())
            if job_id not in self._jobs:
                return job_id

    # --- expiry ---------------------------------------------------------------------

    def _expired(self, job: Job, now: float) -> bool:
        return job.fails is not None and job.finishes_at <= now - self._retention_s

    def _expired_count(self, fails: bool, now: float) -> int:
        return bisect_right(self._finishes[fails], now - self._retention_s)

    def _expired_unswept(self, now: float) -> int:
        return self._expired_count(False, now) + self._expired_count(True, now)

    def _sweep(self, now: float, *, force: bool = False) -> None:
        """Drop expired jobs: in batches, so each costs one memmove, not one per job."""
        due = force or now - self._last_sweep >= _SWEEP_EVERY_S
        for fails in (False, True):
            count = self._expired_count(fails, now)
            if count == 0 or (count < _SWEEP_BATCH and not due):
                continue
            jobs = self._by_finish[fails]
            for job in jobs[:count]:
                del self._jobs[job.job_id]
            del jobs[:count]
            del self._finishes[fails][:count]
        if due:
            self._last_sweep = now

    def expire(self) -> None:
        """Drop every expired job now (reads already skip them; this frees their memory)."""
        self._sweep(self._clock.now(), force=True)

    # --- reading --------------------------------------------------------------------

    def export(self) -> Iterator[Job]:
        """Every live created job in creation order (the special job is not one), for saving."""
        self.expire()
        return iter(list(self._jobs.values()))

    def restore(self, jobs: Iterable[Job]) -> None:
        """Take back jobs saved by an earlier server, oldest first, into this empty store.

        Only an empty store, so creation order stays the order of the saved jobs. Raises
        ValueError (and keeps nothing) for a duplicate or reserved id, a job without a
        fate, or more jobs than ``max_jobs``. Jobs already past their retention are dropped.
        """
        if self._jobs:
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
        for fails in (False, True):
            ordered = sorted(
                (job for job in restored.values() if job.fails is fails),
                key=lambda job: job.finishes_at,
            )
            self._by_finish[fails] = ordered
            self._finishes[fails] = array("d", (job.finishes_at for job in ordered))
        self.expire()

    def get(self, job_id: str) -> Job | None:
        if job_id == SPECIAL_JOB_ID:
            return self.special
        job = self._jobs.get(job_id)
        if job is None or self._expired(job, self._clock.now()):
            return None
        return job

    def page(self, offset: int, limit: int) -> list[Job]:
        self.expire()
        return list(islice(self._jobs.values(), offset, offset + limit))

    def counts_by_state(self) -> dict[Result, int]:
        """Live created jobs per state right now, in O(log n)."""
        now = self._clock.now()
        completed = bisect_right(self._finishes[False], now) - self._expired_count(False, now)
        error = bisect_right(self._finishes[True], now) - self._expired_count(True, now)
        return {"pending": len(self) - completed - error, "completed": completed, "error": error}

    def record_status_request(
        self,
        job: Job,
        *,
        at: float,
        code: int,
        retry_after_s: float | None,
        result: Result | None,
        channel: DeliveryChannel = "status",
    ) -> bool:
        """Remember one GET /status answer; ``result`` is None when it was a fault.
        Returns whether it delivered the final state."""
        return job.record_request(
            at=at,
            code=code,
            retry_after_s=retry_after_s,
            result=result,
            log_length=self.request_log_length,
            channel=channel,
        )
