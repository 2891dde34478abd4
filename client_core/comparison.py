"""Compare polling set-ups on the same batch of jobs, measured by the server.

Each set-up gets its own copy of one batch (durations and outcomes drawn once from a seeded
RNG), all copies run at the same time, and the numbers come from the server's job records:
how many status requests each job cost, and how late the end was noticed
(``detection_lag_s``, whatever channel brought the end). Those two numbers are what
polling costs. A server that keeps no records (the original simulation has no ``GET
/jobs/{id}``) gets the requests counted on this client, and the lag as a bound: the job
ended between the last pending answer and the first final one (the duration asked for is
no guide: the original ignores it). The dashboard's compare view and ``videosim-client
compare`` both run comparisons through here.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from client_core.client import VideoSimClient
from client_core.errors import ServerUnreachable, VideoSimError
from client_core.events import DelayReason, PollEvent, Strategy, strategies_used_text
from client_core.policy import BackoffPolicy

Now = Callable[[], float]


@dataclass(frozen=True, slots=True)
class PolicyPreset:
    name: str
    strategy: Strategy
    policy: BackoffPolicy
    summary: str


def presets() -> list[PolicyPreset]:
    """The set-ups worth comparing, from the original client's to the best the server
    offers: its pushed states (``batch``, ``stream``) and ``auto``, which picks them."""
    return [
        PolicyPreset(
            "original",
            Strategy.BACKOFF,
            BackoffPolicy.original(),
            "the seed client: 1, 2, 4, 8, 16 s, five polls, no jitter",
        ),
        PolicyPreset(
            "fixed 1s",
            Strategy.BACKOFF,
            BackoffPolicy.fixed(1.0),
            "poll every second: quick to notice, expensive",
        ),
        PolicyPreset(
            "backoff",
            Strategy.BACKOFF,
            BackoffPolicy(),
            "the library's default exponential backoff with jitter",
        ),
        PolicyPreset("hinted", Strategy.HINTED, BackoffPolicy(), "sleep until the server's eta"),
        PolicyPreset(
            "long-poll", Strategy.LONG_POLL, BackoffPolicy(), "the server holds the request"
        ),
        PolicyPreset(
            "batch", Strategy.BATCH, BackoffPolicy(), "one held request asks for every job"
        ),
        PolicyPreset(
            "stream", Strategy.STREAM, BackoffPolicy(), "the server pushes each end (SSE)"
        ),
        PolicyPreset("auto", Strategy.AUTO, BackoffPolicy(), "the best the server offers"),
    ]


def preset_named(name: str) -> PolicyPreset:
    for preset in presets():
        if preset.name == name:
            return preset
    raise KeyError(name)


@dataclass(frozen=True, slots=True)
class BatchJob:
    # fixed so every set-up sees the same batch; None: the server decides (a scenario)
    duration_s: float | None
    outcome: str | None  # "completed" or "error"
    at_s: float = 0.0  # when the job starts, in seconds from the run's start


def draw_batch(count: int, seed: int, low_s: float, high_s: float) -> list[BatchJob]:
    """The batch every set-up runs: same seed, same jobs."""
    rng = random.Random(seed)
    return [
        BatchJob(round(rng.uniform(low_s, high_s), 1), rng.choice(("completed", "error")))
        for _ in range(count)
    ]


#: Where a run's numbers came from: the server's job records, or this client's own clock
#: (a server without ``GET /jobs/{id}``, such as the original simulation).
SERVER_RECORDS = "server"
CLIENT_CLOCK = "client"

#: Answers to ``GET /jobs/{id}`` that mean "this server keeps no records": measure here.
NO_RECORDS_STATUSES = frozenset({404, 405, 501})
#: How long the records are asked for while the server does not answer.
RECORDS_DEADLINE_S = 120.0


@dataclass(slots=True)
class PolicyRun:
    """One set-up's results, from the server's records of its jobs (or the client's clock)."""

    name: str
    strategy: str
    status_requests: list[int] = field(default_factory=list)  # per job
    lags: list[float] = field(default_factory=list)  # detection_lag_s, jobs whose end was seen
    request_times: list[float] = field(default_factory=list)  # s since the batch was created
    outcomes: dict[str, int] = field(default_factory=dict)  # how many watches ended how
    measured_by: str = SERVER_RECORDS
    # The strategy that ended each watch (a fallback shows here): watches per strategy.
    used: dict[str, int] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)  # in start order
    ends: list[float] = field(default_factory=list)  # each lag's job's finish, s from start
    refused: dict[int, int] = field(default_factory=dict)  # 429/503/... answers received
    advised_pause_s: float = 0.0  # time spent in waits the server advised (Retry-After)
    no_answers: int = 0  # requests that got no answer (refused, reset, timed out)

    @property
    def lag_is_bound(self) -> bool:
        """Lags are upper bounds (no server record says when the jobs ended)."""
        return self.measured_by == CLIENT_CLOCK

    @property
    def used_label(self) -> str:
        """What the watches actually did: ``stream``, or ``backoff 7, stream 3`` if mixed."""
        if not self.used:
            return self.strategy
        if len(self.used) == 1:
            return next(iter(self.used))
        return strategies_used_text(self.used)

    @property
    def fell_back(self) -> bool:
        """Asked for help from the server (hints, long-poll, push) and polled blind."""
        return self.strategy != "backoff" and set(self.used) == {"backoff"}

    @property
    def jobs(self) -> int:
        return len(self.status_requests)

    @property
    def requests_per_job(self) -> float:
        return statistics.fmean(self.status_requests) if self.status_requests else 0.0

    @property
    def mean_lag(self) -> float | None:
        return statistics.fmean(self.lags) if self.lags else None

    @property
    def max_lag(self) -> float | None:
        return max(self.lags) if self.lags else None

    @property
    def missed(self) -> int:
        """Watches that gave up before seeing the end (timed out, unreachable...)."""
        return sum(
            n for outcome, n in self.outcomes.items() if outcome not in ("completed", "error")
        )

    def cumulative_requests(self) -> tuple[list[float], list[int]]:
        """(time, requests so far) points for the chart."""
        times = sorted(self.request_times)
        return times, list(range(1, len(times) + 1))


ProgressCallback = Callable[[int], None]


@dataclass(slots=True)
class WatchedJob:
    """One job of a run as this client saw it: the fallback when the server keeps no records."""

    job_id: str
    duration_s: float | None
    started_at: float  # the client's clock when POST /start answered
    outcome: str = ""
    ended_by: str = ""  # the strategy that timed the watch's last poll (or got the push)
    request_times: list[float] = field(default_factory=list)  # client clock, requests sent
    last_pending_at: float | None = None  # client clock, the last answer that said pending
    end_seen_at: float | None = None  # client clock, the answer that saw completed/error

    @property
    def lag_bound(self) -> float | None:
        """At most this late: the job ended after the last pending answer was given (the
        start's answer if none came). Not the duration asked for: a server may ignore it."""
        if self.end_seen_at is None:
            return None
        since = self.started_at if self.last_pending_at is None else self.last_pending_at
        return max(0.0, self.end_seen_at - since)


async def run_preset(
    client: VideoSimClient,
    preset: PolicyPreset,
    batch: Sequence[BatchJob],
    on_watch_done: ProgressCallback,
    clock: Now = time.monotonic,
) -> PolicyRun:
    """Start the batch, watch every job with ``preset``, then read the server's records.

    Task groups throughout: the first failure cancels every sibling start and watch, so a
    failed run leaves nothing polling behind it."""

    began = clock()
    refused_before = Counter(client.stats.refusals)
    start_pauses_before = client.stats.start_pauses_s
    failures_before = client.stats.transport_failures
    advised = 0.0

    async def start(job: BatchJob) -> WatchedJob:
        if job.at_s > 0:
            await asyncio.sleep(max(0.0, began + job.at_s - clock()))
        job_id = await client.start(duration_s=job.duration_s, outcome=job.outcome)
        return WatchedJob(job_id, job.duration_s, clock())

    async def watch(job: WatchedJob) -> None:
        def seen(event: PollEvent) -> None:
            nonlocal advised
            now = clock()
            if event.sent:
                job.request_times.append(now)
            if event.reason is DelayReason.RETRY_AFTER and event.next_delay_s is not None:
                advised += event.next_delay_s
            if event.status == "pending":
                job.last_pending_at = now
            elif event.status in ("completed", "error") and job.end_seen_at is None:
                job.end_seen_at = now
            if event.final:
                job.ended_by = str(event.strategy)

        result = await client.wait(
            job.job_id, policy=preset.policy, strategy=preset.strategy, on_event=seen
        )
        job.outcome = str(result.outcome)
        on_watch_done(1)

    async with asyncio.TaskGroup() as group:
        started = [group.create_task(start(job)) for job in batch]
    jobs = [task.result() for task in started]
    async with asyncio.TaskGroup() as group:
        for job in jobs:
            group.create_task(watch(job))
    records = await read_records(client, [job.job_id for job in jobs])
    run = PolicyRun(
        preset.name,
        str(preset.strategy),
        outcomes=dict(Counter(job.outcome for job in jobs)),
        used=dict(Counter(job.ended_by for job in jobs if job.ended_by)),
        job_ids=[job.job_id for job in jobs],
        refused=dict(client.stats.refusals - refused_before),
        advised_pause_s=round(advised + client.stats.start_pauses_s - start_pauses_before, 3),
        no_answers=client.stats.transport_failures - failures_before,
    )
    if records is None:
        run.measured_by = CLIENT_CLOCK
        batch_start = min((job.started_at for job in jobs), default=0.0)
        for job in jobs:
            run.status_requests.append(len(job.request_times))
            if (bound := job.lag_bound) is not None:
                run.lags.append(bound)
            run.request_times.extend(at - batch_start for at in job.request_times)
        return run
    batch_start = min(record["created_at"] for record in records)
    for record in records:
        run.status_requests.append(int(record["status_requests"]))
        if (lag := record.get("detection_lag_s")) is not None:
            run.lags.append(float(lag))
            run.ends.append(float(record["finishes_at"]) - batch_start)
        run.request_times.extend(r["at"] - batch_start for r in record.get("requests", []))
    return run


async def read_records(
    client: VideoSimClient, job_ids: Sequence[str]
) -> list[dict[str, Any]] | None:
    """The server's record of each job; None when the server keeps no records at all."""
    if not job_ids:
        return []
    try:
        first = await record_when_answered(client, job_ids[0])
    except VideoSimError as exc:
        if exc.http_status in NO_RECORDS_STATUSES:
            return None
        raise
    async with asyncio.TaskGroup() as group:
        rest = [group.create_task(record_when_answered(client, job_id)) for job_id in job_ids[1:]]
    return [first, *(task.result() for task in rest)]


async def record_when_answered(
    client: VideoSimClient, job_id: str, deadline_s: float = RECORDS_DEADLINE_S
) -> dict[str, Any]:
    """A job's record, asked again while the server does not answer (a set-up whose
    watches gave up early reads its records while an outage still goes on)."""
    give_up_at = time.monotonic() + deadline_s
    wait = 0.25
    while True:
        try:
            return await client.job_record(job_id)
        except ServerUnreachable:
            if time.monotonic() + wait > give_up_at:
                raise
            await asyncio.sleep(wait)
            wait = min(2 * wait, 2.0)


async def run_comparison(
    make_client: Callable[[], VideoSimClient],
    presets: Sequence[PolicyPreset],
    batch: Sequence[BatchJob],
    on_watch_done: ProgressCallback,
    clock: Now = time.monotonic,
) -> list[PolicyRun]:
    """Every preset on its own copy of ``batch`` and its own client (a client's event
    stream carries every job it started, so set-ups sharing one would see each other's
    pushes), all at the same time; the first failure cancels the other set-ups and is
    raised (see :func:`first_error`)."""

    async def run_one(preset: PolicyPreset) -> PolicyRun:
        async with make_client() as client:
            return await run_preset(client, preset, batch, on_watch_done, clock)

    async with asyncio.TaskGroup() as group:
        runs = [group.create_task(run_one(preset)) for preset in presets]
    return [task.result() for task in runs]


def first_error(error: BaseException) -> BaseException:
    """The first real failure inside the task groups' nesting of exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def takeaway(runs: Sequence[PolicyRun]) -> str:
    """What the figures say, derived from them alone: the cheapest and the costliest
    set-up, the slowest, who gave up, and whether the server's help (hints, long-poll,
    pushes) was there to be had at all."""
    measured = [run for run in runs if run.jobs]
    if len(measured) < 2:
        return "Run at least two set-ups to compare what polling costs."
    best = min(measured, key=lambda run: (run.requests_per_job, _lag_or_inf(run)))
    costliest = max(measured, key=lambda run: run.requests_per_job)
    slowest = max(measured, key=lambda run: run.mean_lag or 0.0)
    late = "at most " if slowest.lag_is_bound else ""
    sentences = [
        f"{costliest.name} paid {costliest.requests_per_job:.1f} requests per job and "
        f"{slowest.name} noticed the end {late}{_seconds(slowest.mean_lag)} late on average; "
        f"{best.name} needed {best.requests_per_job:.1f} and was "
        f"{late if best.lag_is_bound else ''}{_seconds(best.mean_lag)} late"
    ]
    missed = [run for run in measured if run.missed]
    if missed:
        sentences[0] += (
            " (" + ", ".join(f"{run.name} gave up on {run.missed}" for run in missed) + ")"
        )
    helped = [run for run in measured if set(run.used) - {"backoff"}]
    fell_back = [run for run in measured if run.fell_back]
    blind = [run for run in measured if set(run.used) <= {"backoff"}]
    if not helped:
        if fell_back:
            sentences.append(
                "The server offered no help: "
                + ", ".join(run.name for run in fell_back)
                + " fell back to the backoff schedule"
            )
        else:
            sentences.append("Every set-up polled on its own schedule")
    elif blind:
        cheapest_helped = min(helped, key=lambda run: run.requests_per_job)
        cheapest_blind = min(blind, key=lambda run: run.requests_per_job)
        if cheapest_helped.requests_per_job < cheapest_blind.requests_per_job:
            sentences.append(
                f"With the server's help ({cheapest_helped.used_label}) "
                f"{cheapest_helped.name} needed {cheapest_helped.requests_per_job:.1f} "
                f"requests per job where blind polling needed at least "
                f"{cheapest_blind.requests_per_job:.1f}"
            )
        else:
            sentences.append(
                f"The server's help did not cut requests here: {cheapest_blind.name} "
                f"polled blind for {cheapest_blind.requests_per_job:.1f} per job"
            )
    return ". ".join(sentences) + "."


def _lag_or_inf(run: PolicyRun) -> float:
    return run.mean_lag if run.mean_lag is not None else float("inf")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
