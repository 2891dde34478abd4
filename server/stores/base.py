"""The one interface every job store offers (:class:`JobStore`) and what crosses it.

Whatever the store, a job's state is a function of the clock (``created_at +
duration_s``): any process can answer a poll and hold a long-poll (see
:mod:`server.jobs.long_poll`), and only counters and logs are ever written after a start.
Which store a URL names is :mod:`server.stores.urls`; building one, :mod:`server.stores.factory`.
"""

from __future__ import annotations

import math
import random
import secrets
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from server.faults import RateLimiter
from server.jobs.clock import Clock
from server.jobs.job import SPECIAL_JOB_ID, Job, RequestedOutcome, poll_retry_after
from server.jobs.long_poll import LongPolls
from server.jobs.schedule import Schedule
from server.models import CallbackAttempt, DeliveryChannel, Faults, Result

JobSpec = tuple[float | None, RequestedOutcome]


class StoreUnavailable(Exception):
    """The store cannot be reached right now (Redis is down); the server answers 503."""


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A start that carries an Idempotency-Key: whose key, and what the request was."""

    scope: str
    key: str
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class StartedJobs:
    """The jobs a start answers with; ``replayed`` when an earlier start with the same key
    made them."""

    jobs: tuple[Job, ...]
    replayed: bool = False


class SubscriptionQuotaExceeded(Exception):
    """The caller holds as many subscriptions, or subscribed ids, as its quota allows; the
    message names the limit."""


@dataclass(frozen=True, slots=True)
class SubscriptionQuota:
    """How much one caller may subscribe to: a subscription counts against the caller that
    created it, with every id it holds, until it is deleted or expires."""

    owner: str
    max_subscriptions: int
    max_ids: int

    def too_many_subscriptions(self) -> SubscriptionQuotaExceeded:
        return SubscriptionQuotaExceeded(
            f"Subscription limit reached: {self.max_subscriptions} per client; "
            "delete one first (DELETE /subscriptions/{id})"
        )

    def too_many_ids(self) -> SubscriptionQuotaExceeded:
        return SubscriptionQuotaExceeded(
            f"Subscribed job limit reached: {self.max_ids} job ids per client in all of "
            "its subscriptions"
        )

    def check(self, subscriptions: int, ids: int) -> None:
        """Raise unless ``subscriptions`` subscriptions holding ``ids`` ids in all (the
        caller's, counting the change asked for) fit."""
        if subscriptions > self.max_subscriptions:
            raise self.too_many_subscriptions()
        if ids > self.max_ids:
            raise self.too_many_ids()


class JobStore(ABC):
    """Creates, finds, counts and expires jobs, records status requests, holds long-polls.

    Backends differ only in where the jobs live; the routes see this interface alone.
    Every method that may reach another process raises :class:`StoreUnavailable` when it
    cannot, never hangs longer than about a second.
    """

    def __init__(self, clock: Clock, *, max_jobs: int, request_log_length: int) -> None:
        self.clock = clock
        self.max_jobs = max_jobs
        self.request_log_length = request_log_length
        # every timed wake-up of this process (long-polls, event streams, webhook attempts)
        self.schedule = Schedule(clock)
        self.long_polls = LongPolls(self.schedule)
        self.special = Job(SPECIAL_JOB_ID, clock.now(), math.inf, None)
        self._close_listeners: list[Callable[[], None]] = []
        # Final states this process delivered, by channel (every one, not only the first
        # of a job): /metrics reports them.
        self.final_deliveries: Counter[DeliveryChannel] = Counter()

    rate_limiter: RateLimiter
    # True when other processes serve the same jobs (they then share the faults too).
    shared = False
    # Why the store cannot keep new jobs right now (a full disk), or None: /healthz says
    # degraded while it is set, and the store clears it once a write succeeds again.
    write_problem: str | None = None

    # --- life cycle -------------------------------------------------------------------

    async def open(self) -> None:  # noqa: B027  (most stores have nothing to open)
        """Connect and load; called once before the first request."""

    async def aclose(self) -> None:  # noqa: B027
        """Write what is still pending and disconnect; called once after the last request."""

    def close(self) -> None:
        """Release every held long-poll and hold no new ones: the server is stopping.
        Event streams and webhook deliveries listen for this too (:meth:`on_close`)."""
        self.long_polls.close()
        for listener in self._close_listeners:
            listener()
        self.schedule.cancel_all()

    def on_close(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when :meth:`close` is called (the server begins to stop)."""
        self._close_listeners.append(listener)

    # --- jobs -------------------------------------------------------------------------

    @abstractmethod
    async def create_many(
        self,
        specs: Sequence[JobSpec],
        claim: IdempotencyClaim | None = None,
        client_id: str | None = None,
    ) -> StartedJobs:
        """All of ``specs`` as new jobs, or none: raises
        :class:`~server.jobs.job.JobLimitReached` if they do not all fit. With a ``claim``
        whose key was seen before, the jobs made then (or
        :class:`~server.jobs.idempotency.IdempotencyConflict` if the body differed). New jobs
        join ``client_id``'s group (the start's X-Client-Id), see :meth:`client_job_ids`."""

    async def get(self, job_id: str) -> Job | None:
        """The job, without its request log (the hot path); None if unknown or expired."""
        if job_id == SPECIAL_JOB_ID:
            return self.special
        return await self._get(job_id)

    @abstractmethod
    async def _get(self, job_id: str) -> Job | None: ...

    async def get_and_record_poll(self, job_id: str, now: float, hints: bool) -> Job | None:
        """The job, with the 200 answer GET /status gives it at ``now`` already counted
        and logged: the hot path's one call (one round trip on Redis)."""
        job = await self.get(job_id)
        if job is not None:
            await self.record_poll(job, now, hints)
        return job

    async def record_poll(
        self, job: Job, now: float, hints: bool, channel: DeliveryChannel = "status"
    ) -> None:
        """Count the 200 answer GET /status (or, with ``channel`` "batch", POST
        /status/batch) gives ``job`` at ``now``."""
        result = job.result_at(now)
        await self.record_status_request(
            job,
            at=now,
            code=200,
            retry_after_s=poll_retry_after(job, now, hints),
            result=result,
            channel=channel,
        )
        if result != "pending":
            self.final_deliveries[channel] += 1

    async def record_deliveries(
        self, deliveries: Sequence[tuple[str, float]], channel: DeliveryChannel
    ) -> None:
        """Final states pushed to a client, as ``(job id, when)``: by an event stream, or
        a webhook its receiver accepted. Each job keeps the first delivery by any channel
        (see :meth:`~server.jobs.job.Job.record_delivery`)."""
        self.final_deliveries[channel] += len(deliveries)
        await self._record_deliveries(deliveries, channel)

    @abstractmethod
    async def _record_deliveries(
        self, deliveries: Sequence[tuple[str, float]], channel: DeliveryChannel
    ) -> None: ...

    async def get_record(self, job_id: str) -> Job | None:
        """The job with its request log, for GET /jobs/{id}."""
        return await self.get(job_id)

    @abstractmethod
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
        """Count one GET /status answer and log it; ``result`` is None when it was a
        fault. An answer that showed a final state counts as its delivery by ``channel``."""

    @abstractmethod
    async def page(self, offset: int, limit: int) -> list[Job]:
        """Live jobs in creation order."""

    @abstractmethod
    async def count(self) -> int:
        """Live (not expired) created jobs; the special job is not one."""

    @abstractmethod
    async def counts_by_state(self) -> dict[Result, int]: ...

    @abstractmethod
    async def seconds_until_room(self, count: int) -> float:
        """How long until ``count`` more jobs fit, as far as expiry alone frees room."""

    async def is_full(self) -> bool:
        return await self.count() >= self.max_jobs

    # --- push: many jobs at once, groups, subscriptions, webhook attempts -------------

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """The jobs, in order; None for each unknown or expired id."""
        return [await self.get(job_id) for job_id in job_ids]

    async def record_batch_poll(self, jobs: Sequence[Job], now: float, hints: bool) -> None:
        """Count one 200 status answer at ``now`` for each of ``jobs`` (POST /status/batch),
        so requests-per-job figures stay honest whichever way a client asks."""
        for job in jobs:
            await self.record_poll(job, now, hints, "batch")

    @abstractmethod
    async def client_job_ids(self, client_id: str, start: int = 0) -> list[str]:
        """Ids of the jobs started with X-Client-Id ``client_id``, in start order, from the
        ``start``-th on: a stream that read n of them asks only for what came after. Ids of
        expired jobs may still be listed (:meth:`get_many` then finds nothing)."""

    @abstractmethod
    async def create_subscription(
        self, job_ids: Sequence[str], quota: SubscriptionQuota | None = None
    ) -> str:
        """A new subscription holding ``job_ids``; it expires ``retention_s`` after its last
        :meth:`touch_subscription`. Raises :class:`SubscriptionQuotaExceeded` (and creates
        nothing) when it would take ``quota.owner`` past the quota."""

    @abstractmethod
    async def extend_subscription(
        self,
        subscription_id: str,
        job_ids: Sequence[str],
        quota: SubscriptionQuota | None = None,
    ) -> bool:
        """Add ``job_ids``; False if there is no such subscription. Raises
        :class:`SubscriptionQuotaExceeded` (and adds nothing) when the new ids would take
        the subscription's owner past ``quota``'s limits."""

    @abstractmethod
    async def subscription_jobs(
        self, subscription_id: str, added_after: float = -math.inf
    ) -> list[tuple[str, float]] | None:
        """``(job_id, added_at)`` of the jobs added after ``added_after`` (by the store's
        clock), oldest first; None if there is no such subscription."""

    @abstractmethod
    async def touch_subscription(self, subscription_id: str) -> bool:
        """Keep the subscription another retention window (a stream is attached); False
        if it is gone."""

    @abstractmethod
    async def delete_subscription(self, subscription_id: str) -> bool:
        """Forget it; False if there was no such subscription."""

    @abstractmethod
    async def record_callback_attempt(self, job_id: str, attempt: CallbackAttempt) -> None:
        """Remember one webhook delivery attempt, for GET /jobs/{id}; kept as long as the job."""

    @abstractmethod
    async def callback_attempts(self, job_id: str) -> list[CallbackAttempt]:
        """The webhook delivery attempts of the job, oldest first."""

    async def remember_callbacks(  # noqa: B027  (only a durable store keeps them)
        self, targets: Sequence[tuple[Job, str, str | None]], *, takeover_s: float
    ) -> None:
        """Keep ``(job, callback_url, callback_secret)`` so that a restarted server still
        delivers them; only a durable store keeps them (the others: nothing to do). A store
        shared by several processes leases each to this process until ``takeover_s`` after
        its job's end (see :meth:`lease_callback`)."""

    async def callbacks_to_resume(self) -> list[tuple[Job, str, str | None, int]]:
        """After a restart: ``(job, url, secret, attempts so far)`` of every remembered
        callback that no attempt delivered yet."""
        return []

    # A store shared by several processes also shares the duty to deliver: each owed
    # callback carries a lease, which its process renews before every attempt; when a
    # process dies, its leases run out and another process claims what it owed.

    async def lease_callback(self, job_id: str, until: float) -> bool:
        """This process still delivers ``job_id``'s callback: keep it ours until ``until``.
        False when it is no longer ours to deliver (delivered, or claimed by another)."""
        return True

    async def release_callback(self, job_id: str) -> None:  # noqa: B027
        """The delivery ended (delivered, or its attempts spent): nobody owes it now."""

    async def claim_lapsed_callbacks(
        self, now: float, until: float
    ) -> list[tuple[Job, str, str | None, int]]:
        """Callbacks whose lease ran out before ``now`` (their process died), leased to this
        process until ``until``: ``(job, url, secret, attempts so far)`` each."""
        return []

    # --- faults shared between processes --------------------------------------------

    async def publish_faults(self, faults: Faults) -> None:  # noqa: B027
        """Make ``faults`` every process's faults (a store only this process uses: no-op)."""

    async def published_faults(self) -> Faults | None:
        """The faults last published by any process, None if none or not shared."""
        return None

    # --- long-poll --------------------------------------------------------------------

    async def wait_until_settled(self, job: Job, timeout_s: float) -> None:
        await self.long_polls.wait_until_settled(job, timeout_s)

    def notify_due(self) -> int:
        """Run the timers whose moment a moved fake clock has reached (tests)."""
        return self.schedule.fire_due()

    @property
    def held_requests(self) -> int:
        return self.long_polls.held_requests

    @property
    def waited_jobs(self) -> int:
        return self.long_polls.waited_jobs


def new_subscription_id() -> str:
    """Unguessable: knowing a subscription's id is what lets a client read its stream."""
    return secrets.token_urlsafe(16)


class StoreOptions(TypedDict):
    """What every store is built with, from the settings."""

    rng: random.Random  # outcomes only; ids are always uuid4
    default_duration_s: float
    error_rate: float
    max_jobs: int
    retention_s: float
    request_log_length: int
    max_idempotency_keys: int
