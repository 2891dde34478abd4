"""Admission: interactive requests go ahead of queued background polls; one breaker for all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from client_core import BackoffPolicy, Jitter, Lane, Strategy, SystemClock, VideoSimClient
from client_core.admission import Admission
from tests.support.raw_http import RawHttpServer, http_answer

QUICK = BackoffPolicy(initial_s=0.01, multiplier=2.0, max_delay_s=0.05, jitter=Jitter.NONE)


async def until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (a few hundred loop turns at most)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_start_is_admitted_ahead_of_queued_polls() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        order.append(f"{request.method} {request.url.path}")
        if request.url.path == "/status/blocker":
            await gate.wait()
        if request.method == "POST":
            return httpx.Response(200, json={"job_id": "new"})
        return httpx.Response(200, json={"result": "completed"})

    transport = httpx.MockTransport(handler)
    async with VideoSimClient("http://fake", transport=transport, max_in_flight=1) as client:
        blocker = asyncio.create_task(client.wait("blocker", QUICK, Strategy.BACKOFF))
        await until(lambda: bool(order))
        polls = [
            asyncio.create_task(client.wait(f"job-{n}", QUICK, Strategy.BACKOFF)) for n in range(5)
        ]
        await until(lambda: client.queued(Lane.BACKGROUND) == 5)
        start = asyncio.create_task(client.start())
        await until(lambda: client.queued(Lane.INTERACTIVE) == 1)
        gate.set()
        assert await start == "new"
        await asyncio.gather(blocker, *polls)
    assert order[0] == "GET /status/blocker"
    assert order[1] == "POST /start"  # queued last, admitted first
    assert sorted(order[2:]) == [f"GET /status/job-{n}" for n in range(5)]


async def test_a_slot_granted_to_a_cancelled_waiter_is_passed_on() -> None:
    admission = Admission(SystemClock(), max_in_flight=1, max_rps=None)
    await admission.acquire(Lane.BACKGROUND)
    first = asyncio.create_task(admission.acquire(Lane.BACKGROUND))
    second = asyncio.create_task(admission.acquire(Lane.BACKGROUND))
    await asyncio.sleep(0)
    admission.release()  # granted to `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=1)  # the slot went on, not lost
    assert admission.in_flight == 1
    admission.release()
    assert admission.in_flight == 0
    await admission.aclose()


async def test_a_429_on_a_poll_pauses_starts_too() -> None:
    stamps: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()

    async def handler(request: httpx.Request) -> httpx.Response:
        stamps.append((request.method, loop.time()))
        if request.method == "GET":
            return httpx.Response(429, headers={"Retry-After": "0.3"}, json={"detail": "slow"})
        return httpx.Response(200, json={"job_id": "new"})

    async with VideoSimClient("http://fake", transport=httpx.MockTransport(handler)) as client:
        await client.status("job")
        assert await client.start() == "new"
    (_, refused_at), (method, started_at) = stamps
    assert method == "POST" and started_at >= refused_at + 0.29


async def test_a_server_without_a_health_route_counts_as_up() -> None:
    # The original simulation: no /healthz, but the special job answers.
    pending = http_answer("200 OK", b'{"job_id": "special-pending-job", "result": "pending"}')
    async with (
        RawHttpServer(pending, not_found=("/healthz", "/start/batch")) as server,
        VideoSimClient(server.url) as client,
    ):
        health = await client.health()
        again = [await client.health() for _ in range(3)]
    assert health.ok and health.health_route is False
    # The absence is remembered: later checks ask the special job alone.
    assert all(check.ok and check.health_route is False for check in again)
    special = "/status/special-pending-job"
    assert server.paths == ["/healthz", special, special, special, special]
