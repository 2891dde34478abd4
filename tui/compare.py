"""Compare polling set-ups on the same batch of jobs, measured by the server.

Each set-up gets its own copy of one batch (durations and outcomes drawn once from a seeded
RNG), all copies run at the same time, and the numbers come from the server's job records:
how many status requests each job cost, and how late the end was noticed
(``detection_lag_s``). Those two numbers are what polling costs. No Textual here.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from client_core import VideoSimClient
from tui.policies import PolicyPreset


@dataclass(frozen=True, slots=True)
class BatchJob:
    duration_s: float
    outcome: str  # "completed" or "error", fixed so every set-up sees the same batch


def draw_batch(count: int, seed: int, low_s: float, high_s: float) -> list[BatchJob]:
    """The batch every set-up runs: same seed, same jobs."""
    rng = random.Random(seed)
    return [
        BatchJob(round(rng.uniform(low_s, high_s), 1), rng.choice(("completed", "error")))
        for _ in range(count)
    ]


@dataclass(slots=True)
class PolicyRun:
    """One set-up's results, from the server's records of its jobs."""

    name: str
    strategy: str
    status_requests: list[int] = field(default_factory=list)  # per job
    lags: list[float] = field(default_factory=list)  # detection_lag_s, jobs whose end was seen
    request_times: list[float] = field(default_factory=list)  # s since the batch was created
    outcomes: Counter[str] = field(default_factory=Counter)  # how each watch ended

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


async def run_preset(
    client: VideoSimClient,
    preset: PolicyPreset,
    batch: Sequence[BatchJob],
    on_watch_done: ProgressCallback,
) -> PolicyRun:
    """Start the batch, watch every job with ``preset``, then read the server's records."""
    job_ids = await asyncio.gather(
        *(client.start(duration_s=job.duration_s, outcome=job.outcome) for job in batch)
    )

    async def watch(job_id: str) -> str:
        result = await client.wait(job_id, policy=preset.policy, strategy=preset.strategy)
        on_watch_done(1)
        return str(result.outcome)

    outcomes = await asyncio.gather(*(watch(job_id) for job_id in job_ids))
    records = await asyncio.gather(*(client.job_record(job_id) for job_id in job_ids))
    run = PolicyRun(preset.name, str(preset.strategy), outcomes=Counter(outcomes))
    batch_start = min(record["created_at"] for record in records)
    for record in records:
        run.status_requests.append(int(record["status_requests"]))
        if record.get("detection_lag_s") is not None:
            run.lags.append(float(record["detection_lag_s"]))
        run.request_times.extend(r["at"] - batch_start for r in record.get("requests", []))
    return run


async def run_comparison(
    client: VideoSimClient,
    presets: Sequence[PolicyPreset],
    batch: Sequence[BatchJob],
    on_watch_done: ProgressCallback,
) -> list[PolicyRun]:
    """Every preset on its own copy of ``batch``, all at the same time."""
    return list(
        await asyncio.gather(*(run_preset(client, p, batch, on_watch_done) for p in presets))
    )


def takeaway(runs: Sequence[PolicyRun]) -> str:
    """One line on what polling cost: the costliest and slowest set-ups against the best."""
    measured = [run for run in runs if run.jobs]
    if len(measured) < 2:
        return "Run at least two set-ups to compare what polling costs."
    best = min(measured, key=lambda run: (run.requests_per_job, _lag_or_inf(run)))
    costliest = max(measured, key=lambda run: run.requests_per_job)
    slowest = max(measured, key=lambda run: run.mean_lag or 0.0)
    line = (
        f"{costliest.name} paid {costliest.requests_per_job:.1f} requests per job and "
        f"{slowest.name} noticed the end {_seconds(slowest.mean_lag)} late on average; "
        f"{best.name} needed {best.requests_per_job:.1f} requests and was "
        f"{_seconds(best.mean_lag)} late"
    )
    missed = [run for run in measured if run.missed]
    if missed:
        line += " (" + ", ".join(f"{run.name} gave up on {run.missed}" for run in missed) + ")"
    return line + ". Blind polling trades requests for lag; hints and long-poll cut both."


def _lag_or_inf(run: PolicyRun) -> float:
    return run.mean_lag if run.mean_lag is not None else float("inf")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
