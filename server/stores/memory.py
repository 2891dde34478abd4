"""The default store: jobs, Idempotency-Keys and rate-limit buckets in this process."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Unpack

from server.faults import LocalTokenBuckets
from server.jobs.clock import Clock
from server.jobs.idempotency import IdempotencyTable
from server.jobs.job import Job
from server.models import CallbackAttempt, DeliveryChannel, Result
from server.stores.base import (
    IdempotencyClaim,
    JobSpec,
    JobStore,
    StartedJobs,
    StoreOptions,
    SubscriptionQuota,
    new_subscription_id,
)
from server.stores.job_table import JobTable


@dataclass
class Subscription:
    """A set of job ids a stream may carry, each with when it was added."""

    expires_at: float
    added: dict[str, float] = field(default_factory=dict)
    owner: str | None = None  # the caller whose quota it counts against


class MemoryJobStore(JobStore):
    """Every method finishes without awaiting anything, so each is atomic on the loop."""

    def __init__(self, clock: Clock, **options: Unpack[StoreOptions]) -> None:
        max_jobs, log_length = options["max_jobs"], options["request_log_length"]
        super().__init__(clock, max_jobs=max_jobs, request_log_length=log_length)
        self.retention_s = options["retention_s"]
        self.jobs = JobTable(
            clock,
            rng=options["rng"],
            default_duration_s=options["default_duration_s"],
            error_rate=options["error_rate"],
            max_jobs=max_jobs,
            retention_s=self.retention_s,
            request_log_length=log_length,
        )
        self.jobs.special = self.special
        self.idempotency = IdempotencyTable(
            clock, keep_s=self.retention_s, max_keys=options["max_idempotency_keys"]
        )
        self.rate_limiter = LocalTokenBuckets(clock)
        # Push: job groups by X-Client-Id, subscriptions, webhook attempts. Each is pruned
        # of expired entries whenever it has doubled since the last pruning.
        self.client_jobs: dict[str, list[str]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._owned: dict[str, set[str]] = {}  # owner -> its subscription ids
        self.callbacks: dict[str, list[CallbackAttempt]] = {}
        self._prune_at = {"client_jobs": 1024, "subscriptions": 1024, "callbacks": 1024}

    async def create_many(
        self,
        specs: Sequence[JobSpec],
        claim: IdempotencyClaim | None = None,
        client_id: str | None = None,
    ) -> StartedJobs:
        return self.create_many_now(specs, claim, client_id)

    def create_many_now(
        self,
        specs: Sequence[JobSpec],
        claim: IdempotencyClaim | None = None,
        client_id: str | None = None,
    ) -> StartedJobs:
        """:meth:`create_many` without a single await: two retries racing each other
        cannot both miss the key and both create jobs."""
        if claim is not None:
            earlier = self.idempotency.lookup(claim.scope, claim.key, claim.fingerprint)
            if earlier is not None:
                return StartedJobs(earlier, replayed=True)
        jobs = tuple(self.jobs.create_many(specs))
        if claim is not None:
            self.idempotency.remember(claim.scope, claim.key, claim.fingerprint, jobs)
        if client_id is not None:
            self.add_to_client(client_id, [job.job_id for job in jobs])
        return StartedJobs(jobs)

    def undo_start(
        self, started: StartedJobs, claim: IdempotencyClaim | None, client_id: str | None
    ) -> None:
        """Take back what :meth:`create_many_now` did for a start that could not be kept:
        its jobs, its key and its place in the client's group."""
        self.jobs.discard(started.jobs)
        if claim is not None:
            self.idempotency.forget(claim.scope, claim.key)
        if client_id is not None:
            gone = {job.job_id for job in started.jobs}
            ids = self.client_jobs.get(client_id, [])
            ids[:] = [job_id for job_id in ids if job_id not in gone]

    def add_to_client(self, client_id: str, job_ids: Sequence[str]) -> None:
        self.client_jobs.setdefault(client_id, []).extend(job_ids)
        if len(self.client_jobs) > self._prune_at["client_jobs"]:
            for other, ids in list(self.client_jobs.items()):
                live = [job_id for job_id in ids if self.jobs.get(job_id) is not None]
                if live:
                    self.client_jobs[other] = live
                else:
                    del self.client_jobs[other]
            self._prune_at["client_jobs"] = max(1024, 2 * len(self.client_jobs))

    # --- push ---------------------------------------------------------------------------

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        get = self.jobs.get
        return [get(job_id) for job_id in job_ids]

    async def record_batch_poll(self, jobs: Sequence[Job], now: float, hints: bool) -> None:
        for job in jobs:
            self._record_poll_now(job, now, hints, "batch")

    async def client_job_ids(self, client_id: str, start: int = 0) -> list[str]:
        return self.client_jobs.get(client_id, [])[start:]

    def _subscription(self, subscription_id: str) -> Subscription | None:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is not None and subscription.expires_at <= self.clock.now():
            self._drop_subscription(subscription_id)
            return None
        return subscription

    def _drop_subscription(self, subscription_id: str) -> None:
        owner = self.subscriptions.pop(subscription_id).owner
        owned = None if owner is None else self._owned.get(owner)
        if owner is not None and owned is not None:
            owned.discard(subscription_id)
            if not owned:
                del self._owned[owner]

    def _owner_holds(self, owner: str) -> tuple[int, int]:
        """(subscriptions, ids in all) that ``owner`` holds now."""
        live = [self._subscription(s) for s in list(self._owned.get(owner, ()))]
        held = [subscription for subscription in live if subscription is not None]
        return len(held), sum(len(subscription.added) for subscription in held)

    async def create_subscription(
        self, job_ids: Sequence[str], quota: SubscriptionQuota | None = None
    ) -> str:
        now = self.clock.now()
        if len(self.subscriptions) > self._prune_at["subscriptions"]:
            for gone in [s for s, sub in self.subscriptions.items() if sub.expires_at <= now]:
                self._drop_subscription(gone)
            self._prune_at["subscriptions"] = max(1024, 2 * len(self.subscriptions))
        added = dict.fromkeys(job_ids, now)
        if quota is not None:
            subscriptions, ids = self._owner_holds(quota.owner)
            quota.check(subscriptions + 1, ids + len(added))
        subscription_id = new_subscription_id()
        owner = None if quota is None else quota.owner
        self.subscriptions[subscription_id] = Subscription(now + self.retention_s, added, owner)
        if owner is not None:
            self._owned.setdefault(owner, set()).add(subscription_id)
        return subscription_id

    async def extend_subscription(
        self,
        subscription_id: str,
        job_ids: Sequence[str],
        quota: SubscriptionQuota | None = None,
    ) -> bool:
        subscription = self._subscription(subscription_id)
        if subscription is None:
            return False
        new = [job_id for job_id in dict.fromkeys(job_ids) if job_id not in subscription.added]
        if quota is not None and subscription.owner is not None:
            subscriptions, ids = self._owner_holds(subscription.owner)
            quota.check(subscriptions, ids + len(new))
        now = self.clock.now()
        for job_id in new:
            subscription.added[job_id] = now
        return True

    async def subscription_jobs(
        self, subscription_id: str, added_after: float = -math.inf
    ) -> list[tuple[str, float]] | None:
        subscription = self._subscription(subscription_id)
        if subscription is None:
            return None
        return [(job_id, at) for job_id, at in subscription.added.items() if at > added_after]

    async def touch_subscription(self, subscription_id: str) -> bool:
        subscription = self._subscription(subscription_id)
        if subscription is None:
            return False
        subscription.expires_at = self.clock.now() + self.retention_s
        return True

    async def delete_subscription(self, subscription_id: str) -> bool:
        if self._subscription(subscription_id) is None:
            return False
        self._drop_subscription(subscription_id)
        return True

    async def record_callback_attempt(self, job_id: str, attempt: CallbackAttempt) -> None:
        self.callbacks.setdefault(job_id, []).append(attempt)
        if len(self.callbacks) > self._prune_at["callbacks"]:
            for gone in [j for j in self.callbacks if self.jobs.get(j) is None]:
                del self.callbacks[gone]
            self._prune_at["callbacks"] = max(1024, 2 * len(self.callbacks))

    async def callback_attempts(self, job_id: str) -> list[CallbackAttempt]:
        if self.jobs.get(job_id) is None:
            return []
        return list(self.callbacks.get(job_id, ()))

    async def _get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def get_and_record_poll(self, job_id: str, now: float, hints: bool) -> Job | None:
        """The hot path without a coroutine per step."""
        job = self.jobs.get(job_id)
        if job is not None:
            self._record_poll_now(job, now, hints)
        return job

    async def record_poll(
        self, job: Job, now: float, hints: bool, channel: DeliveryChannel = "status"
    ) -> None:
        self._record_poll_now(job, now, hints, channel)

    def _record_poll_now(
        self, job: Job, now: float, hints: bool, channel: DeliveryChannel = "status"
    ) -> None:
        """Every 200 status answer is recorded here, without a coroutine of its own."""
        if job.record_poll(now, hints, self.request_log_length, channel):
            self.final_deliveries[channel] += 1
        self._counters_changed(job)

    async def record_status_request(
        self,
        job: Job,
        *,
        at: float,
        code: int,
        retry_after_s: float | None,
        result: Result | None,
        channel: DeliveryChannel = "status",
    ) -> None:
        if self.jobs.record_status_request(
            job, at=at, code=code, retry_after_s=retry_after_s, result=result, channel=channel
        ):
            self.final_deliveries[channel] += 1
        self._counters_changed(job)

    async def _record_deliveries(
        self, deliveries: Sequence[tuple[str, float]], channel: DeliveryChannel
    ) -> None:
        for job_id, at in deliveries:
            job = self.jobs.get(job_id)  # the special job never ends: never delivered
            if job is not None and job.first_final_seen_at is None:
                job.record_delivery(at, channel)
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
