"""How late a held long-poll wakes after its job finishes: ``python -m bench.long_poll_lag``.

The store alone on the real clock, in one event loop: ``--jobs`` jobs with durations
spread over 0.5-2.5 s, one waiter each (``LongPolls.wait_until_settled``; GET /status?wait
parks the same way, on the process's one schedule). Lag = wall time when the waiter is woken - the
job's finish time. ``alarm_calls`` counts the schedule's wake-ups: one per due time at
best, more when one came before the job's clock said it was done. ``--alarm loop`` uses
the loop-timer alarm (what runs where Linux's timerfd is missing) instead of the timerfd.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

from server.jobs import schedule as schedule_module
from server.jobs.clock import SystemClock
from server.jobs.job import Job
from server.jobs.long_poll import LongPolls
from server.jobs.schedule import Schedule
from server.stores.job_table import JobTable


async def measure(jobs: int) -> dict[str, float | int]:
    store = JobTable(
        SystemClock(), rng=random.Random(1), default_duration_s=1.0, error_rate=0.5,
        max_jobs=jobs,
    )  # fmt: skip
    schedule = Schedule(SystemClock())
    long_polls = LongPolls(schedule)
    alarm_calls = 0
    on_alarm = schedule._on_alarm

    def counted_on_alarm() -> None:
        nonlocal alarm_calls
        alarm_calls += 1
        on_alarm()

    schedule._on_alarm = counted_on_alarm  # type: ignore[method-assign]
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
        "alarm_calls": alarm_calls,
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p90_ms": lags[int(0.9 * (len(lags) - 1))] * 1000,
        "lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000,
        "lag_max_ms": lags[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument(
        "--alarm", choices=["timerfd", "loop"], default="timerfd", help="loop: no timerfd"
    )
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="uvloop: as uvicorn runs"
    )
    args = parser.parse_args()
    if args.alarm == "loop":
        schedule_module._timerfd = None
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(measure(args.jobs))
    else:
        result = asyncio.run(measure(args.jobs))
    print(json.dumps({**result, "alarm": args.alarm, "loop": args.loop}), flush=True)


if __name__ == "__main__":
    main()
