"""start and start_many: deadlines, idempotency keys, batches and the per-job fallback."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable

import httpx

from client_core import (
    RequestRejected,
    ServerUnreachable,
    StartSpec,
    SteppingClock,
    VideoSimClient,
)
from tests.support.live_server import LiveServer, free_port

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]
Factory = Callable[..., LiveServer]


def client_for(handler: Handler, **options: object) -> VideoSimClient:
    options.setdefault("clock", SteppingClock())
    return VideoSimClient("http://fake", transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


async def test_one_idempotency_key_per_start_reused_by_its_retries() -> None:
    seen: list[httpx.Request] = []
    answers = itertools.chain(
        [httpx.Response(503, headers={"Retry-After": "1"}, json={"detail": "busy"})],
        itertools.repeat(None),
    )

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(answers)
        return answer or httpx.Response(200, json={"job_id": f"job-{len(seen)}"})

    async with client_for(handler) as client:
        assert await client.start(2.0) == "job-2"
        assert await client.start(2.0) == "job-3"
    keys = [request.headers["Idempotency-Key"] for request in seen]
    assert keys[0] == keys[1] != keys[2]  # the retry reused it; the next start has its own
    assert all(uuid.UUID(key).version == 4 for key in keys)


async def test_start_many_tries_the_batch_route_once_then_starts_one_by_one() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/start/batch":
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        return httpx.Response(200, json={"job_id": f"job-{body['duration_s']:g}"})

    specs = [StartSpec(duration_s=float(n + 1)) for n in range(4)]
    async with client_for(handler) as client:
        first = await client.start_many(specs)
        again = await client.start_many(specs[:1])
        assert client.batch_start_offered is False
    assert [r.job_id for r in first] == ["job-1", "job-2", "job-3", "job-4"]
    assert [r.spec for r in first] == specs and all(r.error is None for r in first)
    assert again[0].job_id == "job-1"
    paths = [request.url.path for request in seen]
    assert paths.count("/start/batch") == 1 and paths.count("/start") == 5
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert len(keys) == len(seen)  # no retries here: one key per logical start


async def test_start_many_sends_batches_in_chunks_when_offered() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        jobs = json.loads(request.content)["jobs"]
        ids = [{"job_id": f"job-{item['duration_s']:g}", "duration_s": 1, "created_at": 0}
               for item in jobs]  # fmt: skip
        return httpx.Response(200, json={"jobs": ids})

    specs = [StartSpec(duration_s=float(n)) for n in range(1, 1201)]
    async with client_for(handler) as client:
        results = await client.start_many(specs)
        assert client.batch_start_offered is True
    assert [r.job_id for r in results] == [f"job-{n}" for n in range(1, 1201)]
    assert [len(json.loads(r.content)["jobs"]) for r in seen] == [500, 500, 200]
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 3


async def test_start_many_never_raises_for_one_bad_job(live_server: LiveServer) -> None:
    specs = [StartSpec(0.3, "completed"), StartSpec(1e9), StartSpec(0.4, "error")]
    async with VideoSimClient(live_server.url) as client:
        results = await client.start_many(specs)
        records = [await client.job_record(r.job_id) for r in results if r.job_id]
    assert [r.started for r in results] == [True, False, True]
    assert isinstance(results[1].error, RequestRejected)
    assert results[1].error.http_status == 422 and "duration_s" in str(results[1].error)
    assert [record["duration_s"] for record in records] == [0.3, 0.4]  # in request order


async def test_start_many_reports_an_unreachable_server_per_job() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with VideoSimClient(url) as client:
        results = await asyncio.wait_for(
            client.start_many([StartSpec()] * 3, deadline_s=0.5), timeout=10
        )
    assert all(isinstance(r.error, ServerUnreachable) for r in results)
    assert "connection refused" in str(results[0].error)


async def test_start_many_uses_the_batch_route_of_the_real_server(
    live_server: LiveServer,
) -> None:
    specs = [StartSpec(round(0.3 + n / 1000, 3), "completed") for n in range(1200)]
    async with VideoSimClient(live_server.url) as client:
        sent_before = client.stats.requests_sent
        results = await client.start_many(specs)
        sent = client.stats.requests_sent - sent_before
        assert client.batch_start_offered is True
        picks = [0, 499, 500, 1199]
        records = [await client.job_record(results[n].job_id or "") for n in picks]
    assert all(r.started for r in results) and len({r.job_id for r in results}) == 1200
    assert sent == 3  # chunks of 500, 500 and 200
    assert [record["duration_s"] for record in records] == [specs[n].duration_s for n in picks]


async def test_start_many_falls_back_on_a_plain_server(live_server_factory: Factory) -> None:
    plain = live_server_factory("--plain", "--delay", "0.3")
    async with VideoSimClient(plain.url) as client:
        results = await client.start_many([StartSpec()] * 3)
        assert client.batch_start_offered is False
    assert all(r.started for r in results) and len({r.job_id for r in results}) == 3


async def test_a_start_retried_after_a_lost_answer_creates_one_job(
    live_server_factory: Factory,
) -> None:
    server = live_server_factory("--delay", "0.5", "--fault-latency-ms", "1500")
    async with (
        VideoSimClient(server.url, read_timeout_s=0.5) as client,
        httpx.AsyncClient(base_url=server.url) as admin,
    ):
        starting = asyncio.create_task(client.start(1.0, deadline_s=10))
        await asyncio.sleep(0.7)  # the first try has timed out: its job exists, its answer is lost
        (await admin.put("/admin/faults", json={})).raise_for_status()  # no more latency
        job_id = await starting
        listed = (await admin.get("/jobs")).json()
    assert client.stats.requests_sent >= 2  # it was retried...
    assert listed["total"] == 1 and listed["jobs"][0]["job_id"] == job_id  # ...into one job
