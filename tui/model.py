"""The dashboard's state: every watched job, the request rate, and how to order and filter them.

This module is plain Python on purpose: the Textual views only *read* it, and the app's
message handlers are the only code that changes it. That makes the rules (what a poll event
does to a job, which jobs a filter shows, how rows sort) testable without a terminal.

Time is always passed in (``now``, seconds from the app's injectable clock), never read here,
so a frozen clock gives frozen countdowns and elapsed times.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from client_core import BackoffPolicy, DelayReason, Outcome, PollEvent, Strategy

SPECIAL_JOB_ID = "special-pending-job"
HISTORY_LENGTH = 200


class JobState(StrEnum):
    """The coarse state a job is filtered by: still watched, or how its watch ended."""

    PENDING = "pending"
    COMPLETED = "completed"
    ERROR = "error"
    FAILED = "failed"  # timed out, unreachable, not found, rejected: the watch gave up
    CANCELLED = "cancelled"


#: The order the status filter cycles through; ``None`` shows every job.
FILTER_CYCLE: tuple[JobState | None, ...] = (None, *JobState)

_STATE_OF_OUTCOME = {
    Outcome.COMPLETED: JobState.COMPLETED,
    Outcome.ERROR: JobState.ERROR,
    Outcome.CANCELLED: JobState.CANCELLED,
    Outcome.TIMED_OUT: JobState.FAILED,
    Outcome.UNREACHABLE: JobState.FAILED,
    Outcome.NOT_FOUND: JobState.FAILED,
    Outcome.REJECTED: JobState.FAILED,
}


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the user asked for: enough to start the same job again (the ``retry`` action)."""

    duration_s: float | None = None  # None: the server's default delay
    outcome: str | None = None  # "completed" / "error"; None: the server draws it
    strategy: Strategy = Strategy.AUTO
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    job_id: str | None = None  # set for a job that already exists (the special job)


@dataclass(frozen=True, slots=True)
class PollRecord:
    """One line of a job's poll history, as the detail view shows it."""

    at_s: float  # seconds since the job was added to the dashboard
    attempt: int
    http_status: int | None
    status: str
    next_delay_s: float | None
    reason: DelayReason
    strategy: Strategy
    error: str | None = None
    eta_s: float | None = None


@dataclass(slots=True)
class JobView:
    """Everything the dashboard knows about one watched job."""

    key: str  # unique row key: the job id, or job id + "#n" when the same job is watched again
    job_id: str
    spec: JobSpec
    started_at: float
    seq: int  # insertion order, the default sort and the tie-breaker
    status: str = "pending"  # what the server said last; "" when the last poll got no answer
    attempt: int = 0  # status requests in the current watch (the event's attempt)
    requests: int = 0  # HTTP requests the dashboard sent for this job, POST /start included
    strategy: Strategy = Strategy.AUTO  # the strategy actually in use
    next_delay_s: float | None = None
    next_poll_at: float | None = None
    reason: DelayReason | None = None
    outcome: Outcome | None = None
    ended_at: float | None = None
    last_error: str | None = None
    history: deque[PollRecord] = field(default_factory=lambda: deque(maxlen=HISTORY_LENGTH))

    @property
    def state(self) -> JobState:
        if self.outcome is None:
            return JobState.PENDING
        return _STATE_OF_OUTCOME[self.outcome]

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def elapsed(self, now: float) -> float:
        """Seconds since the job was added; frozen once the watch ends."""
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.started_at)

    def countdown(self, now: float) -> float | None:
        """Seconds until the next poll, or None when no poll is scheduled."""
        if self.finished or self.next_poll_at is None:
            return None
        return max(0.0, self.next_poll_at - now)


class SortColumn(StrEnum):
    """The columns rows can be ordered by (the table's column keys)."""

    ADDED = "added"  # insertion order: no column, the default
    JOB = "job"
    STATUS = "status"
    ATTEMPT = "attempt"
    NEXT = "next"
    STRATEGY = "strategy"
    ELAPSED = "elapsed"
    REQUESTS = "requests"
    OUTCOME = "outcome"

    @property
    def time_dependent(self) -> bool:
        """True when the order can change with the clock alone, without any new event."""
        return self in (SortColumn.NEXT, SortColumn.ELAPSED)


_NEVER = float("inf")


def sort_key(view: JobView, column: SortColumn, now: float) -> tuple[Any, int]:
    """Key for ordering rows by ``column``; ties keep insertion order, so sorting is stable."""
    value: Any
    match column:
        case SortColumn.ADDED:
            value = 0
        case SortColumn.JOB:
            value = view.job_id
        case SortColumn.STATUS:
            value = view.status
        case SortColumn.ATTEMPT:
            value = view.attempt
        case SortColumn.NEXT:
            countdown = view.countdown(now)
            value = _NEVER if countdown is None else countdown
        case SortColumn.STRATEGY:
            value = str(view.strategy)
        case SortColumn.ELAPSED:
            value = view.elapsed(now)
        case SortColumn.REQUESTS:
            value = view.requests
        case SortColumn.OUTCOME:
            value = str(view.outcome or "")
    return value, view.seq


class RequestRate:
    """Requests per second over a sliding window, in one-second buckets (for the sparkline)."""

    def __init__(self, window_s: int = 60) -> None:
        self.window_s = window_s
        self._buckets: dict[int, int] = {}

    def record(self, now: float, count: int = 1) -> None:
        second = int(now)
        self._buckets[second] = self._buckets.get(second, 0) + count
        oldest = second - self.window_s
        for stale in [s for s in self._buckets if s < oldest]:
            del self._buckets[stale]

    def series(self, now: float, seconds: int = 30) -> list[float]:
        """Counts of the last ``seconds`` complete seconds, oldest first."""
        current = int(now)
        return [float(self._buckets.get(s, 0)) for s in range(current - seconds, current)]

    def per_second(self, now: float) -> float:
        """Requests in the last complete second."""
        return float(self._buckets.get(int(now) - 1, 0))


class JobBoard:
    """All watched jobs by row key, plus which of them changed since the view last looked."""

    def __init__(self, history_length: int = HISTORY_LENGTH) -> None:
        self.history_length = history_length
        self.jobs: dict[str, JobView] = {}
        self.rate = RequestRate()
        self.start_failures = 0  # POST /start requests that failed for good
        # Keys changed since the view last looked, in the order they first changed (a dict
        # as an ordered set), so new rows are added in the order the jobs started.
        self._dirty: dict[str, None] = {}
        self._removed: set[str] = set()
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self.jobs)

    def __contains__(self, key: object) -> bool:
        return key in self.jobs

    def __getitem__(self, key: str) -> JobView:
        return self.jobs[key]

    def __iter__(self) -> Iterator[JobView]:
        return iter(self.jobs.values())

    def unique_key(self, job_id: str) -> str:
        """The job id itself, or ``job_id#2``, ``#3``... when that job is already on the board."""
        if job_id not in self.jobs:
            return job_id
        n = 2
        while f"{job_id}#{n}" in self.jobs:
            n += 1
        return f"{job_id}#{n}"

    def add(
        self, key: str, job_id: str, spec: JobSpec, now: float, *, started_by_us: bool = True
    ) -> JobView:
        """Put a job on the board under a fresh ``key`` (see :meth:`unique_key`); its watch
        begins now. ``started_by_us`` counts the POST /start among the job's requests."""
        if key in self.jobs:
            raise ValueError(f"job {key!r} is already on the board")
        view = JobView(
            key=key,
            job_id=job_id,
            spec=spec,
            started_at=now,
            seq=self._next_seq,
            strategy=spec.strategy,
            requests=1 if started_by_us else 0,
            history=deque(maxlen=self.history_length),
        )
        self._next_seq += 1
        self.jobs[key] = view
        self._dirty[key] = None
        self._removed.discard(key)
        if started_by_us:
            self.rate.record(now)
        return view

    def apply(self, key: str, event: PollEvent, now: float) -> bool:
        """Fold one poll event into its job. Returns False when the event no longer applies
        (the job was cleared, or its watch already ended, e.g. cancelled while a poll was
        in flight)."""
        view = self.jobs.get(key)
        if view is None or view.finished:
            return False
        view.attempt = event.attempt
        view.requests += int(event.sent)  # an open circuit answers locally: no request
        view.status = event.status
        view.strategy = event.strategy
        view.reason = event.reason
        view.last_error = event.error
        view.next_delay_s = event.next_delay_s
        view.next_poll_at = None if event.next_delay_s is None else now + event.next_delay_s
        view.history.append(
            PollRecord(
                at_s=now - view.started_at,
                attempt=event.attempt,
                http_status=event.http_status,
                status=event.status,
                next_delay_s=event.next_delay_s,
                reason=event.reason,
                strategy=event.strategy,
                error=event.error,
                eta_s=event.eta_s,
            )
        )
        if event.outcome is not None:
            self._finish(view, event.outcome, now)
        if event.sent:
            self.rate.record(now)
        self._dirty[key] = None
        return True

    def cancel(self, key: str, now: float) -> bool:
        """Mark a live watch cancelled (the caller stops its task). False if already over."""
        view = self.jobs.get(key)
        if view is None or view.finished:
            return False
        self._finish(view, Outcome.CANCELLED, now)
        self._dirty[key] = None
        return True

    def fail(self, key: str, outcome: Outcome, error: str, now: float) -> None:
        """End a watch that stopped without a final event (e.g. the client raised)."""
        view = self.jobs.get(key)
        if view is None or view.finished:
            return
        view.last_error = error
        self._finish(view, outcome, now)
        self._dirty[key] = None

    def record_start_failure(self) -> None:
        self.start_failures += 1

    def remove(self, keys: Iterable[str]) -> list[str]:
        removed = [key for key in keys if self.jobs.pop(key, None) is not None]
        self._removed.update(removed)
        for key in removed:
            self._dirty.pop(key, None)
        return removed

    def clear_finished(self) -> list[str]:
        """Drop every job whose watch has ended; returns their keys."""
        return self.remove([view.key for view in self.jobs.values() if view.finished])

    def counts(self) -> Counter[JobState]:
        return Counter(view.state for view in self.jobs.values())

    def live_keys(self) -> list[str]:
        return [view.key for view in self.jobs.values() if not view.finished]

    def matching(self, state: JobState | None) -> list[str]:
        """Keys a status filter shows, in insertion order."""
        return [view.key for view in self.jobs.values() if state is None or view.state is state]

    def take_changes(self) -> tuple[list[str], set[str]]:
        """Keys changed (oldest change first) and keys removed since the last call."""
        dirty, removed = list(self._dirty), self._removed
        self._dirty, self._removed = {}, set()
        return dirty, removed

    def _finish(self, view: JobView, outcome: Outcome, now: float) -> None:
        view.outcome = outcome
        view.ended_at = now
        view.next_delay_s = None
        view.next_poll_at = None


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    """What the spawn form returns: ``count`` jobs with durations drawn from a range."""

    count: int
    duration_min_s: float | None = None  # None: the server's default delay
    duration_max_s: float | None = None  # None or equal to min: a fixed duration
    outcome: str | None = None
    strategy: Strategy = Strategy.AUTO
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)

    def specs(self, rng: random.Random) -> list[JobSpec]:
        """One spec per job; a range is sampled uniformly (to 0.1 s) per job."""
        return [
            JobSpec(self._duration(rng), self.outcome, self.strategy, self.policy)
            for _ in range(self.count)
        ]

    def _duration(self, rng: random.Random) -> float | None:
        low, high = self.duration_min_s, self.duration_max_s
        if low is None or high is None or high <= low:
            return low
        return round(rng.uniform(low, high), 1)


def parse_duration(text: str) -> tuple[float | None, float | None]:
    """Parse the spawn form's duration: ``""`` (server default), ``"3"`` or ``"1.5-4"``.

    Raises ValueError with a message fit to show under the field.
    """
    text = text.strip()
    if not text:
        return None, None
    low_text, dash, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if dash else low
    except ValueError:
        raise ValueError("duration: a number of seconds, or a range like 1-5") from None
    if low <= 0 or high <= 0:
        raise ValueError("duration: seconds must be greater than 0")
    if high < low:
        raise ValueError("duration: the range must go from low to high, e.g. 1-5")
    return low, high
