"""Memory per job in the store itself: ``python -m bench.store_memory --jobs 1000000``.

Runs in a fresh process so nothing but the store allocates between the two readings:
resident set size (psutil) after imports and a garbage collection, then again after
``JobStore.create()`` was called ``--jobs`` times. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time

import psutil

from server.clock import SystemClock
from server.store import JobStore

MIB = 2**20


def measure(jobs: int) -> dict[str, float]:
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    store = JobStore(
        SystemClock(),
        rng=random.Random(1),
        default_duration_s=3600.0,
        error_rate=0.5,
        max_jobs=jobs,
    )
    began = time.perf_counter()
    for _ in range(jobs):
        store.create()
    elapsed = time.perf_counter() - began
    gc.collect()
    after = process.memory_info().rss
    assert len(store) == jobs
    return {
        "jobs": jobs,
        "rss_before_mib": before / MIB,
        "rss_after_mib": after / MIB,
        "bytes_per_job": (after - before) / jobs,
        "seconds": elapsed,
        "per_second": jobs / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    print(json.dumps(measure(parser.parse_args().jobs)), flush=True)


if __name__ == "__main__":
    main()
