"""A job: a small record whose state is computed from the clock.

A job is pending while ``now < created_at + duration_s`` and then shows its fated outcome;
no thread, task or timer exists per job (long-polls have their own timers, see
:mod:`server.jobs.long_poll`). Every store makes its jobs with :class:`NewJobs` (so a seed
means the same outcomes whatever the store) and records a status answer with
:meth:`Job.record_request` (the Redis store's script packs the log entry the same way).
Whatever channel first brings a client the final state (a status or batch answer, an event
stream, an accepted webhook) is remembered with its time, so the detection lag is known
for every strategy.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from server.jobs import request_log
from server.jobs.request_log import StatusRequest
from server.models import DeliveryChannel, FinalOutcome, Result

SPECIAL_JOB_ID = "special-pending-job"
DEFAULT_REQUEST_LOG_LENGTH = 200
DEFAULT_RETENTION_S = 3600.0

RequestedOutcome = Literal["completed", "error", "random"]


class JobLimitReached(Exception):
    """The store already holds ``max_jobs`` jobs."""


class Job:
    """One job. ``__slots__`` and shared floats keep a million of them affordable."""

    __slots__ = (
        "created_at",
        "duration_s",
        "fails",
        "first_final_channel",
        "first_final_seen_at",
        "job_id",
        "log",
        "status_requests",
    )

    def __init__(self, job_id: str, created_at: float, duration_s: float, fails: bool | None):
        self.job_id = job_id
        self.created_at = created_at
        self.duration_s = duration_s  # math.inf for the special job
        self.fails = fails  # None: no fate (the special job)
        self.status_requests = 0
        self.first_final_seen_at: float | None = None
        self.first_final_channel: DeliveryChannel | None = None
        self.log: bytearray | None = None  # see server.jobs.request_log; made on the first request

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

    def requests(self) -> list[StatusRequest]:
        """The last status requests still in the job's log, oldest first."""
        return request_log.entries(self.log)

    def record_request(
        self,
        *,
        at: float,
        code: int,
        retry_after_s: float | None,
        result: Result | None,
        log_length: int,
        channel: DeliveryChannel = "status",
    ) -> bool:
        """Count one GET /status answer (or one job's part of a batch answer) and log it
        (the log keeps the last ``log_length``); ``result`` is None when it was a fault.
        Returns whether the answer delivered the final state."""
        self.status_requests += 1
        self.log = request_log.append(self.log, log_length, StatusRequest(at, code, retry_after_s))
        if result is None or result == "pending":
            return False
        self.record_delivery(at, channel)
        return True

    def record_poll(
        self, now: float, hints: bool, log_length: int, channel: DeliveryChannel = "status"
    ) -> bool:
        """Count the 200 answer GET /status gives this job at ``now``; returns whether it
        delivered the final state."""
        return self.record_request(
            at=now,
            code=200,
            retry_after_s=poll_retry_after(self, now, hints),
            result=self.result_at(now),
            log_length=log_length,
            channel=channel,
        )

    def record_delivery(self, at: float, channel: DeliveryChannel) -> None:
        """The final state reached a client at ``at`` by ``channel``: the first is kept."""
        if self.first_final_seen_at is None:
            self.first_final_seen_at = at
            self.first_final_channel = channel


def poll_retry_after(job: Job, now: float, hints: bool) -> int | None:
    """The Retry-After of a 200 status answer: whole seconds until the job ends, at least
    1 (as :func:`server.faults.retry_after_header`); None once it has ended, without
    hints, and for the special job."""
    if not hints or job.fails is None or job.result_at(now) != "pending":
        return None
    return max(1, math.ceil(job.finishes_at - now))


class NewJobs:
    """Makes jobs as every store does: the duration asked for (else the default) and a
    fate drawn from the seeded generator, which decides outcomes only. It still spends 128
    bits per job, as it did when it also drew the id, so a seed gives the same outcomes as
    it always did; ids are uuid4 from the system's cryptographic source."""

    def __init__(self, rng: random.Random, *, error_rate: float, default_duration_s: float):
        self._rng = rng
        self._error_rate = error_rate
        self._default_duration_s = float(default_duration_s)

    def make(
        self, job_id: str, now: float, duration_s: float | None, outcome: RequestedOutcome
    ) -> Job:
        self._rng.getrandbits(128)
        coin = self._rng.random()
        fails = coin < self._error_rate if outcome == "random" else outcome == "error"
        duration = self._default_duration_s if duration_s is None else float(duration_s)
        return Job(job_id, now, duration, fails)
