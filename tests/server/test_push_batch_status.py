"""The push protocol's discovery and batch status, against a real server over HTTP (and,
for variants of the settings, in-process apps): GET /capabilities (and what --plain leaves
of it), POST /status/batch without and with wait."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import ServerFactory
from tests.support.live_server import LiveServer

EVERYTHING_ON = "long-poll, hints, batch-status, events, webhooks"


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer(args=["--delay", "0.5", "--max-batch-status", "5"]) as live:
        yield live


def _start(http: httpx.Client, duration_s: float, **body: object) -> str:
    answer = http.post("/start", json={"duration_s": duration_s, **body})
    assert answer.status_code == 200, answer.text
    job_id: str = answer.json()["job_id"]
    return job_id


def test_capabilities_are_advertised_three_ways(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        offer = http.get("/capabilities").json()
        health = http.get("/healthz").json()
        status = http.get("/status/special-pending-job")
        missing = http.get("/status/nope")
    assert offer == {
        "long_poll": True,
        "long_poll_max_s": 30.0,
        "hints": True,
        "batch_start": True,
        "max_batch": 1000,
        "batch_status": True,
        "max_batch_status": 5,
        "events": True,
        "webhooks": True,
    }
    assert health["capabilities"] == offer
    assert status.headers["X-Capabilities"] == EVERYTHING_ON
    assert missing.headers["X-Capabilities"] == EVERYTHING_ON


async def test_the_header_names_only_what_is_on_and_the_key_is_not_needed(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(hints=False, long_poll_max_s=0, api_key="k")
    offer = await server.http.get("/capabilities")
    health = (await server.http.get("/healthz")).json()
    status = await server.http.get("/status/special-pending-job", headers={"X-Api-Key": "k"})
    batch = await server.http.post("/status/batch", json={"job_ids": ["x"]})
    assert offer.status_code == 200
    assert offer.json()["long_poll"] is False and offer.json()["long_poll_max_s"] is None
    assert health["capabilities"] == offer.json()  # null fields included
    assert status.headers["X-Capabilities"] == "batch-status, events, webhooks"
    assert batch.status_code == 401  # the push routes need the key like the others


async def test_plain_offers_none_of_it(server_factory: ServerFactory) -> None:
    server = server_factory(plain=True)
    status = await server.http.get("/status/special-pending-job")
    answers = [
        await server.http.get("/capabilities"),
        await server.http.post("/status/batch", json={"job_ids": ["x"]}),
        await server.http.post("/subscriptions", json={"job_ids": ["x"]}),
        await server.http.get("/events", params={"ids": "x"}),
    ]
    health = (await server.http.get("/healthz")).json()
    assert "X-Capabilities" not in status.headers
    assert status.content == b'{"job_id":"special-pending-job","result":"pending"}'
    # POST /status/batch is what the original answers for any POST /status/{id}: 405.
    assert [answer.status_code for answer in answers] == [404, 405, 404, 404]
    assert "capabilities" not in health


def test_batch_without_wait_answers_every_id_in_order_and_counts_each_job(
    server: LiveServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        done = _start(http, 0.05, outcome="error")
        running = _start(http, 30)
        time.sleep(0.1)
        answer = http.post(
            "/status/batch", json={"job_ids": [running, "nope", done, "special-pending-job"]}
        )
        records = [http.get(f"/jobs/{job_id}").json() for job_id in (done, running)]
    assert answer.status_code == 200
    body = answer.json()
    assert [item["job_id"] for item in body["jobs"]] == [running, done, "special-pending-job"]
    results = {item["job_id"]: item for item in body["jobs"]}
    assert results[done] == {"job_id": done, "result": "error", "eta_s": None}
    assert results[running]["result"] == "pending" and 29 < results[running]["eta_s"] <= 30
    assert results["special-pending-job"]["eta_s"] is None
    assert body["unknown"] == ["nope"]
    assert [record["status_requests"] for record in records] == [1, 1]
    assert records[0]["first_final_seen_at"] is not None  # the batch showed it final


def test_batch_wait_is_held_until_the_first_job_finishes(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        soon = _start(http, 0.3, outcome="completed")
        late = _start(http, 30)
        started = time.monotonic()
        answer = http.post("/status/batch", json={"job_ids": [late, soon, "gone"], "wait": 5})
        held_s = time.monotonic() - started
        record = http.get(f"/jobs/{soon}").json()
    assert answer.status_code == 200
    assert answer.json() == {
        "jobs": [{"job_id": soon, "result": "completed", "eta_s": None}],
        "unknown": ["gone"],
    }
    assert 0.15 < held_s < 2
    assert record["status_requests"] == 1
    assert record["detection_lag_s"] is not None and record["detection_lag_s"] < 0.1


def test_batch_wait_answers_at_once_when_a_job_is_final_and_empty_on_timeout(
    server: LiveServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        done = _start(http, 0.05)
        late = _start(http, 30)
        time.sleep(0.1)
        started = time.monotonic()
        at_once = http.post("/status/batch", json={"job_ids": [late, done], "wait": 5})
        at_once_s = time.monotonic() - started
        started = time.monotonic()
        timed_out = http.post("/status/batch", json={"job_ids": [late], "wait": 0.2})
        timed_out_s = time.monotonic() - started
    assert [item["job_id"] for item in at_once.json()["jobs"]] == [done]
    assert at_once_s < 1
    assert timed_out.json() == {"jobs": [], "unknown": []}
    assert 0.15 < timed_out_s < 2


def test_jobs_finishing_together_are_answered_together(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        batch = http.post("/start/batch", json={"jobs": [{"duration_s": 0.2}] * 3}).json()
        job_ids = [job["job_id"] for job in batch["jobs"]]
        answer = http.post("/status/batch", json={"job_ids": job_ids, "wait": 5}).json()
    assert sorted(item["job_id"] for item in answer["jobs"]) == sorted(job_ids)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"job_ids": []}, "job_ids: List should have at least 1 item"),
        ({"job_ids": ["a"] * 6}, "job_ids: List should have at most 5 items, not 6"),
        ({"job_ids": ["a"], "wait": -1}, "wait: Input should be greater than or equal to 0"),
        ({"job_ids": ["a"], "wait": "5"}, "wait: Input should be a valid number"),
        ({"job_ids": ["a"], "colour": 1}, "colour: unknown field; check its spelling"),
    ],
)
def test_bad_batches_are_422_with_a_message(
    server: LiveServer, body: dict[str, object], message: str
) -> None:
    answer = httpx.post(f"{server.url}/status/batch", json=body, timeout=10)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"].startswith(message), answer.json()


async def test_the_batch_route_takes_ten_thousand_ids_under_the_default_body_cap(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    job_ids = [f"{index:08d}-0000-4000-8000-000000000000" for index in range(10_000)]
    answer = await server.http.post("/status/batch", json={"job_ids": job_ids})
    assert answer.status_code == 200, answer.text[:200]
    assert len(answer.json()["unknown"]) == 10_000
    too_big = await server.http.post("/start", content=b"x" * 70_000)
    assert too_big.status_code == 413  # the other routes keep the ordinary cap


async def test_a_subscription_takes_ten_thousand_ids_when_made_and_when_grown(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    job_ids = [f"{index:08d}-0000-4000-8000-000000000000" for index in range(10_000)]
    made = await server.http.post("/subscriptions", json={"job_ids": job_ids})
    assert made.status_code == 201, made.text[:200]
    subscription_id = made.json()["subscription_id"]
    grown = await server.http.post(
        f"/subscriptions/{subscription_id}/jobs", json={"job_ids": job_ids}
    )
    assert grown.status_code == 200, grown.text[:200]
    assert len(grown.json()["unknown"]) == 10_000
