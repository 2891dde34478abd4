"""Requests per job and detection lag per strategy, in real time: N jobs of D seconds.

Unlike the poll-efficiency section (many workloads, time scaled down), this runs real
durations (default 200 jobs of 2 s) so the figures are the ones a user of the library
sees against this server. For each configuration: one fresh client starts every job at
once and watches it to the end; then the server's own records (``GET /jobs``) give the
status requests it received per job and its detection lag (first request that saw the
final state minus the finish time).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.report import Column, SectionResult, Table
from bench.server_process import ServerProcess
from client_core import BackoffPolicy, Outcome, Strategy, VideoSimClient, WatchResult
from client_core.comparison_report import percentile


@dataclass(frozen=True, slots=True)
class Configuration:
    name: str
    strategy: Strategy
    policy: BackoffPolicy
    max_in_flight: int = 64  # the client's default


CONFIGURATIONS = (
    Configuration("original 1,2,4,8,16 preset", Strategy.BACKOFF, BackoffPolicy.original()),
    Configuration("fixed 1 s", Strategy.BACKOFF, BackoffPolicy.fixed(1.0)),
    Configuration("backoff (default policy)", Strategy.BACKOFF, BackoffPolicy()),
    Configuration("hinted", Strategy.HINTED, BackoffPolicy()),
    Configuration("long-poll", Strategy.LONG_POLL, BackoffPolicy()),
    Configuration("long-poll, 400 in flight", Strategy.LONG_POLL, BackoffPolicy(), 400),
    Configuration("auto", Strategy.AUTO, BackoffPolicy()),
    Configuration("auto + original preset", Strategy.AUTO, BackoffPolicy.original()),
)
FULL_JOBS, QUICK_JOBS = 200, 20
DURATION_S = 2.0


async def measure(url: str, configuration: Configuration, jobs: int) -> dict[str, Any]:
    async with VideoSimClient(url, max_in_flight=configuration.max_in_flight) as client:

        async def start_and_watch() -> tuple[str, WatchResult]:
            job_id = await client.start(DURATION_S, "completed")
            policy, strategy = configuration.policy, configuration.strategy
            return job_id, await client.wait(job_id, policy, strategy)

        began = time.perf_counter()
        watched = await asyncio.gather(*(start_and_watch() for _ in range(jobs)))
        wall_s = time.perf_counter() - began
    records = await job_records(url, [job_id for job_id, _ in watched])
    requests = [record["status_requests"] for record in records]
    lags = [record["detection_lag_s"] for record in records if record["detection_lag_s"]]
    resolved = sum(result.outcome is Outcome.COMPLETED for _, result in watched)
    return {
        "configuration": configuration.name,
        "requests_mean": sum(requests) / len(requests),
        "requests_max": max(requests),
        "lag_mean_s": sum(lags) / len(lags) if lags else None,
        "lag_p95_s": percentile(lags, 95),
        "lag_max_s": max(lags, default=None),
        "unresolved": jobs - resolved,
        "wall_s": wall_s,
    }


async def job_records(url: str, job_ids: list[str]) -> list[dict[str, Any]]:
    """The server's records of these jobs, paged through ``GET /jobs`` (no request logs)."""
    wanted = set(job_ids)
    found: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        offset = 0
        while True:
            page = (await http.get("/jobs", params={"offset": offset, "limit": 1000})).json()
            found.update({r["job_id"]: r for r in page["jobs"] if r["job_id"] in wanted})
            offset += len(page["jobs"])
            if offset >= page["total"] or not page["jobs"]:
                return [found[job_id] for job_id in job_ids]


def run(quick: bool = False) -> SectionResult:
    jobs = QUICK_JOBS if quick else FULL_JOBS
    table = Table(
        f"{jobs} jobs of {DURATION_S:g} s each, started at once, one client per row",
        [
            Column("configuration", "configuration"),
            Column("requests_mean", "status req/job", "{:.2f}"),
            Column("requests_max", "max", "{:d}"),
            Column("lag_mean_s", "lag mean s", "{:.3f}"),
            Column("lag_p95_s", "lag p95 s", "{:.3f}"),
            Column("lag_max_s", "lag max s", "{:.3f}"),
            Column("unresolved", "unresolved", "{:d}"),
            Column("wall_s", "wall s", "{:.1f}"),
        ],
        caption="requests and lag from the server's own job records (GET /jobs)",
    )
    with ServerProcess.videosim("--delay", str(DURATION_S)) as server:
        for configuration in CONFIGURATIONS:
            table.rows.append(asyncio.run(measure(server.url, configuration, jobs)))
    return SectionResult(
        name="strategies",
        title="Strategies in real time: status requests per job and detection lag",
        tables=[table],
        parameters={"jobs": jobs, "duration_s": DURATION_S},
        notes=[
            "the server serves the burst of first polls in a few hundred ms on 2 cores, "
            "so part of every lag here is queueing, the same for every row"
        ],
    )
