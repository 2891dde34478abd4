"""What a client sees is the same whichever store keeps the jobs: every test here runs
against the memory, SQLite and Redis stores (a real redis-server, see conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis

from server.jobs.clock import FakeClock
from server.jobs.request_log import (
    LUA_PACK_ENTRY,
    MAX_RETRY_AFTER_S,
    StatusRequest,
    pack,
    unpack,
)
from tests.server.conftest import Server

OpenServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def open_store(open_server: OpenServer, store_url: str) -> OpenServer:
    """``open_server`` on the store under test."""

    async def build(clock: FakeClock | None = None, **overrides: object) -> Server:
        return await open_server(clock, store=store_url, **overrides)

    return build


async def test_state_follows_the_clock_and_the_record_counts_every_poll(
    open_store: OpenServer,
) -> None:
    server = await open_store(seed=7)
    job_id = (await server.start(duration_s=2, outcome="error"))["job_id"]
    pending = await server.http.get(f"/status/{job_id}")
    assert pending.json()["result"] == "pending" and pending.headers["Retry-After"] == "2"
    server.advance(2)
    first_final_at = server.clock.now()
    assert (await server.http.get(f"/status/{job_id}")).json()["result"] == "error"
    server.advance(1)
    assert (await server.http.get(f"/status/{job_id}")).json()["result"] == "error"

    record = (await server.http.get(f"/jobs/{job_id}")).json()
    assert record["status_requests"] == 3
    assert record["first_final_seen_at"] == first_final_at  # set once, not by the third
    assert record["detection_lag_s"] == 0
    assert [(r["code"], r["retry_after_s"]) for r in record["requests"]] == [
        (200, 2),
        (200, None),
        (200, None),
    ]
    assert (await server.http.get("/status/no-such-job")).status_code == 404
    special = await server.http.get("/status/special-pending-job")
    assert special.json()["result"] == "pending"


async def test_the_request_log_keeps_the_newest(open_store: OpenServer) -> None:
    server = await open_store(request_log_length=3)
    job_id = (await server.start(duration_s=100))["job_id"]
    for _ in range(5):
        await server.http.get(f"/status/{job_id}")
        server.advance(1)
    record = (await server.http.get(f"/jobs/{job_id}")).json()
    assert record["status_requests"] == 5
    assert [r["at"] for r in record["requests"]] == [
        server.clock.now() - 3,
        server.clock.now() - 2,
        server.clock.now() - 1,
    ]


async def test_listing_counts_and_metrics(open_store: OpenServer) -> None:
    server = await open_store()
    ids = [(await server.start(duration_s=d, outcome="completed"))["job_id"] for d in (1, 2, 3)]
    server.advance(1.5)
    listing = (await server.http.get("/jobs", params={"limit": 2, "offset": 1})).json()
    assert listing["total"] == 3
    assert [job["job_id"] for job in listing["jobs"]] == ids[1:]
    assert await server.state.store.counts_by_state() == {
        "pending": 2,
        "completed": 1,
        "error": 0,
    }
    metrics = (await server.http.get("/metrics")).text
    assert 'videosim_jobs{state="pending"} 2.0' in metrics


async def test_the_job_cap_is_all_or_nothing_and_expiry_frees_room(
    open_store: OpenServer,
) -> None:
    server = await open_store(max_jobs=3, retention_s=10)
    await server.start(duration_s=1)
    batch = {"jobs": [{"duration_s": 5}, {"duration_s": 5}, {"duration_s": 5}]}
    refused = await server.http.post("/start/batch", json=batch)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "11"  # the 1 s job ends, then 10 s retention
    assert (await server.http.get("/jobs")).json()["total"] == 1
    ok = await server.http.post("/start/batch", json={"jobs": batch["jobs"][:2]})
    assert ok.status_code == 200
    assert (await server.http.post("/start")).status_code == 503
    assert (await server.http.get("/healthz")).json()["status"] == "degraded"

    server.advance(11.5)  # the first job has expired
    assert (await server.http.post("/start")).status_code == 200
    assert (await server.http.get("/healthz")).json()["jobs"] == 3


async def test_an_expired_job_is_gone(open_store: OpenServer) -> None:
    server = await open_store(retention_s=10)
    job_id = (await server.start(duration_s=1))["job_id"]
    server.advance(10.9)
    assert (await server.http.get(f"/status/{job_id}")).status_code == 200
    server.advance(0.2)
    assert (await server.http.get(f"/status/{job_id}")).status_code == 404
    assert (await server.http.get(f"/jobs/{job_id}")).status_code == 404


async def test_idempotency_keys_replay_and_conflict(open_store: OpenServer) -> None:
    server = await open_store()
    headers = {"Idempotency-Key": "k-1"}
    first = await server.http.post("/start", json={"duration_s": 2}, headers=headers)
    again = await server.http.post("/start", json={"duration_s": 2}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = await server.http.post("/start", json={"duration_s": 3}, headers=headers)
    assert other.status_code == 409
    batch = {"jobs": [{"duration_s": 1}, {"duration_s": 2}]}
    key = {"Idempotency-Key": "k-2"}
    made = (await server.http.post("/start/batch", json=batch, headers=key)).json()
    replayed = (await server.http.post("/start/batch", json=batch, headers=key)).json()
    assert made == replayed
    assert (await server.http.get("/jobs")).json()["total"] == 3


async def test_racing_retries_of_one_key_create_one_job(open_store: OpenServer) -> None:
    server = await open_store()
    headers = {"Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(server.http.post("/start", json={}, headers=headers) for _ in range(10))
    )
    assert len({answer.json()["job_id"] for answer in answers}) == 1
    assert (await server.http.get("/jobs")).json()["total"] == 1


async def test_the_rate_limit_fault_is_one_bucket_per_client(open_store: OpenServer) -> None:
    server = await open_store(fault_rate_limit_rps=2)
    job_id = (await server.start())["job_id"]  # spends one token
    codes = [(await server.http.get(f"/status/{job_id}")).status_code for _ in range(2)]
    assert codes == [200, 429]
    server.advance(0.5)
    assert (await server.http.get(f"/status/{job_id}")).status_code == 200
    record = (await server.http.get(f"/jobs/{job_id}")).json()
    assert [r["code"] for r in record["requests"]] == [200, 429, 200]
    assert record["requests"][1]["retry_after_s"] == 1


async def test_api_key_body_cap_and_unavailable_fault(open_store: OpenServer) -> None:
    server = await open_store(api_key="sesame", max_body_bytes=50)
    assert (await server.http.post("/start")).status_code == 401
    key = {"X-Api-Key": "sesame"}
    too_big = await server.http.post("/start", content=b"{" + b" " * 60 + b"}", headers=key)
    assert too_big.status_code == 413
    flaky = await open_store(fault_unavailable_rate=1.0, seed=1)
    answer = await flaky.http.post("/start")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"


async def test_a_long_poll_wakes_when_the_job_finishes(open_store: OpenServer) -> None:
    server = await open_store()
    job_id = (await server.start(duration_s=5, outcome="completed"))["job_id"]
    held = asyncio.create_task(server.http.get(f"/status/{job_id}", params={"wait": 20}))
    await server.until_held(1)
    server.advance(5)
    answer = await asyncio.wait_for(held, timeout=10)
    assert answer.json()["result"] == "completed"
    record = (await server.http.get(f"/jobs/{job_id}")).json()
    assert record["first_final_seen_at"] == server.clock.now()


async def test_the_first_delivery_by_any_channel_is_kept(open_store: OpenServer) -> None:
    server = await open_store()
    ids = [(await server.start(duration_s=1, outcome="completed"))["job_id"] for _ in range(3)]
    server.advance(1.5)
    pushed_at = server.clock.now()
    await server.state.store.record_deliveries([(ids[0], pushed_at)], "stream")
    server.advance(0.5)
    await server.http.get(f"/status/{ids[0]}")  # later: the stream stays the first
    assert (await server.http.post("/status/batch", json={"job_ids": ids[1:2]})).status_code == 200
    await server.state.store.record_deliveries([(ids[2], server.clock.now())], "webhook")
    await server.state.store.record_deliveries([("no-such-job", server.clock.now())], "stream")

    records = [(await server.http.get(f"/jobs/{job_id}")).json() for job_id in ids]
    assert [record["first_final_channel"] for record in records] == ["stream", "batch", "webhook"]
    assert records[0]["first_final_seen_at"] == pushed_at
    assert records[0]["detection_lag_s"] == 0.5
    assert records[1]["detection_lag_s"] == records[2]["detection_lag_s"] == 1.0
    assert (await server.http.get("/jobs/no-such-job")).status_code == 404


@pytest.mark.parametrize("retry_after", [None, 1, 7, 3600, MAX_RETRY_AFTER_S, 10**9])
async def test_the_redis_scripts_pack_a_log_entry_as_python_does(
    redis_url: str, retry_after: int | None
) -> None:
    """The poll script packs its log entries with the Lua twin of request_log's packing:
    on a real Redis, byte for byte the same as the Python code's."""
    client = redis.Redis.from_url(redis_url)
    try:
        script = LUA_PACK_ENTRY + "return pack_entry(tonumber(ARGV[1]), 200, tonumber(ARGV[2]))"
        packed = await client.eval(script, 0, repr(1764190000.125), retry_after or 0)
    finally:
        await client.aclose()
    expected = pack(StatusRequest(1764190000.125, 200, retry_after))
    assert packed == expected
    assert unpack(packed).retry_after_s == (min(retry_after or 0, MAX_RETRY_AFTER_S) or None)
