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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from client_core import BackoffPolicy, DelayReason, Outcome, PollEvent, Strategy

# The dashboard's idea of "now": time.monotonic, or a test's fake. (client_core's Clock
# also sleeps; the dashboard only reads the time.)
Now: TypeAlias = Callable[[], float]

HISTORY_LENGTH = 200

_T = TypeVar("_T")


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
class WatchedJob:
    """Everything the dashboard knows about one watched job."""

    key: str  # unique row key: the job id, or job id + "#n" when the same job is watched again
    job_id: str
    spec: JobSpec
    started_at: float
    seq: int  # insertion order, the default sort and the tie-breaker
    status: str = "pending"  # what the server said last; "" when the last poll got no answer
    attempt: int = 0  # status requests sent for this job (polls that went out)
    skipped: int = 0  # polls answered locally while the circuit was open (never sent)
    requests: int = 0  # HTTP requests the dashboard sent for this job, POST /start included
    http_status: int | None = None  # the last poll's HTTP code; None: no answer
    strategy: Strategy = Strategy.AUTO  # the strategy actually in use
    next_delay_s: float | None = None
    next_poll_at: float | None = None
    reason: DelayReason | None = None
    outcome: Outcome | None = None
    ended_at: float | None = None
    last_error: str | None = None
    progress: float | None = None  # the server's hint, 0..1, from the last poll that had one
    history: deque[PollRecord] = field(default_factory=lambda: deque(maxlen=HISTORY_LENGTH))
    history_count: int = 0  # records ever appended (the deque keeps only the newest)

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
    HTTP = "http"
    ATTEMPT = "attempt"
    SKIPPED = "skipped"
    NEXT = "next"
    STRATEGY = "strategy"
    ELAPSED = "elapsed"
    REQUESTS = "requests"
    OUTCOME = "outcome"
    PROGRESS = "progress"
    ERROR = "error"  # the last error's text

    @property
    def time_dependent(self) -> bool:
        """True when the order can change with the clock alone, without any new event."""
        return self in (SortColumn.NEXT, SortColumn.ELAPSED)


_NEVER = float("inf")


def sort_key(view: WatchedJob, column: SortColumn, now: float) -> tuple[Any, int]:
    """Key for ordering rows by ``column``; ties keep insertion order, so sorting is stable."""
    value: Any
    match column:
        case SortColumn.ADDED:
            value = 0
        case SortColumn.JOB:
            value = view.job_id
        case SortColumn.STATUS:
            value = view.status
        case SortColumn.HTTP:
            value = view.http_status or 0
        case SortColumn.ATTEMPT:
            value = view.attempt
        case SortColumn.SKIPPED:
            value = view.skipped
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
        case SortColumn.PROGRESS:
            value = progress_of(view)
            value = -1.0 if value is None else value
        case SortColumn.ERROR:
            value = view.last_error or ""
    return value, view.seq


def requests_of(event: PollEvent) -> int:
    """Status requests an event stands for: one per poll sent; for a pushed state, the batch
    requests that named the job before its end came (``attempt``), none for a state pushed
    over the event stream (``sent`` False)."""
    if event.reason is DelayReason.PUSHED:
        return event.attempt if event.sent else 0
    return int(event.sent)


def progress_of(view: WatchedJob) -> float | None:
    """How far the job is, 0..1: the server's hint while it runs, 1 once completed, None
    when unknown or when it ended any other way (a failed job's last bar would read as
    work still under way)."""
    if view.outcome is Outcome.COMPLETED:
        return 1.0
    if view.outcome is not None:
        return None
    return view.progress


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
        self.jobs: dict[str, WatchedJob] = {}
        self.rate = RequestRate()
        self.start_failures = 0  # POST /start requests that failed for good
        self.starting = 0  # start requests sent to the engine and not answered yet
        self.rate_limited = 0  # status answers 429 (Retry-After): the server throttles us
        self.unavailable = 0  # status answers 503 (Retry-After): the server is overloaded
        # Keys changed since the view last looked, in the order they first changed (a dict
        # as an ordered set), so new rows are added in the order the jobs started.
        self._dirty: dict[str, None] = {}
        self._removed: set[str] = set()
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self.jobs)

    def __contains__(self, key: object) -> bool:
        return key in self.jobs

    def __getitem__(self, key: str) -> WatchedJob:
        return self.jobs[key]

    def __iter__(self) -> Iterator[WatchedJob]:
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
    ) -> WatchedJob:
        """Put a job on the board under a fresh ``key`` (see :meth:`unique_key`); its watch
        begins now. ``started_by_us`` counts the POST /start among the job's requests."""
        if key in self.jobs:
            raise ValueError(f"job {key!r} is already on the board")
        view = WatchedJob(
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
        requests = requests_of(event)
        view.attempt += requests
        # an open circuit answers locally: no request; a pushed state is no skipped poll
        view.skipped += int(not event.sent and event.reason is not DelayReason.PUSHED)
        view.requests += requests
        view.http_status = event.http_status
        self.rate_limited += event.http_status == 429
        self.unavailable += event.http_status == 503
        view.status = event.status
        view.strategy = event.strategy
        view.reason = event.reason
        view.last_error = event.error
        view.next_delay_s = event.next_delay_s
        if event.progress is not None:
            view.progress = event.progress
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
        view.history_count += 1
        if event.outcome is not None:
            self._finish(view, event.outcome, now)
        if requests:
            self.rate.record(now, requests)
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

    def record_start_failure(self, spec: JobSpec, error: str, now: float) -> str:
        """A job that could not be started gets a row of its own (its reason in the
        outcome's place) so it can be retried; returns its key."""
        self.start_failures += 1
        key = self.unique_key(NOT_STARTED)
        self.add(key, "", spec, now)
        view = self.jobs[key]
        view.status = "not started"
        self.fail(key, Outcome.REJECTED, error, now)
        return key

    def fold(self, items: Iterable[PoolItem]) -> None:
        """Fold what the watch pool reported, in order (the engine does this with every
        batch; tests and benchmarks feed the dashboard's own board the same way)."""
        for item in items:
            match item:
                case WatchEvent(key=key, event=event, at=at):
                    self.apply(key, event, at)
                case JobStarted(key=key, job_id=job_id, spec=spec, at=at):
                    if key not in self.jobs:
                        self.add(key, job_id, spec, at)
                case StartFailed(spec=spec, error=error, at=at):
                    self.record_start_failure(spec, error, at)
                case WatchCrashed(key=key, error=error, at=at):
                    self.fail(key, Outcome.UNREACHABLE, error, at)

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
        return [view.key for view in self.jobs.values() if matches(view, state)]

    def touch(self, key: str) -> None:
        """Mark a row changed (for code that sets a view's fields directly)."""
        self._dirty[key] = None

    def take_changes(self) -> tuple[list[str], set[str]]:
        """Keys changed (oldest change first) and keys removed since the last call."""
        dirty, removed = list(self._dirty), self._removed
        self._dirty, self._removed = {}, set()
        return dirty, removed

    def _finish(self, view: WatchedJob, outcome: Outcome, now: float) -> None:
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


def matches(view: WatchedJob, state: JobState | None) -> bool:
    """Whether the status filter ``state`` shows this row. ``pending`` shows what the
    Status column says is pending, so a cancelled watch of a pending job shows under both
    ``pending`` and ``cancelled``."""
    if state is None:
        return True
    if state is JobState.PENDING:
        return view.status == "pending" or not view.finished
    return view.state is state


def matches_text(view: WatchedJob, needle: str) -> bool:
    """Whether the search ``needle`` (lower case) is in the row: the job id (so a prefix
    finds a job), the status, the outcome or the last error."""
    if not needle:
        return True
    return any(
        needle in text.lower()
        for text in (view.key, view.status, view.outcome or "", view.last_error or "")
    )


NOT_STARTED = "not-started"  # row key prefix of a job whose POST /start failed for good


# -- what the watch pool reports (folded into a board by JobBoard.fold) ----------------------


@dataclass(frozen=True, slots=True)
class JobStarted:
    """POST /start answered: the job exists and its watch has begun under ``key``."""

    key: str
    job_id: str
    spec: JobSpec
    at: float


@dataclass(frozen=True, slots=True)
class StartFailed:
    """A start that still failed when its deadline ran out (the reason in one line)."""

    spec: JobSpec
    error: str
    at: float


@dataclass(frozen=True, slots=True)
class WatchEvent:
    key: str
    event: PollEvent
    at: float


@dataclass(frozen=True, slots=True)
class WatchCrashed:
    """A watch raised instead of ending with an outcome; the job is marked failed."""

    key: str
    error: str
    at: float


PoolItem: TypeAlias = JobStarted | StartFailed | WatchEvent | WatchCrashed


@dataclass(frozen=True, slots=True)
class PoolBatch:
    """Everything that happened since the previous batch, in arrival order."""

    items: list[PoolItem] = field(default_factory=list)
    starting: int = 0  # start requests still queued or in flight


# -- one row on the wire: the engine process sends a row's changed fields ----------------------


class RowValues(NamedTuple):
    """A row's fields as the engine last sent them (to tell what changed since)."""

    job_id: str
    spec: JobSpec
    started_at: float
    status: str
    attempt: int
    skipped: int
    requests: int
    http_status: int | None
    strategy: Strategy
    next_delay_s: float | None
    next_poll_at: float | None
    reason: DelayReason | None
    outcome: Outcome | None
    ended_at: float | None
    last_error: str | None
    progress: float | None


def row_values(view: WatchedJob) -> RowValues:
    return RowValues(
        view.job_id,
        view.spec,
        view.started_at,
        view.status,
        view.attempt,
        view.skipped,
        view.requests,
        view.http_status,
        view.strategy,
        view.next_delay_s,
        view.next_poll_at,
        view.reason,
        view.outcome,
        view.ended_at,
        view.last_error,
        view.progress,
    )


class RowUpdate(msgspec.Struct, omit_defaults=True):
    """One row as the engine sends it: whole the first time, then only the fields that
    changed (UNSET: unchanged, and not on the wire): :class:`RowValues`' fields."""

    job_id: str | UnsetType = UNSET
    spec: JobSpec | UnsetType = UNSET
    started_at: float | UnsetType = UNSET
    status: str | UnsetType = UNSET
    attempt: int | UnsetType = UNSET
    skipped: int | UnsetType = UNSET
    requests: int | UnsetType = UNSET
    http_status: int | UnsetType | None = UNSET
    strategy: Strategy | UnsetType = UNSET
    next_delay_s: float | UnsetType | None = UNSET
    next_poll_at: float | UnsetType | None = UNSET
    reason: DelayReason | UnsetType | None = UNSET
    outcome: Outcome | UnsetType | None = UNSET
    ended_at: float | UnsetType | None = UNSET
    last_error: str | UnsetType | None = UNSET
    progress: float | UnsetType | None = UNSET


def row_update(now: RowValues, sent: RowValues | None) -> RowUpdate | None:
    """What to send of a row whose fields are ``now`` when ``sent`` went last (None: the
    dashboard has none of it): every field, the changed ones, or None when none changed.
    A row's job id, spec and start never change once sent."""
    if sent is None:
        return RowUpdate(
            job_id=now.job_id,
            spec=now.spec,
            started_at=now.started_at,
            status=now.status,
            attempt=now.attempt,
            skipped=now.skipped,
            requests=now.requests,
            http_status=now.http_status,
            strategy=now.strategy,
            next_delay_s=now.next_delay_s,
            next_poll_at=now.next_poll_at,
            reason=now.reason,
            outcome=now.outcome,
            ended_at=now.ended_at,
            last_error=now.last_error,
            progress=now.progress,
        )
    if now == sent:
        return None
    return RowUpdate(
        status=_changed(now.status, sent.status),
        attempt=_changed(now.attempt, sent.attempt),
        skipped=_changed(now.skipped, sent.skipped),
        requests=_changed(now.requests, sent.requests),
        http_status=_changed(now.http_status, sent.http_status),
        strategy=_changed(now.strategy, sent.strategy),
        next_delay_s=_changed(now.next_delay_s, sent.next_delay_s),
        next_poll_at=_changed(now.next_poll_at, sent.next_poll_at),
        reason=_changed(now.reason, sent.reason),
        outcome=_changed(now.outcome, sent.outcome),
        ended_at=_changed(now.ended_at, sent.ended_at),
        last_error=_changed(now.last_error, sent.last_error),
        progress=_changed(now.progress, sent.progress),
    )


def _changed(new: _T, old: _T) -> _T | UnsetType:
    return UNSET if new == old else new


def merge_row(board: JobBoard, key: str, update: RowUpdate, now: float) -> None:
    """Apply one row update from the engine: add the row if it is new, else set the
    fields that changed. A row the dashboard already ended (e.g. cancelled here) keeps
    its end."""
    view = board.jobs.get(key)
    if view is None:
        spec = update.spec if not isinstance(update.spec, UnsetType) else JobSpec()
        started_at = update.started_at if not isinstance(update.started_at, UnsetType) else now
        job_id = update.job_id if not isinstance(update.job_id, UnsetType) else ""
        view = board.add(key, job_id, spec, started_at, started_by_us=False)
    elif view.finished:
        return
    sent_before = view.requests
    if not isinstance(update.status, UnsetType):
        view.status = update.status
    if not isinstance(update.attempt, UnsetType):
        view.attempt = update.attempt
    if not isinstance(update.skipped, UnsetType):
        view.skipped = update.skipped
    if not isinstance(update.requests, UnsetType):
        view.requests = update.requests
    if not isinstance(update.http_status, UnsetType):
        view.http_status = update.http_status
    if not isinstance(update.strategy, UnsetType):
        view.strategy = update.strategy
    if not isinstance(update.next_delay_s, UnsetType):
        view.next_delay_s = update.next_delay_s
    if not isinstance(update.next_poll_at, UnsetType):
        view.next_poll_at = update.next_poll_at
    if not isinstance(update.reason, UnsetType):
        view.reason = update.reason
    if not isinstance(update.outcome, UnsetType):
        view.outcome = update.outcome
    if not isinstance(update.ended_at, UnsetType):
        view.ended_at = update.ended_at
    if not isinstance(update.last_error, UnsetType):
        view.last_error = update.last_error
    if not isinstance(update.progress, UnsetType):
        view.progress = update.progress
    if view.requests > sent_before:
        board.rate.record(now, view.requests - sent_before)
    board.touch(key)
