"""The default store: jobs, Idempotency-Keys and rate-limit buckets in this process."""

from __future__ import annotations

import random
from collections.abc import Sequence

from server.clock import Clock
from server.faults import LocalTokenBuckets
from server.idempotency import IdempotencyTable
from server.job_store import IdempotencyClaim, JobSpec, JobStore, StartedJobs
from server.models import Result
from server.store import (
    DEFAULT_REQUEST_LOG_LENGTH,
    DEFAULT_RETENTION_S,
    Job,
    MemoryJobs,
    poll_retry_after,
)


class MemoryJobStore(JobStore):
    """Every method finishes without awaiting anything, so each is atomic on the loop."""

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
        max_idempotency_keys: int = 100_000,
    ) -> None:
        super().__init__(clock, max_jobs=max_jobs, request_log_length=request_log_length)
        self.retention_s = retention_s
        self.jobs = MemoryJobs(
            clock,
            rng=rng,
            default_duration_s=default_duration_s,
            error_rate=error_rate,
            max_jobs=max_jobs,
            retention_s=retention_s,
            request_log_length=request_log_length,
        )
        self.jobs.special = self.special
        self.idempotency = IdempotencyTable(
            clock, keep_s=retention_s, max_keys=max_idempotency_keys
        )
        self.rate_limiter = LocalTokenBuckets(clock)

    async def create_many(
        self, specs: Sequence[JobSpec], claim: IdempotencyClaim | None = None
    ) -> StartedJobs:
        return self.create_many_now(specs, claim)

    def create_many_now(
        self, specs: Sequence[JobSpec], claim: IdempotencyClaim | None = None
    ) -> StartedJobs:
        """:meth:`create_many` without a single await: two retries racing each other
        cannot both miss the key and both create jobs."""
        if claim is None:
            return StartedJobs(tuple(self.jobs.create_many(specs)))
        earlier = self.idempotency.lookup(claim.scope, claim.key, claim.fingerprint)
        if earlier is not None:
            return StartedJobs(earlier, replayed=True)
        jobs = tuple(self.jobs.create_many(specs))
        self.idempotency.remember(claim.scope, claim.key, claim.fingerprint, jobs)
        return StartedJobs(jobs)

    async def _get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def get_and_record_poll(self, job_id: str, now: float, hints: bool) -> Job | None:
        """The hot path without a coroutine per step."""
        job = self.jobs.get(job_id)
        if job is not None:
            retry_after_s = poll_retry_after(job, now, hints)
            result = job.result_at(now)
            self.jobs.record_status_request(
                job, at=now, code=200, retry_after_s=retry_after_s, result=result
            )
            self._counters_changed(job)
        return job

    async def record_status_request(
        self, job: Job, *, at: float, code: int, retry_after_s: float | None, result: Result | None
    ) -> None:
        self.jobs.record_status_request(
            job, at=at, code=code, retry_after_s=retry_after_s, result=result
        )
        self._counters_changed(job)

    def _counters_changed(self, job: Job) -> None:
        """A job's counters or log changed (the SQLite store writes them behind)."""

    async def page(self, offset: int, limit: int) -> list[Job]:
        return self.jobs.page(offset, limit)

    async def count(self) -> int:
        return len(self.jobs)

    async def counts_by_state(self) -> dict[Result, int]:
        return self.jobs.counts_by_state()

    async def seconds_until_room(self, count: int) -> float:
        return self.jobs.seconds_until_room(count)
