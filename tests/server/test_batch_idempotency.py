"""POST /start/batch and Idempotency-Key, against real server processes over HTTP.

A few in-process tests on a fake clock cover what needs time to pass (the retention
window) and the bounded key table.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.jobs.clock import FakeClock
from server.jobs.idempotency import IdempotencyConflict, IdempotencyTable, fingerprint
from tests.server.conftest import ServerFactory
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def shared() -> Iterator[LiveServer]:
    with LiveServer(args=["--delay", "30", "--max-batch", "50"]) as server:
        yield server


@pytest.fixture
def http(shared: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared.url, timeout=20) as client:
        yield client
        client.put("/admin/faults", json={})


def job_count(http: httpx.Client) -> int:
    return int(http.get("/healthz").json()["jobs"])


def test_batch_creates_every_job_in_request_order(http: httpx.Client) -> None:
    items = [
        {"duration_s": 1.5, "outcome": "error"},
        {},
        {"duration_s": 2.5, "outcome": "completed"},
    ]
    response = http.post("/start/batch", json={"jobs": items})
    assert response.status_code == 200, response.text
    jobs = response.json()["jobs"]
    assert [job["duration_s"] for job in jobs] == [1.5, 30.0, 2.5]
    assert len({job["job_id"] for job in jobs}) == 3
    assert all(uuid.UUID(job["job_id"]).version == 4 for job in jobs)
    assert {"job_id", "duration_s", "created_at"} <= set(jobs[0])
    outcomes = [http.get(f"/jobs/{job['job_id']}").json()["outcome"] for job in jobs]
    assert outcomes[0] == "error" and outcomes[2] == "completed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"jobs": []}, "jobs: List should have at least 1 item"),
        ({"jobs": [{}] * 51}, "jobs: List should have at most 50 items, not 51"),
        ({"jobs": [{}, {"duration_s": 0}]}, "jobs.1.duration_s: Input should be greater"),
        ({"jobs": [{"duration_s": 99999}]}, "jobs.0.duration_s: Input should be less than"),
        ({}, "jobs: Field required"),
    ],
    ids=["empty", "over-max-batch", "bad-item", "over-max-duration", "no-jobs"],
)
def test_bad_batches_are_422_and_create_nothing(
    http: httpx.Client, body: dict[str, Any], message: str
) -> None:
    before = job_count(http)
    response = http.post("/start/batch", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"].startswith(message)
    assert job_count(http) == before


def test_faults_apply_once_per_batch_request(http: httpx.Client) -> None:
    before = job_count(http)
    assert http.put("/admin/faults", json={"unavailable_rate": 1, "retry_after_s": 4}).is_success
    refused = http.post("/start/batch", json={"jobs": [{}] * 10})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "4"
    assert job_count(http) == before

    # A rate limit of 1 request/s: a batch of 50 jobs spends one token, not 50.
    assert http.put("/admin/faults", json={"rate_limit_rps": 1}).is_success
    assert http.post("/start/batch", json={"jobs": [{}] * 50}).status_code == 200
    limited = http.post("/start/batch", json={"jobs": [{}]})
    assert limited.status_code == 429
    assert job_count(http) == before + 50


def test_batch_is_all_or_nothing_at_the_job_cap(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory("--max-jobs", "5", "--delay", "30")
    with httpx.Client(base_url=server.url, timeout=20) as http:
        assert http.post("/start/batch", json={"jobs": [{}] * 3}).status_code == 200
        too_many = http.post("/start/batch", json={"jobs": [{}] * 3})
        assert too_many.status_code == 503
        assert too_many.json() == {"detail": "Job limit reached: 5 jobs"}
        assert int(too_many.headers["Retry-After"]) >= 1
        assert job_count(http) == 3
        assert http.post("/start/batch", json={"jobs": [{}] * 2}).status_code == 200
        assert job_count(http) == 5


def test_batch_is_not_offered_under_plain(live_server_factory: Callable[..., LiveServer]) -> None:
    server = live_server_factory("--plain")
    response = httpx.post(f"{server.url}/start/batch", json={"jobs": [{}]})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("route", "body"),
    [("/start", {"duration_s": 3}), ("/start/batch", {"jobs": [{"duration_s": 3}, {}]})],
)
def test_same_key_and_body_get_the_same_answer(
    http: httpx.Client, route: str, body: dict[str, Any]
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    before = job_count(http)
    first = http.post(route, json=body, headers=key)
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    again = http.post(route, json=body, headers=key)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert job_count(http) == before + (1 if route == "/start" else 2)


def test_same_key_with_another_body_is_409(http: httpx.Client) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert http.post("/start", json={"duration_s": 3}, headers=key).status_code == 200
    before = job_count(http)
    for route, body in [("/start", {"duration_s": 4}), ("/start/batch", {"jobs": [{}]})]:
        conflict = http.post(route, json=body, headers=key)
        assert conflict.status_code == 409
        assert "Idempotency-Key was already used" in conflict.json()["detail"]
    assert job_count(http) == before


def test_a_bad_key_is_422(http: httpx.Client) -> None:
    response = http.post("/start", headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith("Idempotency-Key: ")


def test_keys_are_scoped_per_peer(shared: LiveServer) -> None:
    """The same key from another address is another caller's key: a new job."""
    key = {"Idempotency-Key": "shared-key"}
    ids = []
    for source in ["127.0.0.1", "127.0.0.2"]:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=shared.url, transport=transport, timeout=20) as http:
            ids.append(http.post("/start", headers=key).json()["job_id"])
            assert http.post("/start", headers=key).json()["job_id"] == ids[-1]
    assert ids[0] != ids[1]


def test_a_retried_slow_start_creates_one_job(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """The issue's case: a client timing out on a slow start and retrying it."""
    server = live_server_factory("--fault-latency-ms", "600", "--delay", "30")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with httpx.Client(base_url=server.url) as http:
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout):
                http.post("/start", headers=key, timeout=0.2)
        answer = http.post("/start", headers=key, timeout=20)
        assert answer.status_code == 200
        assert answer.headers["Idempotent-Replayed"] == "true"
        assert job_count(http) == 1
        assert http.get("/jobs").json()["jobs"][0]["job_id"] == answer.json()["job_id"]


async def test_keys_expire_after_the_retention_window(server_factory: ServerFactory) -> None:
    server = server_factory(retention_s=10)
    key = {"Idempotency-Key": "k1"}
    first = (await server.http.post("/start", headers=key)).json()["job_id"]
    server.clock.advance(9.9)
    assert (await server.http.post("/start", headers=key)).json()["job_id"] == first
    server.clock.advance(0.1)
    assert (await server.http.post("/start", headers=key)).json()["job_id"] != first


def test_the_key_table_is_bounded_oldest_first() -> None:
    clock = FakeClock()
    table = IdempotencyTable(clock, keep_s=60, max_keys=2)
    print_ = fingerprint("/start", "{}")
    for key in ["a", "b", "c"]:
        table.remember("peer:x", key, print_, ())
        clock.advance(1)
    assert len(table) == 2
    assert table.lookup("peer:x", "a", print_) is None  # evicted
    assert table.lookup("peer:x", "c", print_) == ()
    with pytest.raises(IdempotencyConflict):
        table.lookup("peer:x", "c", fingerprint("/start", '{"duration_s":1.0}'))
    assert table.lookup("peer:y", "c", print_) is None  # another caller's scope
