"""The watch loop against an in-process fake server: exact timing, cancellation, scale.

``httpx.MockTransport`` answers in-process and ``SteppingClock`` makes every sleep
instant, so these check *what* the client does and *when*, without waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from client_core import (
    BackoffPolicy,
    ClientError,
    DelayReason,
    Jitter,
    Outcome,
    PollEvent,
    PollTiming,
    SteppingClock,
    Strategy,
    VideoSimClient,
)
from tests.support.fake_servers import older_server

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]
QUICK = BackoffPolicy(initial_s=0.01, multiplier=2.0, max_delay_s=0.05, jitter=Jitter.NONE)


def pending(eta_s: float | None = None) -> httpx.Response:
    body: dict[str, object] = {"job_id": "j", "result": "pending"}
    if eta_s is not None:
        body["eta_s"] = eta_s
    return httpx.Response(200, json=body)


def scripted(*responses: httpx.Response) -> tuple[Handler, list[httpx.Request]]:
    """Answer with ``responses`` in order, repeating the last one; records requests."""
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response] = itertools.chain(responses, itertools.repeat(responses[-1]))

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(queue)

    return handler, seen


def client_for(handler: Handler, **options: object) -> VideoSimClient:
    options.setdefault("clock", SteppingClock())
    return VideoSimClient("http://fake", transport=older_server(handler), **options)  # type: ignore[arg-type]


async def collect(client: VideoSimClient, job_id: str, **watch_options: object) -> list[PollEvent]:
    return [event async for event in client.watch(job_id, **watch_options)]  # type: ignore[arg-type]


async def test_original_preset_sleeps_exactly_as_the_seed_client() -> None:
    clock = SteppingClock()
    handler, seen = scripted(pending())
    async with client_for(handler, clock=clock) as client:
        events = await collect(client, "special-pending-job", policy=BackoffPolicy.original())
    assert [e.attempt for e in events] == [1, 2, 3, 4, 5]
    assert [e.next_delay_s for e in events] == [1.0, 2.0, 4.0, 8.0, None]
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]  # no pointless sleep after the last check
    assert events[-1].outcome is Outcome.TIMED_OUT
    assert events[-1].elapsed_s == 15.0
    assert len(seen) == 5


async def test_every_poll_yields_one_event_and_the_last_has_the_outcome() -> None:
    handler, seen = scripted(pending(), pending(), httpx.Response(200, json={"result": "error"}))
    async with client_for(handler) as client:
        events = await collect(client, "job-1", policy=QUICK)
    assert len(events) == len(seen) == 3
    assert [e.final for e in events] == [False, False, True]
    assert events[-1].outcome is Outcome.ERROR and events[-1].status == "error"


async def test_retry_after_is_obeyed_on_503_and_429() -> None:
    clock = SteppingClock()
    handler, _ = scripted(
        httpx.Response(503, headers={"Retry-After": "3"}, json={"detail": "Service unavailable"}),
        httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "Rate limit exceeded"}),
        httpx.Response(200, json={"result": "completed"}),
    )
    async with client_for(handler, clock=clock) as client:
        events = await collect(client, "job-1", policy=QUICK)
    assert [e.http_status for e in events] == [503, 429, 200]
    assert events[0].reason is DelayReason.RETRY_AFTER and events[0].next_delay_s >= 3
    assert events[0].error == "HTTP 503: Service unavailable"
    assert clock.sleeps[0] >= 3.0
    assert sum(clock.sleeps[1:]) >= 2.0  # the 429 pause, then the watcher's own wait
    assert events[-1].outcome is Outcome.COMPLETED


async def test_not_found_and_rejections_end_at_once_with_the_servers_message() -> None:
    handler, _ = scripted(httpx.Response(404, json={"detail": "Job not found"}))
    async with client_for(handler) as client:
        result = await client.wait("nope", QUICK)
    assert result.outcome is Outcome.NOT_FOUND and result.attempts == 1

    handler, _ = scripted(httpx.Response(401, json={"detail": "Missing or invalid API key"}))
    async with client_for(handler) as client:
        result = await client.wait("job", QUICK)
    assert result.outcome is Outcome.REJECTED
    assert result.last_error == "HTTP 401: Missing or invalid API key"


async def test_malformed_answers_are_retried_not_fatal() -> None:
    handler, _ = scripted(
        httpx.Response(200, text="<html>proxy error</html>"),
        httpx.Response(200, json={"result": "sideways"}),
        httpx.Response(200, json={"result": "completed"}),
    )
    async with client_for(handler) as client:
        events = await collect(client, "job", policy=QUICK)
    assert [e.error is not None for e in events] == [True, True, False]
    assert events[-1].outcome is Outcome.COMPLETED


async def test_hinted_strategy_sleeps_to_the_eta() -> None:
    clock = SteppingClock()
    handler, seen = scripted(pending(eta_s=4.0), httpx.Response(200, json={"result": "completed"}))
    async with client_for(handler, clock=clock) as client:
        events = await collect(client, "job", policy=BackoffPolicy(), strategy=Strategy.HINTED)
    assert len(seen) == 2 and events[-1].outcome is Outcome.COMPLETED
    assert 4.0 < clock.sleeps[0] <= 4.25


async def test_hinted_margins_come_from_the_clients_timing() -> None:
    clock = SteppingClock()
    handler, _ = scripted(pending(eta_s=4.0), httpx.Response(200, json={"result": "completed"}))
    exact = PollTiming(hint_margin_s=1.0, hint_spread_ratio=0.0)
    async with client_for(handler, clock=clock, timing=exact) as client:
        await collect(client, "job", policy=BackoffPolicy(), strategy=Strategy.HINTED)
    assert clock.sleeps == [5.0]  # eta + the given margin, no spread


async def test_long_poll_is_used_only_when_advertised() -> None:
    offered = httpx.Response(200, headers={"X-Long-Poll-Max": "5"}, json={"result": "pending"})
    handler, seen = scripted(offered, httpx.Response(200, json={"result": "completed"}))
    async with client_for(handler) as client:
        events = await collect(client, "job", policy=QUICK, strategy=Strategy.LONG_POLL)
    assert "wait" not in seen[0].url.params  # nothing advertised yet
    assert seen[1].url.params["wait"] == "5.000"  # the server's whole cap, not QUICK's 0.01 s
    assert events[0].reason is DelayReason.LONG_POLL and events[0].next_delay_s == 0.0

    handler, seen = scripted(pending(), httpx.Response(200, json={"result": "completed"}))
    async with client_for(handler) as client:
        events = await collect(client, "job", policy=QUICK, strategy=Strategy.LONG_POLL)
    assert all("wait" not in request.url.params for request in seen)
    assert events[0].strategy is Strategy.BACKOFF


async def test_the_read_timeout_runs_on_top_of_a_30_s_hold() -> None:
    offered = httpx.Response(200, headers={"X-Long-Poll-Max": "30"}, json={"result": "pending"})
    handler, seen = scripted(offered, offered, httpx.Response(200, json={"result": "completed"}))
    async with client_for(handler, read_timeout_s=10.0) as client:
        await collect(client, "job", policy=BackoffPolicy(), strategy=Strategy.AUTO)
    plain, held = seen[0].extensions["timeout"], seen[1].extensions["timeout"]
    assert "wait" not in seen[0].url.params and plain["read"] == 10.0
    assert seen[1].url.params["wait"] == "30.000"
    assert held["read"] == 40.0  # the hold, plus the usual read timeout for the answer
    assert held["connect"] == plain["connect"] == 2.0


def holding_server(clock: SteppingClock, cap_s: float) -> tuple[Handler, list[httpx.Request]]:
    """A never-ending job on a server that holds each ?wait= request for all of it."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        clock.advance(float(request.url.params.get("wait", 0)))
        headers = {"X-Long-Poll-Max": f"{cap_s:g}"}
        return httpx.Response(200, headers=headers, json={"result": "pending"})

    return handler, seen


async def test_under_long_poll_a_budget_of_n_polls_lasts_up_to_n_holds() -> None:
    clock = SteppingClock()
    handler, seen = holding_server(clock, cap_s=30.0)
    async with client_for(handler, clock=clock) as client:
        result = await client.wait("special-pending-job", BackoffPolicy.original(), "long-poll")
    assert [r.url.params.get("wait") for r in seen] == [None] + ["30.000"] * 4
    assert result.outcome is Outcome.TIMED_OUT and result.requests == 5
    assert result.elapsed_s == 120.0  # 4 holds of 30 s (the same budget sleeps 15 s in backoff)
    assert clock.sleeps == [0.0] * 4  # no sleeping: the server did the waiting


async def test_a_deadline_bounds_the_time_a_long_poll_watch_takes() -> None:
    clock = SteppingClock()
    handler, seen = holding_server(clock, cap_s=30.0)
    policy = BackoffPolicy.original().replace(deadline_s=45.0)
    async with client_for(handler, clock=clock) as client:
        result = await client.wait("special-pending-job", policy, Strategy.LONG_POLL)
    assert [r.url.params.get("wait") for r in seen] == [None, "30.000", "15.000"]
    assert result.outcome is Outcome.TIMED_OUT and result.elapsed_s == 45.0


async def test_cancel_during_a_held_request_ends_the_watch_at_once() -> None:
    held = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if "wait" in request.url.params:
            held.set()
            await asyncio.Event().wait()  # a server holding for the whole 30 s
        headers = {"X-Long-Poll-Max": "30"}
        return httpx.Response(200, headers=headers, json={"result": "pending"})

    cancel = asyncio.Event()
    async with VideoSimClient("http://fake", transport=older_server(handler)) as client:
        watching = asyncio.create_task(client.wait("job", BackoffPolicy(), cancel=cancel))
        await asyncio.wait_for(held.wait(), timeout=5)
        cancel.set()
        result = await asyncio.wait_for(watching, timeout=5)  # not after the 30 s hold
    assert result.outcome is Outcome.CANCELLED
    assert result.attempts == 2 and result.requests == 1  # the held one never answered


async def test_cancel_event_ends_the_watch_with_a_cancelled_event() -> None:
    handler, _ = scripted(pending())
    cancel = asyncio.Event()
    async with VideoSimClient("http://fake", transport=older_server(handler)) as client:
        events: list[PollEvent] = []
        async for event in client.watch("job", BackoffPolicy.fixed(30), cancel=cancel):
            events.append(event)
            cancel.set()  # while the watcher is about to sleep 30 s
        result = await client.wait("job", BackoffPolicy.fixed(30), cancel=cancel)
    assert [e.outcome for e in events] == [None, Outcome.CANCELLED]
    assert result.outcome is Outcome.CANCELLED and result.requests == 0


async def test_cancelling_the_consuming_task_stops_cleanly() -> None:
    handler, _ = scripted(pending())
    before = asyncio.all_tasks()
    async with VideoSimClient("http://fake", transport=older_server(handler)) as client:
        seen = asyncio.Event()

        async def consume() -> None:
            async for _event in client.watch("job", BackoffPolicy.fixed(30)):
                seen.set()

        task = asyncio.create_task(consume())
        await seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert asyncio.all_tasks() == before  # no stray tasks left behind


async def test_start_retries_transient_failures_then_reports_clearly() -> None:
    handler, seen = scripted(
        httpx.Response(503, headers={"Retry-After": "1"}, json={"detail": "busy"}),
        httpx.Response(200, json={"job_id": "abc", "result": "pending"}),
    )
    async with client_for(handler) as client:
        assert await client.start(duration_s=1.5, outcome="error") == "abc"
    assert len(seen) == 2
    assert seen[0].read() == b'{"duration_s":1.5,"outcome":"error"}'

    handler, _ = scripted(
        httpx.Response(422, json={"detail": [{"loc": ["body", "duration_s"], "msg": "too big"}]})
    )
    async with client_for(handler) as client:
        with pytest.raises(ClientError, match="cannot start a job: duration_s: too big"):
            await client.start(duration_s=1e9)


async def test_in_flight_cap_holds_for_ten_thousand_watchers() -> None:
    polls: dict[str, int] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        job_id = request.url.path.rsplit("/", 1)[-1]
        polls[job_id] = polls.get(job_id, 0) + 1
        await asyncio.sleep(0)  # let other requests pile up
        result = "completed" if polls[job_id] >= 2 else "pending"
        return httpx.Response(200, json={"result": result})

    async with VideoSimClient("http://fake", transport=older_server(handler)) as client:
        results = await asyncio.gather(
            *(client.wait(f"job-{n}", QUICK, Strategy.BACKOFF) for n in range(10_000))
        )
        assert client.stats.peak_in_flight == client.max_in_flight == 64  # reached, not passed
    assert {r.outcome for r in results} == {Outcome.COMPLETED}
    assert sum(polls.values()) == 20_000


async def test_bad_construction_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="server URL must look like"):
        VideoSimClient("localhost")
    with pytest.raises(ValueError, match="max_in_flight must be >= 1"):
        VideoSimClient(max_in_flight=0)
    with pytest.raises(ValueError, match="job_id must be a non-empty string"):
        async with VideoSimClient() as client:
            await client.wait("")


async def test_requests_per_second_cap_spaces_requests_out() -> None:
    stamps: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        stamps.append(time.monotonic())
        return httpx.Response(200, json={"result": "completed"})

    async with VideoSimClient(
        "http://fake", transport=older_server(handler), max_rps=200
    ) as client:
        await asyncio.gather(*(client.wait(f"job-{n}", QUICK) for n in range(60)))
    assert len(stamps) == 60
    assert stamps[-1] - stamps[0] >= 59 / 200 * 0.95  # never faster than the cap


async def test_a_429_pauses_every_watcher_of_the_client() -> None:
    stamps: list[tuple[float, int]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if not stamps:
            stamps.append((time.monotonic(), 429))
            return httpx.Response(429, headers={"Retry-After": "0.3"}, json={"detail": "slow"})
        stamps.append((time.monotonic(), 200))
        await asyncio.sleep(0)
        return httpx.Response(200, json={"result": "completed"})

    async with VideoSimClient(
        "http://fake", transport=older_server(handler), max_in_flight=1
    ) as client:
        results = await asyncio.gather(*(client.wait(f"job-{n}", QUICK) for n in range(5)))
    assert {r.outcome for r in results} == {Outcome.COMPLETED}
    refused_at = stamps[0][0]
    assert all(at >= refused_at + 0.3 for at, _ in stamps[1:])  # the others waited too
