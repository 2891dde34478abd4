"""Injected faults, the admin route that changes them, and the API key."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.server.conftest import Server, ServerFactory
from tests.support.live_server import LiveServer

FAULT_DEFAULTS = {
    "latency_ms": 0.0,
    "latency_jitter_ms": 0.0,
    "unavailable_rate": 0.0,
    "retry_after_s": 1,
    "rate_limit_rps": 0.0,
}


async def test_faults_start_from_settings(server_factory: ServerFactory) -> None:
    server = server_factory(
        fault_latency_ms=5,
        fault_latency_jitter_ms=2,
        fault_unavailable_rate=0.25,
        fault_retry_after_s=4,
        fault_rate_limit_rps=50,
    )
    assert (await server.http.get("/admin/faults")).json() == {
        "latency_ms": 5.0,
        "latency_jitter_ms": 2.0,
        "unavailable_rate": 0.25,
        "retry_after_s": 4,
        "rate_limit_rps": 50.0,
    }


async def test_put_faults_replaces_them_and_get_reads_them_back(server: Server) -> None:
    assert (await server.http.get("/admin/faults")).json() == FAULT_DEFAULTS
    wanted = {**FAULT_DEFAULTS, "unavailable_rate": 0.5, "retry_after_s": 3}
    response = await server.http.put("/admin/faults", json=wanted)
    assert response.status_code == 200
    assert response.json() == wanted
    assert (await server.http.get("/admin/faults")).json() == wanted
    # PUT replaces: whatever is left out goes back to its default.
    response = await server.http.put("/admin/faults", json={"latency_ms": 1})
    assert response.json() == {**FAULT_DEFAULTS, "latency_ms": 1.0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"unavailable_rate": 1.5}, "unavailable_rate"),
        ({"retry_after_s": 0}, "retry_after_s"),
        ({"retry_after_s": 1.5}, "retry_after_s"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"rate_limit_rps": "fast"}, "rate_limit_rps"),
        ({"chaos": True}, "chaos"),
    ],
)
async def test_put_faults_validates(server: Server, body: dict[str, object], field: str) -> None:
    response = await server.http.put("/admin/faults", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith(f"{field}: ")
    assert (await server.http.get("/admin/faults")).json() == FAULT_DEFAULTS


async def test_unavailable_fault_answers_503_with_retry_after(server: Server) -> None:
    job = await server.start(duration_s=1)
    await server.http.put("/admin/faults", json={"unavailable_rate": 1.0, "retry_after_s": 3})

    for response in [
        await server.http.post("/start"),
        await server.http.get(f"/status/{job['job_id']}"),
    ]:
        assert response.status_code == 503
        assert response.json() == {"detail": "Service unavailable (injected fault)"}
        assert response.headers["Retry-After"] == "3"
    # Only /start and /status misbehave.
    assert (await server.http.get("/healthz")).status_code == 200
    assert (await server.http.get(f"/jobs/{job['job_id']}")).status_code == 200
    assert (await server.http.get("/metrics")).status_code == 200

    record = (await server.http.get(f"/jobs/{job['job_id']}")).json()
    assert record["status_requests"] == 1
    assert record["requests"][0]["code"] == 503
    assert record["requests"][0]["retry_after_s"] == 3
    assert await server.state.store.count() == 1


async def test_unavailable_share_is_roughly_the_rate_and_seeded(
    server_factory: ServerFactory,
) -> None:
    async def codes(seed: int) -> list[int]:
        server = server_factory(seed=seed, fault_unavailable_rate=0.3)
        return [
            (await server.http.get("/status/special-pending-job")).status_code for _ in range(100)
        ]

    first = await codes(3)
    assert 10 <= first.count(503) <= 50
    assert set(first) == {200, 503}
    assert await codes(3) == first


def other_peer(server: Server, address: str) -> httpx.AsyncClient:
    """A client of the same app that connects from another address."""
    transport = httpx.ASGITransport(app=server.app, client=(address, 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_rate_limit_is_per_peer_with_retry_after(server: Server) -> None:
    await server.http.put("/admin/faults", json={"rate_limit_rps": 2})
    url = "/status/special-pending-job"
    assert (await server.http.get(url)).status_code == 200
    assert (await server.http.get(url)).status_code == 200
    limited = await server.http.get(url)
    assert limited.status_code == 429
    assert limited.json() == {"detail": "Rate limit exceeded: 2 requests/s"}
    assert limited.headers["Retry-After"] == "1"
    # Another address has its own bucket.
    async with other_peer(server, "10.0.0.2") as bob:
        assert (await bob.get(url)).status_code == 200
    # Tokens come back with (fake) time: half a second is one request at 2/s.
    server.clock.advance(0.5)
    assert (await server.http.get(url)).status_code == 200
    assert (await server.http.get(url)).status_code == 429


async def test_client_chosen_ids_neither_dodge_nor_spend_the_limit(server: Server) -> None:
    """X-Client-Id once named the bucket: rotating it reset the limit, claiming it spent
    another client's allowance."""
    await server.http.put("/admin/faults", json={"rate_limit_rps": 1})
    url = "/status/special-pending-job"
    codes = [
        (await server.http.get(url, headers={"X-Client-Id": f"id-{n}"})).status_code
        for n in range(5)
    ]
    assert codes == [200, 429, 429, 429, 429]
    async with other_peer(server, "10.0.0.3") as victim:
        # Somebody sending the victim's would-be id does not touch the victim's bucket.
        assert (await victim.get(url, headers={"X-Client-Id": "id-0"})).status_code == 200


async def test_with_an_api_key_the_key_is_the_client(server_factory: ServerFactory) -> None:
    server = server_factory(api_key="k", fault_rate_limit_rps=1)
    url = "/status/special-pending-job"
    key = {"X-Api-Key": "k"}
    assert (await server.http.get(url, headers=key)).status_code == 200
    async with other_peer(server, "10.0.0.4") as same_holder:
        assert (await same_holder.get(url, headers=key)).status_code == 429


async def test_slow_rate_limit_retry_after_rounds_up(server: Server) -> None:
    await server.http.put("/admin/faults", json={"rate_limit_rps": 0.4})
    assert (await server.http.post("/start")).status_code == 200
    limited = await server.http.post("/start")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"  # a token every 2.5 s


async def test_latency_fault_delays_but_answers(server: Server) -> None:
    await server.http.put("/admin/faults", json={"latency_ms": 20, "latency_jitter_ms": 10})
    response = await server.http.get("/status/special-pending-job")
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.015
    metrics = (await server.http.get("/metrics")).text
    assert 'videosim_faults_injected_total{kind="latency"} 1.0' in metrics


async def test_api_key_guards_every_route_but_healthz(server_factory: ServerFactory) -> None:
    server = server_factory(api_key="s3cret")
    guarded = [
        ("POST", "/start"),
        ("GET", "/status/special-pending-job"),
        ("GET", "/jobs/special-pending-job"),
        ("GET", "/jobs"),
        ("GET", "/metrics"),
        ("GET", "/admin/faults"),
        ("PUT", "/admin/faults"),
    ]
    for method, url in guarded:
        for headers in [{}, {"X-Api-Key": "wrong"}, {"X-Api-Key": ""}]:
            response = await server.http.request(method, url, headers=headers)
            assert response.status_code == 401, (method, url, headers)
            assert response.json() == {"detail": "Missing or invalid API key"}
    assert (await server.http.get("/healthz")).status_code == 200

    key = {"X-Api-Key": "s3cret"}
    assert (await server.http.post("/start", headers=key)).status_code == 200
    assert (await server.http.get("/jobs", headers=key)).status_code == 200
    assert (await server.http.put("/admin/faults", json={}, headers=key)).status_code == 200


async def test_without_api_key_setting_no_key_is_needed(server: Server) -> None:
    response = await server.http.post("/start", headers={"X-Api-Key": "anything"})
    assert response.status_code == 200


# --- proxy headers (a real uvicorn process: it is uvicorn that reads them) ------------


def _status_codes_with_spoofed_addresses(server_url: str, count: int) -> list[int]:
    url = f"{server_url}/status/special-pending-job"
    with httpx.Client(timeout=10) as http:
        return [
            http.get(url, headers={"X-Forwarded-For": f"10.9.{n}.1"}).status_code
            for n in range(count)
        ]


def test_a_spoofed_x_forwarded_for_neither_dodges_the_limit_nor_replays_a_key(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """uvicorn believed X-Forwarded-For from any loopback peer: a new address per request
    dodged the rate limit (30 of 30 answered), and naming another caller's address
    replayed that caller's Idempotency-Key."""
    server = live_server_factory("--fault-rate-limit", "1")
    codes = _status_codes_with_spoofed_addresses(server.url, 10)
    assert codes.count(429) >= 8, codes

    plain = live_server_factory()
    body = {"duration_s": 60}
    # The victim is another peer address on loopback.
    victim_transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=victim_transport, timeout=10) as victim:
        started = victim.post(f"{plain.url}/start", headers={"Idempotency-Key": "k"}, json=body)
    spoofed = httpx.post(
        f"{plain.url}/start",
        headers={"Idempotency-Key": "k", "X-Forwarded-For": "127.0.0.2"},
        json=body,
    )
    assert "Idempotent-Replayed" not in spoofed.headers
    assert spoofed.json()["job_id"] != started.json()["job_id"]


def test_a_trusted_proxy_names_the_client(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory("--fault-rate-limit", "1", "--trusted-proxies", "127.0.0.1")
    assert _status_codes_with_spoofed_addresses(server.url, 5) == [200] * 5
