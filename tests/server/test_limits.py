"""Bounded memory (retention, the job cap) and the edge limits of a real server process."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.server.conftest import ServerFactory
from tests.support.live_server import LiveServer

# --- retention and the job cap (in-process, fake clock) --------------------------------


async def test_finished_jobs_expire_after_the_retention_window(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(retention_s=60)
    short = (await server.start(duration_s=1))["job_id"]
    long = (await server.start(duration_s=100))["job_id"]
    await server.http.get(f"/status/{short}")
    server.advance(60.9)  # short finished at 1 s: kept until 61 s
    assert (await server.http.get(f"/jobs/{short}")).status_code == 200
    server.advance(0.1)
    for url in [f"/status/{short}", f"/jobs/{short}"]:
        response = await server.http.get(url)
        assert response.status_code == 404
        assert response.json() == {"detail": "Job not found"}
    listing = (await server.http.get("/jobs")).json()
    assert [job["job_id"] for job in listing["jobs"]] == [long]
    assert listing["total"] == 1
    assert (await server.http.get("/healthz")).json()["jobs"] == 1
    server.advance(39)  # long finished at 100 s: kept until 160 s
    assert (await server.http.get(f"/status/{long}")).json()["result"] in {"completed", "error"}
    server.advance(59.9)
    assert (await server.http.get(f"/status/{long}")).status_code == 200
    server.advance(0.1)
    assert (await server.http.get(f"/status/{long}")).status_code == 404


async def test_expired_jobs_free_their_memory(server_factory: ServerFactory) -> None:
    server = server_factory(retention_s=10, max_jobs=100_000)
    store = server.state.store.jobs  # type: ignore[attr-defined]  # the memory store's table
    for _ in range(3):
        store.create_many([(1.0, "random")] * 1000)
        server.clock.advance(11)
    store.expire()
    assert len(store._jobs) == 0
    assert sum(len(jobs) for jobs in store._by_finish.values()) == 0


async def test_at_the_cap_start_is_503_with_retry_after_and_health_degraded(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(max_jobs=2, retention_s=10)
    await server.start(duration_s=1)
    await server.start(duration_s=3)
    response = await server.http.post("/start")
    assert response.status_code == 503
    assert response.json() == {"detail": "Job limit reached: 2 jobs"}
    assert response.headers["Retry-After"] == "11"  # the first job expires at 1 + 10 s
    health = (await server.http.get("/healthz")).json()
    assert health["status"] == "degraded"
    batch = await server.http.post("/start/batch", json={"jobs": [{}, {}]})
    assert batch.headers["Retry-After"] == "13"  # room for two: the second expires at 13 s

    server.advance(11)
    assert (await server.http.get("/healthz")).json()["status"] == "ok"
    assert (await server.http.post("/start")).status_code == 200


async def test_request_log_length_is_a_setting(server_factory: ServerFactory) -> None:
    server = server_factory(request_log_length=3)
    job = await server.start(duration_s=100)
    for _ in range(5):
        await server.http.get(f"/status/{job['job_id']}")
        server.advance(1)
    record = (await server.http.get(f"/jobs/{job['job_id']}")).json()
    assert record["status_requests"] == 5
    assert [request["at"] - job["created_at"] for request in record["requests"]] == [2, 3, 4]


# --- edge limits (a real uvicorn process, raw sockets) --------------------------------


@pytest.fixture(scope="module")
def edge() -> Iterator[LiveServer]:
    args = ["--max-header-bytes", "4096", "--max-headers", "20", "--header-timeout", "0.5",
            "--body-timeout", "0.5"]  # fmt: skip
    with LiveServer(args=args) as server:
        yield server


def exchange(server: LiveServer, request: bytes, timeout_s: float = 10) -> bytes:
    """Send raw bytes, read until the server closes; returns everything it sent."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_headers_over_the_size_cap_are_431(edge: LiveServer) -> None:
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    started = time.monotonic()
    answer = exchange(edge, big)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.endswith(b'{"detail":"Request headers too large"}')
    assert time.monotonic() - started < 2
    # Headers under the cap, and a body in the same packet, are fine.
    body = b'{"duration_s": 1}'
    ok = exchange(
        edge,
        b"POST /start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
    )
    assert ok.startswith(b"HTTP/1.1 200 ")


def test_too_many_headers_are_431(edge: LiveServer) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % n for n in range(30))
    answer = exchange(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"Too many request headers" in answer


def test_a_slow_sender_is_cut_off_after_the_header_timeout(edge: LiveServer) -> None:
    """Slowloris: a byte now and then used to keep a socket open for minutes."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        received = b""
        try:
            for _ in range(40):
                sock.sendall(b"X: y\r\n")
                time.sleep(0.1)
        except OSError:
            pass  # the server hung up while we were still sending
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert time.monotonic() - started < 3
    assert received.startswith(b"HTTP/1.1 408 ")


def test_a_silent_connection_is_closed_after_the_header_timeout(edge: LiveServer) -> None:
    started = time.monotonic()
    assert exchange(edge, b"").startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3


def test_a_body_that_never_arrives_is_cut_off(edge: LiveServer) -> None:
    started = time.monotonic()
    answer = exchange(
        edge,
        b"POST /start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",
    )
    assert time.monotonic() - started < 3
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b""
    # The server is still serving everyone else.
    assert httpx.get(f"{edge.url}/healthz").status_code == 200


def test_connections_over_the_limit_get_503_with_retry_after(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory("--max-connections", "5", "--header-timeout", "30")
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    try:
        time.sleep(0.2)
        answer = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"\r\nretry-after: 1\r\n" in answer
        assert answer.endswith(b'{"detail":"Too many open connections"}')
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not serve again once the idle sockets closed")


def test_reload_keeps_the_edge_limits(live_server_factory: Callable[..., LiveServer]) -> None:
    """Under --reload the server runs in a child process that gets the limits by name."""
    server = live_server_factory("--reload", "--max-headers", "10")
    headers = {f"X-H{n}": "v" for n in range(15)}
    response = httpx.get(f"{server.url}/healthz", headers=headers)
    assert response.status_code == 431
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_the_header_cap_counts_each_pipelined_request_alone(edge: LiveServer) -> None:
    """Many small pipelined requests in one send are each under the cap: all answered."""
    count = 490  # about 17 KB in one send, four times the 4 KB cap
    requests = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * (count - 1)
    requests += b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert len(requests) > 3 * 4096
    answer = exchange(edge, requests)
    assert answer.count(b"HTTP/1.1 200 ") == count
    assert b"HTTP/1.1 431 " not in answer


def test_a_large_header_after_a_pipelined_body_is_refused_after_its_answer(
    edge: LiveServer,
) -> None:
    """The body of one request does not hide the next request's headers from the cap,
    and the request before the refused one still gets its answer, first."""
    body = b'{"duration_s": 1, "outcome": "completed"}' + b" " * 20_000
    request = (
        b"POST /start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    answer = exchange(edge, request + big)
    first, _, rest = answer.partition(b"HTTP/1.1 431 ")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert b'"job_id"' in first
    assert rest.endswith(b'{"detail":"Request headers too large"}')
    assert "write_eof" not in edge.stderr_text()  # no write after the connection's end


def test_an_upgrade_or_a_bad_request_with_more_behind_it_never_hangs_the_server(
    edge: LiveServer,
) -> None:
    """Requests the parser ends by itself (an upgrade, an invalid Content-Length) with
    pipelined bytes behind them: answered, and the server goes on serving."""
    follow = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    upgrade = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    bad_length = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    assert exchange(edge, upgrade + follow).startswith(b"HTTP/1.1 403 ")
    assert exchange(edge, bad_length + follow).startswith(b"HTTP/1.1 400 ")
    assert httpx.get(f"{edge.url}/healthz", timeout=5).status_code == 200
