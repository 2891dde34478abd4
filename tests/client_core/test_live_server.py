"""The client against the real server process: outcomes, strategies, faults, outages.

Durations are short (0.3-1 s) and policies small; assertions are about counts and
orderings recorded by the server itself (GET /jobs/{id}), never about fine timing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from client_core import (
    BackoffPolicy,
    DelayReason,
    Jitter,
    Outcome,
    PollEvent,
    Strategy,
    VideoSimClient,
    wait_for,
)
from tests.support.live_server import LiveServer, free_port

SMALL = BackoffPolicy(initial_s=0.05, multiplier=1.6, max_delay_s=0.3, jitter=Jitter.PROPORTIONAL)
FAST_PROBES = BackoffPolicy(initial_s=0.05, multiplier=2.0, max_delay_s=0.2, jitter=Jitter.EQUAL)
Factory = Callable[..., LiveServer]
# auto, with a policy without an attempt budget, takes pushed states from a server that
# offers them; these are the ones that poll.
POLLING_STRATEGIES = [Strategy.BACKOFF, Strategy.HINTED, Strategy.LONG_POLL]


async def test_every_strategy_sees_the_job_finish(live_server: LiveServer) -> None:
    async with VideoSimClient(live_server.url) as client:
        jobs = {strategy: await client.start(0.5, "completed") for strategy in Strategy}
        results = await asyncio.gather(
            *(client.wait(job_id, SMALL, strategy) for strategy, job_id in jobs.items())
        )
        records = {s: await client.job_record(job_id) for s, job_id in jobs.items()}
    for strategy, result in zip(jobs, results, strict=True):
        record = records[strategy]
        assert result.outcome is Outcome.COMPLETED, strategy
        if strategy in POLLING_STRATEGIES:
            assert record["status_requests"] == result.requests  # the server saw each one
            assert 0 <= record["detection_lag_s"] < 1.0, strategy
    # The smarter strategies need fewer requests than blind backoff. Long-poll asks once,
    # then holds a second request until the job ends; the stream (which auto picks here)
    # asks nothing; batch names the job in one held request for many (or none at all: this
    # client's stream, open for the other two, may say first that the job ended).
    assert records[Strategy.LONG_POLL]["status_requests"] <= 2
    assert records[Strategy.STREAM]["status_requests"] == 0
    assert records[Strategy.AUTO]["status_requests"] == 0
    assert records[Strategy.BATCH]["status_requests"] <= 1
    assert records[Strategy.HINTED]["status_requests"] <= 3
    assert records[Strategy.BACKOFF]["status_requests"] >= 3


async def test_error_not_found_and_the_special_job(live_server: LiveServer) -> None:
    async with VideoSimClient(live_server.url) as client:
        failing = await client.start(0.3, "error")
        budget = SMALL.replace(max_attempts=4)
        error, missing, special = await asyncio.gather(
            client.wait(failing, SMALL),
            client.wait("no-such-job", SMALL),
            client.wait("special-pending-job", budget, Strategy.BACKOFF),
        )
    assert error.outcome is Outcome.ERROR
    assert missing.outcome is Outcome.NOT_FOUND and "Job not found" in (missing.last_error or "")
    assert special.outcome is Outcome.TIMED_OUT
    assert special.attempts == special.requests == 4


def test_wait_for_is_a_blocking_one_liner(live_server: LiveServer) -> None:
    # auto with a budget polls (long-poll here), and the second poll would be held for the
    # server's 30 s cap: the deadline, not the budget, is what bounds the time.
    policy = SMALL.replace(max_attempts=2, deadline_s=0.1)
    result = wait_for(live_server.url, "special-pending-job", policy)
    assert result.outcome is Outcome.TIMED_OUT and result.requests == 2
    assert result.elapsed_s < 10  # the deadline cut the hold short


async def test_cancel_event_stops_a_live_watch_during_a_held_request(
    live_server: LiveServer,
) -> None:
    cancel = asyncio.Event()
    seen: list[PollEvent] = []
    first_answer = asyncio.Event()

    def on_event(event: PollEvent) -> None:
        seen.append(event)
        first_answer.set()

    async with VideoSimClient(live_server.url) as client:
        watch = asyncio.create_task(
            client.wait(
                "special-pending-job", SMALL, Strategy.LONG_POLL, cancel=cancel, on_event=on_event
            )
        )
        await asyncio.wait_for(first_answer.wait(), timeout=10)
        await asyncio.sleep(0.1)  # the second request is now held (for up to 30 s)
        held = client.stats.long_polls_sent
        cancel.set()
        result = await asyncio.wait_for(watch, timeout=10)  # well before the hold would end
    assert held == 1
    assert seen[0].reason is DelayReason.LONG_POLL
    assert result.outcome is Outcome.CANCELLED
    assert seen[-1].outcome is Outcome.CANCELLED and len(seen) == 2


async def test_auto_falls_back_against_the_original_simulation(
    live_server_factory: Factory,
) -> None:
    plain = live_server_factory("--plain", "--delay", "0.3")
    async with VideoSimClient(plain.url) as client:
        job_id = await client.start()
        events: list[PollEvent] = [e async for e in client.watch(job_id, SMALL, Strategy.AUTO)]
        record = await client.job_record(job_id)
        health = await client.health()
    assert health.long_poll_max_s is None and health.hints is False
    assert events[-1].outcome in (Outcome.COMPLETED, Outcome.ERROR)
    assert {e.strategy for e in events} == {Strategy.BACKOFF}
    assert {e.reason for e in events[:-1]} == {DelayReason.SCHEDULE}
    assert all(e.eta_s is None for e in events)
    assert record["status_requests"] == len(events)


async def test_long_poll_without_hints_holds_until_the_job_ends(
    live_server_factory: Factory,
) -> None:
    server = live_server_factory("--no-hints", "--delay", "0.6")
    async with VideoSimClient(server.url) as client:
        job_id = await client.start()
        events = [e async for e in client.watch(job_id, SMALL, Strategy.LONG_POLL)]
        record = await client.job_record(job_id)
    assert events[0].strategy is Strategy.LONG_POLL  # advertised, so used despite no eta
    assert events[-1].outcome in (Outcome.COMPLETED, Outcome.ERROR)
    # One hold covers the whole job although SMALL never sleeps more than 0.3 s.
    assert record["status_requests"] == len(events) <= 2
    assert record["detection_lag_s"] < 0.2  # the held request is answered as the job ends


def _next_requests_respect_retry_after(record: dict[str, Any]) -> int:
    """Check the server's own log; returns how many 429/503 answers it holds."""
    requests = sorted(record["requests"], key=lambda r: r["at"])
    refused = 0
    for previous, following in itertools.pairwise(requests):
        if previous["code"] in (429, 503):
            refused += 1
            assert previous["retry_after_s"] is not None
            assert following["at"] >= previous["at"] + previous["retry_after_s"], record["job_id"]
    return refused


async def test_faults_are_retried_and_retry_after_is_never_broken(
    live_server_factory: Factory,
) -> None:
    server = live_server_factory(
        "--delay", "0.5", "--seed", "3",
        "--fault-unavailable-rate", "0.3", "--fault-retry-after", "1",
        "--fault-rate-limit", "8",
    )  # fmt: skip
    async with VideoSimClient(server.url, client_id="fault-test") as client:
        job_ids = [await client.start(0.5, "completed") for _ in range(8)]
        results = await asyncio.gather(
            *(client.wait(job_id, SMALL, strategy) for job_id, strategy in
              zip(job_ids, [*POLLING_STRATEGIES, Strategy.HINTED] * 2, strict=True))
        )  # fmt: skip
        records = [await client.job_record(job_id) for job_id in job_ids]
    assert {r.outcome for r in results} == {Outcome.COMPLETED}
    refused = sum(_next_requests_respect_retry_after(record) for record in records)
    assert refused > 0  # the faults really happened


async def test_server_restart_mid_watch_is_survived(live_server_factory: Factory) -> None:
    server = live_server_factory("--delay", "0.5")
    events: list[PollEvent] = []
    warmed_up = asyncio.Event()  # both watches are under way
    restarted = asyncio.Event()
    resumed = asyncio.Event()  # the special job was answered again after the restart

    def on_event(event: PollEvent) -> None:
        events.append(event)
        if len(events) >= 4:
            warmed_up.set()
        if restarted.is_set() and event.job_id == "special-pending-job" and event.status:
            resumed.set()

    policy = BackoffPolicy(initial_s=0.1, multiplier=1.5, max_delay_s=0.3)
    async with VideoSimClient(server.url, circuit_threshold=3, probe_policy=FAST_PROBES) as client:
        job_id = await client.start(30.0)
        watches = asyncio.gather(
            client.wait(job_id, policy, Strategy.BACKOFF, on_event=on_event),
            client.wait("special-pending-job", policy, Strategy.HINTED, on_event=on_event,
                        cancel=resumed),
        )  # fmt: skip
        await warmed_up.wait()
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(0.8)
        await asyncio.to_thread(server.start)
        restarted.set()
        job, special = await asyncio.wait_for(watches, timeout=20)
    outage = [e for e in events if e.http_status is None and e.outcome is None]
    assert outage  # the watchers saw the server go away...
    assert special.outcome is Outcome.CANCELLED  # ...and were answered again afterwards
    assert job.outcome is Outcome.NOT_FOUND  # the restarted server forgot the job
    assert client.circuit_open is False


async def test_a_watch_survives_a_restart_of_a_server_with_a_state_file(
    live_server_factory: Factory, tmp_path: Path
) -> None:
    server = live_server_factory("--state-file", str(tmp_path / "jobs.jsonl"), "--delay", "0.5")
    events: list[PollEvent] = []
    first_answer = asyncio.Event()

    def on_event(event: PollEvent) -> None:
        events.append(event)
        if event.http_status == 200:
            first_answer.set()

    policy = BackoffPolicy(initial_s=0.1, multiplier=1.5, max_delay_s=0.3)
    async with VideoSimClient(server.url, circuit_threshold=3, probe_policy=FAST_PROBES) as client:
        job_id = await client.start(1.5)
        # Plain backoff keeps polling through the outage (a held long-poll would delay it).
        watch = asyncio.create_task(
            client.wait(job_id, policy, Strategy.BACKOFF, on_event=on_event)
        )
        await asyncio.wait_for(first_answer.wait(), timeout=10)
        await asyncio.to_thread(server.stop)  # SIGTERM: the server saves its jobs
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)
        result = await asyncio.wait_for(watch, timeout=20)
        record = await client.job_record(job_id)
    assert [e for e in events if e.http_status is None and e.outcome is None]  # it was down
    assert result.outcome in (Outcome.COMPLETED, Outcome.ERROR)
    assert result.outcome.value == record["outcome"]  # the job the restarted server knew


async def test_a_server_that_stays_down_ends_unreachable(live_server_factory: Factory) -> None:
    server = live_server_factory("--delay", "0.5")
    async with VideoSimClient(server.url) as client:
        job_id = await client.start(5.0)
        await asyncio.to_thread(server.kill)
        result = await client.wait(job_id, SMALL.replace(max_attempts=6, deadline_s=1.0))
    assert result.outcome is Outcome.UNREACHABLE
    assert result.attempts > 6  # no answer spends the deadline, not the budget of checks
    assert result.last_error is not None and "refused" in result.last_error


class CountingTransport(httpx.AsyncHTTPTransport):
    """Counts connection attempts reaching the network layer."""

    attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        CountingTransport.attempts += 1
        return await super().handle_async_request(request)


async def test_health_gate_spares_a_dead_server_from_every_watcher() -> None:
    watchers = 200
    CountingTransport.attempts = 0
    dead = f"http://127.0.0.1:{free_port()}"
    policy = BackoffPolicy(initial_s=0.02, multiplier=1.5, max_delay_s=0.1, deadline_s=1.0)
    async with VideoSimClient(
        dead, transport=CountingTransport(), circuit_threshold=5, probe_policy=FAST_PROBES
    ) as client:
        results = await asyncio.gather(*(client.wait(f"job-{n}", policy) for n in range(watchers)))
        gate = client.health_gate
    assert {r.outcome for r in results} == {Outcome.UNREACHABLE}
    polls = sum(r.attempts for r in results)
    sent = sum(r.requests for r in results)
    assert gate.times_opened >= 1 and gate.short_circuits > 0
    assert CountingTransport.attempts == sent + gate.probes_sent + 1  # + GET /capabilities
    assert CountingTransport.attempts < polls / 10  # most polls never left the client
