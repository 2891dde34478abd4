"""How late a held long-poll wakes after its job finishes: ``python -m bench.long_poll_lag``.

The store alone on the real clock, in one event loop: ``--jobs`` jobs with durations
spread over 0.5-2.5 s, one waiter each (``LongPolls.wait_until_settled``, what
GET /status?wait does). Lag = wall time when the waiter is woken - the job's finish time.
``--floor-ms`` sets the shortest re-arm of a timer that fired before the wall clock said
the job was done (the store's default unless given). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

from server import long_poll as long_poll_module
from server.clock import SystemClock
from server.long_poll import LongPolls
from server.store import Job, MemoryJobs


async def measure(jobs: int) -> dict[str, float]:
    store = MemoryJobs(
        SystemClock(), rng=random.Random(1), default_duration_s=1.0, error_rate=0.5,
        max_jobs=jobs,
    )  # fmt: skip
    long_polls = LongPolls(SystemClock())
    spread = random.Random(2)
    lags: list[float] = []

    async def wait(job: Job) -> None:
        await long_polls.wait_until_settled(job, 30)
        lags.append(time.time() - job.finishes_at)

    created = [store.create(spread.uniform(0.5, 2.5)) for _ in range(jobs)]
    await asyncio.gather(*(wait(job) for job in created))
    lags.sort()
    return {
        "jobs": jobs,
        "floor_ms": long_poll_module._RECHECK_FLOOR_S * 1000,
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p90_ms": lags[int(0.9 * (len(lags) - 1))] * 1000,
        "lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000,
        "lag_max_ms": lags[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--floor-ms", type=float, default=None)
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="uvloop: as uvicorn runs"
    )
    args = parser.parse_args()
    if args.floor_ms is not None:
        long_poll_module._RECHECK_FLOOR_S = args.floor_ms / 1000
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(measure(args.jobs))
    else:
        result = asyncio.run(measure(args.jobs))
    print(json.dumps({**result, "loop": args.loop}), flush=True)


if __name__ == "__main__":
    main()
