"""Requests per job and detection lag, per polling strategy, against a real server.

Usage: .venv/bin/python bench/client_strategies.py [--jobs 200] [--duration 2]

Starts ``python -m server`` on a free port (hints and long-poll on), then for each
configuration starts N jobs of the given duration at once, watches them all with
one client, and reads the server's own record of every job (GET /jobs): status
requests received and detection lag (first final answer - finish time).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from client_core import BackoffPolicy, Outcome, Strategy, VideoSimClient, WatchResult


@dataclass(frozen=True)
class Config:
    name: str
    strategy: Strategy
    policy: BackoffPolicy
    max_in_flight: int = 64  # the client's default: at most 32 long-poll holds at once


CONFIGS = [
    Config("original preset (seed client)", Strategy.BACKOFF, BackoffPolicy.original()),
    Config("fixed 1 s (naive poller)", Strategy.BACKOFF, BackoffPolicy.fixed(1.0)),
    Config("backoff, default policy", Strategy.BACKOFF, BackoffPolicy()),
    Config("hinted, default policy", Strategy.HINTED, BackoffPolicy()),
    Config("long-poll, default policy", Strategy.LONG_POLL, BackoffPolicy()),
    Config("long-poll, 400 in flight", Strategy.LONG_POLL, BackoffPolicy(), 400),
    Config("auto, default policy", Strategy.AUTO, BackoffPolicy()),
    Config("auto, original preset", Strategy.AUTO, BackoffPolicy.original()),
]


async def measure(url: str, config: Config, jobs: int, duration_s: float) -> dict[str, float]:
    async with VideoSimClient(url, max_in_flight=config.max_in_flight) as client:

        async def start_and_watch() -> tuple[str, WatchResult]:
            job_id = await client.start(duration_s, "completed")
            return job_id, await client.wait(job_id, config.policy, config.strategy)

        began = time.perf_counter()
        watched = await asyncio.gather(*(start_and_watch() for _ in range(jobs)))
        wall = time.perf_counter() - began
    job_ids = [job_id for job_id, _ in watched]
    results = [result for _, result in watched]
    records = {}
    async with httpx.AsyncClient(base_url=url) as http:
        offset = 0
        while True:  # GET /jobs pages through every record, without the request logs
            page = (await http.get("/jobs", params={"offset": offset, "limit": 1000})).json()
            records.update({r["job_id"]: r for r in page["jobs"]})
            offset += len(page["jobs"])
            if offset >= page["total"] or not page["jobs"]:
                break
    assert all(r.outcome is Outcome.COMPLETED for r in results), config.name
    requests = [records[j]["status_requests"] for j in job_ids]
    lags = [records[j]["detection_lag_s"] for j in job_ids]
    return {
        "requests_mean": statistics.fmean(requests),
        "requests_max": max(requests),
        "lag_mean": statistics.fmean(lags),
        "lag_p95": statistics.quantiles(lags, n=20)[-1],
        "lag_max": max(lags),
        "wall": wall,
    }


def start_server(port: int, duration_s: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "server", "--port", str(port), "--delay", str(duration_s)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).is_success:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("bench: the server did not start")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port, args.duration)
    try:
        print(f"{args.jobs} jobs of {args.duration:g} s each, one client, server with hints")
        header = f"{'configuration':<38} {'req/job':>8} {'max':>4} {'lag mean':>9} "
        print(header + f"{'lag p95':>8} {'lag max':>8} {'wall':>6}")
        for config in CONFIGS:
            row = asyncio.run(measure(f"http://127.0.0.1:{port}", config, args.jobs, args.duration))
            print(
                f"{config.name:<38} {row['requests_mean']:>8.2f} {row['requests_max']:>4.0f} "
                f"{row['lag_mean']:>8.3f}s {row['lag_p95']:>7.3f}s {row['lag_max']:>7.3f}s "
                f"{row['wall']:>5.1f}s"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
