"""Stream and batch watches against the real server: pushed states, shared connections,
deadlines, cancel, and ``auto`` choosing (or falling back) from what the server offers.

Jobs last 0.2-0.5 s; counts come from the client's stats and the server's job records.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from client_core import (
    BackoffPolicy,
    DelayReason,
    Outcome,
    PollEvent,
    PushWait,
    Route,
    StartSpec,
    Strategy,
    VideoSimClient,
)
from tests.support.live_server import LiveServer
from tests.tui.original_api import OriginalApiServer

Factory = Callable[..., LiveServer]
POLICY = BackoffPolicy(initial_s=0.05, multiplier=1.5, max_delay_s=0.2, deadline_s=10.0)


async def watch_all(
    client: VideoSimClient, job_ids: list[str], strategy: Strategy
) -> tuple[list[Outcome], list[PollEvent]]:
    events: list[PollEvent] = []
    results = await asyncio.gather(
        *(client.wait(job_id, POLICY, strategy, on_event=events.append) for job_id in job_ids)
    )
    return [result.outcome for result in results], events


async def test_stream_watches_share_one_connection_and_send_no_status_request(
    live_server: LiveServer,
) -> None:
    async with VideoSimClient(live_server.url) as client:
        job_ids = [await client.start(0.2 + n * 0.05, "completed") for n in range(5)]
        failing = await client.start(0.2, "error")
        outcomes, events = await watch_all(client, [*job_ids, failing], Strategy.STREAM)
        stats = dataclasses.replace(client.stats)  # before the records are read
        records = [await client.job_record(job_id) for job_id in job_ids]
    assert outcomes == [Outcome.COMPLETED] * 5 + [Outcome.ERROR]
    assert len(events) == 6  # one event per watch: the pushed final state
    assert {(e.reason, e.strategy, e.sent) for e in events} == {
        (DelayReason.PUSHED, Strategy.STREAM, False)
    }
    assert stats.stream_connects == 1
    assert stats.requests_sent == 6 + 1  # the starts and the one stream, nothing per job
    assert all(record["status_requests"] == 0 for record in records)


async def test_batch_watches_share_held_requests(live_server: LiveServer) -> None:
    async with VideoSimClient(live_server.url) as client:
        # Four groups of five jobs, each group ending together.
        results = await client.start_many([_spec(0.2 + (n % 4) * 0.1) for n in range(20)])
        job_ids = [result.job_id for result in results if result.job_id]
        outcomes, events = await watch_all(client, job_ids, Strategy.BATCH)
        stats = dataclasses.replace(client.stats)  # before the records are read
        records = [await client.job_record(job_id) for job_id in job_ids]
    assert outcomes == [Outcome.COMPLETED] * 20
    assert {(e.reason, e.strategy) for e in events} == {(DelayReason.PUSHED, Strategy.BATCH)}
    assert stats.stream_connects == 0
    # Jobs are asked about from their end on, a group per request: fewer requests than jobs.
    assert 4 <= stats.batch_requests <= 8
    assert stats.requests_sent == 1 + stats.batch_requests  # one start_many, the batches
    assert all(record["status_requests"] >= 1 for record in records)  # counted per job


async def test_jobs_started_one_by_one_cost_one_batch_request_per_end(
    live_server: LiveServer,
) -> None:
    """A job named only once it is due made the loop drop its held request and ask again:
    two requests per job. Named ahead, the held request carries on across the ends."""
    async with VideoSimClient(live_server.url) as client:
        watches = []
        for _ in range(8):  # each ends ~15 ms after the one before it
            started = await client.start_many([_spec(0.4)])
            job_id = started[0].job_id
            assert job_id is not None
            watches.append(asyncio.create_task(client.wait(job_id, POLICY, Strategy.BATCH)))
            await asyncio.sleep(0.01)
        outcomes = [result.outcome for result in await asyncio.gather(*watches)]
        requests = client.stats.batch_requests
    assert outcomes == [Outcome.COMPLETED] * 8
    assert requests <= 8 + 2  # one per end, give or take the first and the last


async def test_a_job_started_elsewhere_is_followed_in_batch_under_stream(
    live_server: LiveServer,
) -> None:
    async with VideoSimClient(live_server.url) as other, VideoSimClient(live_server.url) as client:
        job_id = await other.start(0.3, "completed")
        outcomes, events = await watch_all(client, [job_id, "no-such-job"], Strategy.STREAM)
    assert outcomes == [Outcome.COMPLETED, Outcome.NOT_FOUND]
    assert {e.strategy for e in events} == {Strategy.BATCH}  # not on this client's stream


async def test_push_watches_keep_their_deadline_and_cancel(live_server: LiveServer) -> None:
    async with VideoSimClient(live_server.url) as client:
        long_job = await client.start(30.0)
        cancel = asyncio.Event()
        watch = client.wait(long_job, POLICY, Strategy.STREAM, cancel=cancel)
        cancelled = asyncio.create_task(watch)
        timed_out = await client.wait(
            "special-pending-job", POLICY.replace(deadline_s=0.3), Strategy.BATCH
        )
        cancel.set()
        result = await asyncio.wait_for(cancelled, 5)
        assert client.stats.in_flight == 0  # the held batch request was dropped with its watch
    assert timed_out.outcome is Outcome.TIMED_OUT and timed_out.elapsed_s >= 0.3
    assert result.outcome is Outcome.CANCELLED


async def test_auto_picks_the_stream_asking_capabilities_once(live_server: LiveServer) -> None:
    async with VideoSimClient(live_server.url) as client:
        job_ids = [await client.start(0.2, "completed") for _ in range(3)]
        outcomes, events = await watch_all(client, job_ids, Strategy.AUTO)
        offered = await client.capabilities()
        stats = dataclasses.replace(client.stats)  # before the records are read
    assert offered.events and offered.batch_status
    assert outcomes == [Outcome.COMPLETED] * 3
    assert {e.strategy for e in events} == {Strategy.STREAM}
    assert stats.requests_sent == 3 + 1 + 1  # starts, GET /capabilities, the stream


async def test_auto_against_a_plain_server_polls_as_before(live_server_factory: Factory) -> None:
    server = live_server_factory("--plain", "--delay", "0.3")
    async with VideoSimClient(server.url) as client:
        job_id = await client.start()
        outcomes, events = await watch_all(client, [job_id], Strategy.AUTO)
        offered = await client.capabilities()
        stats = dataclasses.replace(client.stats)  # before the records are read
    assert outcomes[0] in (Outcome.COMPLETED, Outcome.ERROR)
    assert not offered.events and not offered.batch_status  # /capabilities is 404 there
    assert {e.reason for e in events} <= {DelayReason.SCHEDULE, DelayReason.FINAL}
    assert stats.stream_connects == 0 and stats.batch_requests == 0
    assert stats.requests_sent == 1 + 1 + len(events)  # start, capabilities, the polls


async def test_auto_against_the_original_api_polls_as_before() -> None:
    with OriginalApiServer(delay_s=0.3) as server:
        async with VideoSimClient(server.url) as client:
            job_id = await client.start()
            outcomes, events = await watch_all(client, [job_id], Strategy.AUTO)
            stats = dataclasses.replace(client.stats)  # before the records are read
    assert outcomes == [Outcome.COMPLETED]
    assert stats.stream_connects == 0 and stats.batch_requests == 0
    assert server.status_requests == len(events)


async def test_stream_falls_back_live_to_batch_then_to_polling(
    live_server_factory: Factory,
) -> None:
    server = live_server_factory("--plain", "--delay", "0.3")
    async with VideoSimClient(server.url) as client:
        job_id = await client.start()
        outcomes, events = await watch_all(client, [job_id], Strategy.STREAM)
        push = client.push
        stats = dataclasses.replace(client.stats)  # before the records are read
    assert outcomes[0] in (Outcome.COMPLETED, Outcome.ERROR)
    assert "HTTP 404" in (push.stream_gone or "") and "HTTP 405" in (push.batch_gone or "")
    assert stats.stream_connects == 1 and stats.batch_requests == 1  # each tried once
    assert events[-1].reason is DelayReason.FINAL  # ...then polled to the end


def _spec(duration_s: float) -> StartSpec:
    return StartSpec(duration_s, "completed")


async def test_a_push_wait_is_visible_and_its_stream_heartbeats_are_heard(
    live_server_factory: Factory,
) -> None:
    """A watch that sends nothing can still be shown alive: which route it waits on,
    since when the stream is connected, and when bytes last came (heartbeat comments
    included, which no event carries)."""
    server = live_server_factory("--events-heartbeat", "0.2")
    async with VideoSimClient(server.url) as client:
        job_id = await client.start(30, "completed")
        special = "special-pending-job"
        assert client.push_wait(job_id) is None  # nobody watches it yet
        cancel = asyncio.Event()
        watches = [
            asyncio.create_task(client.wait(job_id, POLICY.replace(deadline_s=60),
                                            Strategy.STREAM, cancel=cancel)),
            asyncio.create_task(client.wait(special, POLICY.replace(deadline_s=60),
                                            Strategy.STREAM, cancel=cancel)),
        ]  # fmt: skip

        async def until(condition: Callable[[], bool], what: str) -> None:
            deadline = asyncio.get_running_loop().time() + 15
            while not condition():
                assert asyncio.get_running_loop().time() < deadline, f"no {what}"
                await asyncio.sleep(0.02)

        def stream_wait() -> PushWait | None:
            return client.push_wait(job_id)

        await until(lambda: (w := stream_wait()) is not None and w.connected_since is not None,
                    "connected stream")  # fmt: skip
        first = stream_wait()
        assert first is not None and first.route is Route.STREAM
        await until(lambda: (w := stream_wait()) is not None and w.last_heard_at is not None
                    and first.last_heard_at is not None
                    and w.last_heard_at > first.last_heard_at + 0.3,
                    "heartbeat heard")  # fmt: skip
        # The special job was not started by this client: it is not on its stream.
        special_wait = client.push_wait(special)
        assert special_wait is not None and special_wait.route is Route.BATCH
        cancel.set()
        await asyncio.gather(*watches)
        assert client.push_wait(job_id) is None  # the watch ended
