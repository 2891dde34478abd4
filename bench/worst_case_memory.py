"""Memory per job at the largest inputs the server accepts:
``python -m bench.worst_case_memory --jobs 20000``.

Every job is started through the real app (in this process, over ASGI, memory store) by
its own ``POST /start`` carrying the largest fields allowed: a 2,048-character
``callback_url``, a 256-character ``callback_secret``, a 64-character ``X-Client-Id`` of
its own and a 255-character ``Idempotency-Key`` of its own. RSS is read (psutil, after a
garbage collection) before, after the starts, and after every job was polled ``--polls``
times as GET /status records it; then ``--subscriptions`` subscriptions of
``--subscription-ids`` ids each are made, as one caller's quota allows. Prints one JSON
line. docs/server.md states these worst cases.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from typing import Any

import httpx
import psutil

from server.app import create_app
from server.settings import ServerSettings

MIB = 2**20


async def measure(jobs: int, polls: int, subscriptions: int, per_subscription: int) -> Any:
    settings = ServerSettings(
        _env_file=None,  # type: ignore[call-arg]
        delay=3600,
        max_subscriptions_per_client=max(1, subscriptions),
        max_subscribed_ids_per_client=max(1, subscriptions * per_subscription),
    )
    app = create_app(settings)
    process = psutil.Process()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            await http.get("/healthz")  # warm every import and cache first
            gc.collect()
            before = process.memory_info().rss
            began = time.perf_counter()
            ids = []
            for n in range(jobs):
                body = {
                    "duration_s": 3600,
                    "callback_url": "http://127.0.0.1:9/" + f"{n:08d}" * 253 + "abcde",
                    "callback_secret": f"{n:08d}" * 32,
                }
                headers = {"X-Client-Id": f"{n:064d}", "Idempotency-Key": f"{n:0255d}"}
                answer = await http.post("/start", json=body, headers=headers)
                ids.append(answer.json()["job_id"])
            elapsed = time.perf_counter() - began
            gc.collect()
            started = process.memory_info().rss
            store = app.state.videosim.store
            now = time.time()
            for job_id in ids:
                job = await store.get(job_id)
                for poll in range(polls):
                    await store.record_status_request(
                        job, at=now + poll, code=200, retry_after_s=3600.0, result="pending"
                    )
            gc.collect()
            polled = process.memory_info().rss
            for first in range(subscriptions):
                chosen = [ids[(first + k) % len(ids)] for k in range(per_subscription)]
                made = await http.post("/subscriptions", json={"job_ids": chosen})
                assert made.status_code == 201, made.text
            gc.collect()
            subscribed = process.memory_info().rss
    return {
        "jobs": jobs,
        "starts_per_second": jobs / elapsed,
        "bytes_per_job": (started - before) / jobs,
        "polls": polls,
        "bytes_per_job_polled": (polled - before) / jobs,
        "subscriptions": subscriptions,
        "ids_per_subscription": per_subscription,
        "bytes_per_subscribed_id": (subscribed - polled) / max(1, subscriptions * per_subscription),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--subscriptions", type=int, default=20)
    parser.add_argument("--subscription-ids", type=int, default=10_000)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.jobs, args.polls, args.subscriptions, args.subscription_ids))
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
