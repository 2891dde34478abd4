"""The polling engine itself, on a scripted client: what its deltas carry, and how it
probes a server that has no health route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from msgspec import UNSET

from client_core import (
    BackoffPolicy,
    ClientOptions,
    HealthCheck,
    Outcome,
    PollEvent,
    RequestRejected,
    Strategy,
    VideoSimClient,
)
from tests.tui.conftest import FakeClient, connected, fast_settings, poll, wait_until
from tui.app import make_app
from tui.engine import MAX_ROWS_PER_DELTA, ORIGINAL_API, Engine
from tui.engine_controller import MAX_CRASHES, EngineController, EngineNotReady
from tui.engine_protocol import (
    Cancel,
    Configure,
    Delta,
    EngineMessage,
    FetchRecord,
    Follow,
    Health,
    Ready,
    RecordAnswer,
    StartJobs,
    Watch,
)
from tui.model import JobSpec

CONFIG = Configure(
    url="http://127.0.0.1:1",
    client_options=ClientOptions(),
    batch_interval_s=0.02,
    health_interval_s=0.02,
    history_length=50,
    start_concurrency=2,
    start_deadline_s=1.0,
)


class SteppedClient:
    """Jobs start at once; each watch polls whenever the test releases ``step``."""

    circuit_open = False
    profile = None  # videosim's own protocol

    def __init__(self, *, health_404: bool = False) -> None:
        self.step = asyncio.Event()
        self.health_404 = health_404
        self.started = 0

    def push_wait(self, job_id: str) -> None:
        return None  # its watches poll

    async def health(self) -> HealthCheck:
        # with health_404, an original-API server: /healthz missing, /status answering
        return HealthCheck(ok=True, latency_s=0.001, health_route=not self.health_404)

    async def start(
        self, duration_s: float | None = None, outcome: str | None = None, **_: object
    ) -> str:
        self.started += 1
        return f"job-{self.started}"

    async def job_record(self, job_id: str) -> dict[str, Any]:
        if job_id == "gone":
            raise RequestRejected("cannot read job gone: Job not found", http_status=404)
        return {"job_id": job_id, "status_requests": 3}

    async def watch(
        self, job_id: str, policy: BackoffPolicy, strategy: Strategy
    ) -> AsyncIterator[PollEvent]:
        for attempt in range(1, 100):
            await self.step.wait()
            self.step.clear()
            yield poll(job_id, attempt, "pending", delay=5.0)


class Harness:
    def __init__(self, client: SteppedClient) -> None:
        self.messages: list[EngineMessage] = []
        self.engine = Engine(client, CONFIG, self.messages.append, make_client=SteppedClient)  # type: ignore[arg-type]
        self.task: asyncio.Task[None] | None = None

    def deltas(self) -> list[Delta]:
        return [m for m in self.messages if isinstance(m, Delta)]

    async def settle(self) -> list[Delta]:
        """Let the engine send what it has; returns the deltas sent meanwhile."""
        before = len(self.deltas())
        await asyncio.sleep(0.1)
        return self.deltas()[before:]


@contextlib.asynccontextmanager
async def running(client: SteppedClient) -> AsyncIterator[Harness]:
    harness = Harness(client)
    harness.task = asyncio.create_task(harness.engine.run())
    try:
        yield harness
    finally:
        harness.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await harness.task


async def test_deltas_carry_new_rows_whole_then_only_what_changed() -> None:
    client = SteppedClient()
    async with running(client) as harness:
        harness.engine.handle(StartJobs([JobSpec(duration_s=9.0)]))
        sent = await harness.settle()
        assert isinstance(harness.messages[0], Ready)
        rows = [row for delta in sent for key, row in delta.rows.items() if key == "job-1"]
        assert rows and rows[0].job_id == "job-1" and rows[0].requests == 1
        client.step.set()
        sent = await harness.settle()
        changed = [delta.rows["job-1"] for delta in sent if "job-1" in delta.rows]
        assert len(changed) == 1
        assert changed[0].spec is UNSET and changed[0].job_id is UNSET
        assert changed[0].attempt == 1 and changed[0].requests == 2
        assert all("job-1" not in delta.rows for delta in await harness.settle())
        harness.engine.handle(Cancel(["job-1"]))
        sent = await harness.settle()
        assert [delta.rows["job-1"].outcome for delta in sent if "job-1" in delta.rows] == [
            Outcome.CANCELLED
        ]


async def test_an_adopted_watch_keeps_its_counters() -> None:
    client = SteppedClient()
    async with running(client) as harness:
        harness.engine.handle(
            Watch("k", "job-9", JobSpec(), 100.0, attempt=4, skipped=1, requests=5)
        )
        client.step.set()
        sent = await harness.settle()
        (row,) = [delta.rows["k"] for delta in sent if "k" in delta.rows]
        assert row.attempt == 5 and row.requests == 6 and row.skipped is UNSET


async def test_the_followed_job_sends_its_history_once_then_what_is_new() -> None:
    client = SteppedClient()
    async with running(client) as harness:
        harness.engine.handle(StartJobs([JobSpec()]))
        client.step.set()
        await harness.settle()
        harness.engine.handle(Follow("job-1"))
        sent = await harness.settle()
        (first,) = [delta.history for delta in sent if delta.history is not None]
        assert first.reset and [r.attempt for r in first.records] == [1]
        client.step.set()
        sent = await harness.settle()
        (second,) = [delta.history for delta in sent if delta.history is not None]
        assert not second.reset and [r.attempt for r in second.records] == [2]


async def test_a_server_without_a_health_route_is_reported_as_the_original_api() -> None:
    async with running(SteppedClient(health_404=True)) as harness:
        sent = await harness.settle()
        healths = [delta.health for delta in sent if delta.health is not None]
        assert healths and healths[-1].ok is True and healths[-1].note == ORIGINAL_API


def test_a_flood_of_new_rows_goes_out_in_several_deltas() -> None:
    engine = Engine(SteppedClient(), CONFIG, lambda message: None, make_client=SteppedClient)  # type: ignore[arg-type]
    for n in range(MAX_ROWS_PER_DELTA + 500):
        engine.board.add(f"job-{n}", f"job-{n}", JobSpec(), 1.0)
    first, second = engine.delta(), engine.delta()
    assert first is not None and second is not None
    assert len(first.rows) == MAX_ROWS_PER_DELTA and len(second.rows) == 500
    assert not set(first.rows) & set(second.rows)
    assert engine.delta() is None


async def test_the_header_says_when_the_server_is_the_original_api() -> None:
    class OriginalApiClient(FakeClient):
        async def health(self) -> HealthCheck:
            return HealthCheck(ok=True, latency_s=0.002, health_route=False)

    app = make_app(
        client_factory=OriginalApiClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(),
    )
    async with app.run_test() as pilot:
        await connected(pilot)
        await wait_until(pilot, lambda: ORIGINAL_API in app.sub_title, "the header's note")
        assert "ok" in app.sub_title and "unreachable" not in app.sub_title


async def test_job_records_are_fetched_by_the_engine_and_answered_by_request() -> None:
    async with running(SteppedClient()) as harness:
        harness.engine.handle(FetchRecord(1, "job-7"))
        harness.engine.handle(FetchRecord(2, "gone"))
        await harness.settle()
        answers = {m.request: m for m in harness.messages if isinstance(m, RecordAnswer)}
        assert answers[1].record == {"job_id": "job-7", "status_requests": 3}
        assert answers[1].error is None
        assert answers[2].record is None
        assert answers[2].error == "cannot read job gone: Job not found"


async def test_the_detail_view_opens_no_client_in_the_dashboard_process() -> None:
    """The record comes through the engine: the dashboard's own process never builds a
    client for it (~30 ms on the UI loop, then every request's CPU)."""
    built: list[str] = []

    class CountingClient(FakeClient):
        def __init__(self, url: str) -> None:
            super().__init__(url)
            built.append(url)

    app = make_app(
        client_factory=CountingClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(),
    )
    async with app.run_test() as pilot:
        await connected(pilot)
        key = app.watch_existing("job-3", JobSpec())
        assert key is not None
        app.open_detail(key)
        await pilot.pause()
        record = app.screen.query_one("#record")
        await wait_until(pilot, lambda: "status_requests" in str(record.render()), "the record")
        assert len(built) == 1  # the engine's, and no other


async def test_starts_lost_with_a_crashed_engine_are_told_not_silently_dropped() -> None:
    app = make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(),
    )
    async with app.run_test() as pilot:
        await connected(pilot)
        app.board.starting = 7  # asked of the engine, not answered yet
        app.engine_stopped("exit code -9: no message", restarting=True)
        await pilot.pause()
        assert app.board.starting == 0
        (toast,) = [n.message for n in app._notifications if "polling engine" in n.message]
        assert "7 start(s) not answered were lost" in toast
        assert any("7 start(s) lost" in entry.message for entry in app.event_log)


async def test_a_new_latency_alone_leaves_the_header_as_it_was() -> None:
    """The header is a layout pass (a whole-screen repaint) when it changes; the latency,
    new with every health probe, shows in the summary bar only."""
    app = make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(health_interval_s=3600.0),
    )
    async with app.run_test() as pilot:
        await connected(pilot)
        health = app.query_one("#health")
        await wait_until(pilot, lambda: "ok 4 ms" in str(health.render()), "the engine's probe")
        title = app.sub_title
        app.engine_delta(Delta(health=Health(ok=True, latency_s=0.012)))
        app.refresh_view()
        await pilot.pause()
        assert app.sub_title == title and title.endswith(" - ok")
        assert "server ok 12 ms" in str(health.render())


async def test_an_engine_that_keeps_dying_is_restarted_until_the_fifth_death_in_a_minute() -> None:
    """The controller restarts a dead engine; five deaths within a minute and it stops."""
    stops: list[bool] = []
    fifth = asyncio.Event()

    class Events:
        def engine_delta(self, delta: Delta) -> None:
            raise AssertionError("no engine ever ran")

        def engine_ready(self) -> None:
            raise AssertionError("no engine ever connected")

        def engine_stopped(self, reason: str, *, restarting: bool) -> None:
            assert "no client today" in reason
            stops.append(restarting)
            if len(stops) == MAX_CRASHES:
                fifth.set()

    def no_client(url: str) -> VideoSimClient:
        raise OSError("no client today")

    controller = EngineController(CONFIG, Events(), client_factory=no_client)
    await controller.start()
    await asyncio.wait_for(fifth.wait(), 30)
    assert stops == [True] * (MAX_CRASHES - 1) + [False]
    assert not controller.connected
    with pytest.raises(EngineNotReady):
        await controller.fetch_record("job-1")
    await controller.stop()
