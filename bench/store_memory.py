"""Memory per job in the store itself: ``python -m bench.store_memory --jobs 1000000``.

Runs in a fresh process so nothing but the store allocates between the readings:
resident set size (psutil) after imports and a garbage collection, again after
``JobTable.create()`` was called ``--jobs`` times, and again after every job was polled
``--polls`` times (``record_status_request``, as GET /status does). Prints one JSON line;
``bytes_per_job_polled`` is the whole cost of a job polled that often.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time

import psutil

from server.jobs.clock import SystemClock
from server.jobs.job import DEFAULT_REQUEST_LOG_LENGTH
from server.stores.job_table import JobTable

MIB = 2**20


def measure(jobs: int, polls: int, log_length: int) -> dict[str, float]:
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    options: dict[str, object] = {}
    if log_length != DEFAULT_REQUEST_LOG_LENGTH:
        options["request_log_length"] = log_length  # older stores have no such setting
    store = JobTable(
        SystemClock(),
        rng=random.Random(1),
        default_duration_s=3600.0,
        error_rate=0.5,
        max_jobs=jobs,
        **options,  # type: ignore[arg-type]
    )
    began = time.perf_counter()
    created = [store.create() for _ in range(jobs)]
    elapsed = time.perf_counter() - began
    gc.collect()
    after = process.memory_info().rss
    now = time.time()
    for job in created:
        for poll in range(polls):
            store.record_status_request(
                job, at=now + poll, code=200, retry_after_s=3600.0, result="pending"
            )
    del created
    gc.collect()
    polled = process.memory_info().rss
    assert len(store) == jobs
    return {
        "jobs": jobs,
        "rss_before_mib": before / MIB,
        "rss_after_mib": after / MIB,
        "bytes_per_job": (after - before) / jobs,
        "seconds": elapsed,
        "per_second": jobs / elapsed,
        "polls": polls,
        "request_log_length": log_length,
        "rss_polled_mib": polled / MIB,
        "bytes_per_job_polled": (polled - before) / jobs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--polls", type=int, default=10, help="status requests per job")
    parser.add_argument("--log-length", type=int, default=DEFAULT_REQUEST_LOG_LENGTH)
    args = parser.parse_args()
    print(json.dumps(measure(args.jobs, args.polls, args.log_length)), flush=True)


if __name__ == "__main__":
    main()
