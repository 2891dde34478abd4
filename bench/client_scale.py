"""Client scale: one VideoSimClient process starting and watching thousands of jobs at once.

The parent starts the real server; a child process (``python -m bench.client_scale
URL --jobs N``) does nothing but start N jobs (durations 2-5 s, seeded, 20 % errors) and
watch all of them concurrently to the end with the default policy and strategy (auto),
then prints one JSON line. Its CPU time is read by the child itself with psutil around
exactly that work, so interpreter start-up and imports are not counted.

Two sizes run side by side (a few hundred jobs, then ten thousand), so the figure that
matters is a ratio: does the CPU cost per request stay flat as N grows? The server's own
records (``GET /jobs``) give requests per job and detection lag as the server saw them.

Every job is started and watched at once, as ``asyncio.gather`` over N jobs would do.
The client admits requests first come, first served (``max_in_flight``), so with
thousands of jobs the first status polls wait behind the remaining starts; once the
client is CPU-bound, detection lag measures its request throughput, not its policy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import psutil

from bench.report import Column, SectionResult, Table, percentile, ratio
from bench.server_process import ROOT, ServerProcess, child_environment
from client_core import Outcome, VideoSimClient, VideoSimError

ERROR_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class ScaleSizes:
    jobs: tuple[int, ...]  # one child run per size, smallest first
    durations_s: tuple[float, float]  # job durations drawn uniformly from this range
    time_cap_s: float  # per run


FULL = ScaleSizes(jobs=(300, 10_000), durations_s=(2.0, 5.0), time_cap_s=150.0)
QUICK = ScaleSizes(jobs=(30, 300), durations_s=(0.5, 1.0), time_cap_s=60.0)


# --- the child: one client, N jobs ----------------------------------------------------------


async def start_and_watch_all(
    base_url: str, jobs: int, durations_s: tuple[float, float], seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    plan = [(rng.uniform(*durations_s), rng.random() < ERROR_SHARE) for _ in range(jobs)]
    me = psutil.Process()
    cpu_before = me.cpu_times()
    began = time.perf_counter()
    async with VideoSimClient(base_url) as client:

        async def one(duration_s: float, fails: bool) -> tuple[str, str]:
            fate = "error" if fails else "completed"
            try:
                job_id = await client.start(round(duration_s, 3), fate)
            except VideoSimError as error:
                return "", f"start failed: {error}"
            result = await client.wait(job_id)
            ok = result.outcome in (Outcome.COMPLETED, Outcome.ERROR)
            return job_id, "ok" if ok and result.outcome.value == fate else str(result.outcome)

        finished = await asyncio.gather(*(one(duration, fails) for duration, fails in plan))
        stats = asdict(client.stats)
    wall = time.perf_counter() - began
    cpu_after = me.cpu_times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    problems = Counter(verdict for _, verdict in finished if verdict != "ok")
    return {
        "jobs": jobs,
        "wall_s": wall,
        "cpu_s": cpu,
        "failures": sum(problems.values()),
        "failure_kinds": dict(problems),
        "client_stats": stats,
        "peak_rss_mib": me.memory_info().rss / 2**20,
        "job_ids": [job_id for job_id, _ in finished if job_id],
    }


def child_main() -> None:
    parser = argparse.ArgumentParser(description="start and watch N jobs; print JSON")
    parser.add_argument("url")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--durations", type=float, nargs=2, default=(2.0, 5.0))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    measured = asyncio.run(start_and_watch_all(args.url, args.jobs, args.durations, args.seed))
    print(json.dumps(measured))


# --- the parent ---------------------------------------------------------------------------------


def run_child(base_url: str, jobs: int, sizes: ScaleSizes) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.client_scale", base_url, "--jobs", str(jobs)]
    command += ["--durations", *(str(seconds) for seconds in sizes.durations_s)]
    output = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        timeout=sizes.time_cap_s,
        cwd=ROOT,
        env=child_environment(),
    ).stdout
    measured: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return measured


def server_view(base_url: str, job_ids: list[str]) -> dict[str, Any]:
    """Requests per job and detection lag from the server's records of these jobs."""
    wanted = set(job_ids)
    records = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        total = http.get("/jobs", params={"limit": 1}).json()["total"]
        for offset in range(0, total, 1000):
            page = http.get("/jobs", params={"offset": offset, "limit": 1000}).json()
            records += [job for job in page["jobs"] if job["job_id"] in wanted]
    requests = [record["status_requests"] for record in records]
    lags = [r["detection_lag_s"] for r in records if r["detection_lag_s"] is not None]
    return {
        "status_requests": sum(requests),
        "requests_per_job": sum(requests) / max(len(records), 1),
        "lag_p50_s": percentile(lags, 50),
        "lag_p95_s": percentile(lags, 95),
        "lag_p99_s": percentile(lags, 99),
    }


def run(quick: bool = False) -> SectionResult:
    sizes = QUICK if quick else FULL
    result = SectionResult(
        name="client",
        title="Client scale: one process starts and watches N concurrent jobs (auto strategy)",
        parameters={
            "jobs": list(sizes.jobs),
            "durations_s": list(sizes.durations_s),
            "error_share": ERROR_SHARE,
            "client": "VideoSimClient defaults (max_in_flight=64), BackoffPolicy(), auto",
        },
    )
    low, high = sizes.durations_s
    table = Table(
        title=f"One client process, jobs of {low:g}-{high:g} s "
        "started together and watched to the end",
        columns=[
            Column("jobs", "jobs", "{:,}"),
            Column("wall_s", "wall s", "{:.1f}"),
            Column("cpu_s", "client CPU s", "{:.1f}"),
            Column("cpu_share", "CPU % of wall", "{:.0%}"),
            Column("requests", "requests sent", "{:,}"),
            Column("per_second", "requests/s", "{:,.0f}"),
            Column("requests_per_job", "status req/job", "{:.2f}"),
            Column("cpu_ms_per_request", "CPU ms/request", "{:.2f}"),
            Column("per_request_vs_small", "CPU/request vs smallest", "{:.2f}x"),
            Column("lag_p95_s", "lag p95 s", "{:.2f}"),
            Column("failures", "failures", "{:,}"),
        ],
        caption="requests sent: POST /start + GET /status by the client; status req/job and "
        "lag from the server's records; failures: start errors or a wrong/missing outcome",
    )
    flags = ("--seed", "1", "--max-jobs", str(sum(sizes.jobs) + 1000))
    smallest: float | None = None
    with ServerProcess.videosim(*flags) as server:
        for jobs in sizes.jobs:
            measured = run_child(server.url, jobs, sizes)
            seen = server_view(server.url, measured.pop("job_ids"))
            sent = measured["client_stats"]["requests_sent"]
            per_request = measured["cpu_s"] / max(sent, 1)
            smallest = smallest or per_request
            table.add(
                jobs=jobs,
                wall_s=measured["wall_s"],
                cpu_s=measured["cpu_s"],
                cpu_share=measured["cpu_s"] / measured["wall_s"],
                requests=sent,
                per_second=sent / measured["wall_s"],
                requests_per_job=seen["requests_per_job"],
                cpu_ms_per_request=per_request * 1000,
                per_request_vs_small=ratio(per_request, smallest),
                lag_p95_s=seen["lag_p95_s"],
                failures=measured["failures"],
            )
            result.details[str(jobs)] = {**measured, "server": seen}
            if measured["failures"]:
                result.notes.append(f"{jobs} jobs: failures {measured['failure_kinds']}")
    result.tables.append(table)
    result.notes += [
        "client CPU: user + system seconds of the child process around start-and-watch only "
        "(psutil); wall includes starting every job",
        "all jobs start at once; requests are admitted first come, first served, so at large "
        "N status polls queue behind the remaining starts: when status req/job drops to 1, "
        "jobs had finished before their first poll and lag is the client's backlog",
    ]
    return result


if __name__ == "__main__":
    child_main()
