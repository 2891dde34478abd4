"""Against a real uvicorn process: what a client of the original simulation sees, and more.

The ``live_server`` fixture runs ``python -m server --delay 0.5 --seed 7``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.live_server import LiveServer


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=20) as client:
        yield client


def poll_until_final(http: httpx.Client, job_id: str, deadline_s: float = 15) -> list[str]:
    """Poll every 50 ms like a naive client; returns every result seen."""
    seen = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        seen.append(http.get(f"/status/{job_id}").json()["result"])
        if seen[-1] != "pending":
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still pending after {deadline_s}s")


def test_the_original_flow(http: httpx.Client) -> None:
    started = http.post("/start")
    assert started.status_code == 200
    job_id = started.json()["job_id"]
    assert started.json()["duration_s"] == 0.5

    seen = poll_until_final(http, job_id)
    assert seen[0] == "pending"
    assert seen[-1] in {"completed", "error"}
    for _ in range(3):  # final means final
        assert http.get(f"/status/{job_id}").json()["result"] == seen[-1]

    special = http.get("/status/special-pending-job")
    assert special.json() == {"job_id": "special-pending-job", "result": "pending"}
    missing = http.get("/status/not-a-job")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Job not found"}

    record = http.get(f"/jobs/{job_id}").json()
    assert record["status_requests"] == len(seen) + 3
    assert record["detection_lag_s"] is not None and record["detection_lag_s"] >= 0


def test_long_poll_returns_early_when_the_job_finishes(http: httpx.Client) -> None:
    job_id = http.post("/start", json={"duration_s": 0.5, "outcome": "completed"}).json()["job_id"]
    started = time.monotonic()
    response = http.get(f"/status/{job_id}", params={"wait": 20})
    assert response.json()["result"] == "completed"
    assert time.monotonic() - started < 15  # the job's finish, not the 20 s wait, ended it
    assert response.headers["X-Long-Poll-Max"] == "30"
    assert http.get(f"/jobs/{job_id}").json()["status_requests"] == 1


def test_long_poll_times_out_pending(http: httpx.Client) -> None:
    job_id = http.post("/start", json={"duration_s": 60}).json()["job_id"]
    started = time.monotonic()
    response = http.get(f"/status/{job_id}", params={"wait": 0.3})
    assert time.monotonic() - started >= 0.25
    assert response.json()["result"] == "pending"
    assert response.json()["eta_s"] > 50
    assert int(response.headers["Retry-After"]) >= 50


def test_client_hanging_up_on_a_long_poll_is_cleaned_up(
    http: httpx.Client, live_server: LiveServer
) -> None:
    job_id = http.post("/start", json={"duration_s": 60}).json()["job_id"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{live_server.url}/status/{job_id}", params={"wait": 20}, timeout=0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = http.get(f"/jobs/{job_id}").json()
        if record["requests"]:
            break
        time.sleep(0.05)
    assert record["requests"][0]["code"] == 499
    assert record["first_final_seen_at"] is None
    assert "videosim_long_polls_held 0.0" in http.get("/metrics").text


@pytest.fixture
def faults(http: httpx.Client) -> Iterator[Callable[..., None]]:
    """Set faults on the shared server for one test, then switch them off again."""

    def put(**faults: float) -> None:
        assert http.put("/admin/faults", json=faults).status_code == 200

    yield put
    put()


def test_injected_503_and_429_carry_retry_after(
    http: httpx.Client, faults: Callable[..., None]
) -> None:
    faults(unavailable_rate=1.0, retry_after_s=2)
    unavailable = http.post("/start")
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "2"
    assert http.get("/healthz").status_code == 200

    faults(rate_limit_rps=1)
    headers = {"X-Client-Id": "live-test"}
    codes = [http.get("/status/special-pending-job", headers=headers) for _ in range(5)]
    limited = [response for response in codes if response.status_code == 429]
    assert limited, [response.status_code for response in codes]
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].json() == {"detail": "Rate limit exceeded: 1 requests/s"}


def test_faults_from_flags(live_server_factory: Callable[..., LiveServer]) -> None:
    server = live_server_factory("--fault-unavailable-rate", "1", "--fault-retry-after", "7")
    response = httpx.get(f"{server.url}/status/special-pending-job")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"


def test_api_key_on(live_server_factory: Callable[..., LiveServer]) -> None:
    server = live_server_factory("--plain", env={"VIDEOSIM_API_KEY": "letmein"})
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").status_code == 200
        denied = http.post("/start")
        assert denied.status_code == 401
        assert denied.json() == {"detail": "Missing or invalid API key"}
        assert http.post("/start", headers={"X-Api-Key": "nope"}).status_code == 401
        started = http.post("/start", headers={"X-Api-Key": "letmein"})
        assert started.status_code == 200
        status = http.get(f"/status/{started.json()['job_id']}", headers={"X-Api-Key": "letmein"})
        # --plain: the original's answers, no hints, no long-poll offer
        assert status.json() == {"job_id": started.json()["job_id"], "result": "pending"}
        assert "Retry-After" not in status.headers
        assert "X-Long-Poll-Max" not in status.headers


def test_api_key_off_by_default(http: httpx.Client) -> None:
    assert http.post("/start").status_code == 200
    assert http.get("/jobs", params={"limit": 1}).status_code == 200
