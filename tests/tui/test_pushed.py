"""Pushed states in the dashboard: the stream and batch strategies in the forms, their
events shown like polls (reason ``pushed``), and the compare view running them."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import httpx
from textual.widgets import Select, SelectionList, Static

from client_core import DelayReason, Outcome, PollEvent, Strategy, VideoSimClient
from client_core.comparison import draw_batch, preset_named, presets, run_comparison
from tests.support.live_server import LiveServer
from tests.tui.conftest import (
    FAST_POLICY,
    connected,
    fast_settings,
    frozen_dashboard,
    poll,
    wait_until,
)
from tui.app import make_app
from tui.model import JobBoard, JobSpec, SortColumn, SpawnRequest
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.policy_editor import PolicyEditorScreen
from tui.screens.spawn import SpawnScreen
from tui.widgets.job_table import cell_text

PUSHED = (Strategy.STREAM, Strategy.BATCH)


def pushed_end(job_id: str, *, batch_requests: int | None) -> PollEvent:
    """The one event of a pushed watch: from the stream (no request) or a batch answer
    (``batch_requests`` batch requests named the job)."""
    event = poll(
        job_id,
        batch_requests or 1,
        "completed",
        outcome=Outcome.COMPLETED,
        strategy=Strategy.BATCH if batch_requests else Strategy.STREAM,
    )
    return replace(event, reason=DelayReason.PUSHED, sent=batch_requests is not None)


def test_a_state_pushed_by_the_stream_costs_no_request_and_skips_no_poll() -> None:
    board = JobBoard()
    board.add("s", "s", JobSpec(strategy=Strategy.STREAM), 0.0)
    board.add("b", "b", JobSpec(strategy=Strategy.BATCH), 0.0)
    assert board.apply("s", pushed_end("s", batch_requests=None), 2.0)
    assert board.apply("b", pushed_end("b", batch_requests=3), 2.0)
    stream, batch = board["s"], board["b"]
    assert (stream.attempt, stream.skipped, stream.requests) == (0, 0, 1)  # the start only
    assert (batch.attempt, batch.skipped, batch.requests) == (3, 0, 4)
    assert stream.reason is DelayReason.PUSHED and stream.outcome is Outcome.COMPLETED
    assert [record.reason for record in stream.history] == [DelayReason.PUSHED]
    assert board.rate.series(3.0, seconds=3) == [2.0, 0.0, 3.0]  # 2 starts, then the batch's 3


def test_a_pushed_watch_waits_for_its_push_not_a_poll() -> None:
    board = JobBoard()
    for strategy in (*PUSHED, Strategy.AUTO):
        board.add(str(strategy), "job", JobSpec(strategy=strategy), 0.0)
    assert cell_text(board["stream"], SortColumn.NEXT, 1.0) == "push"
    assert cell_text(board["batch"], SortColumn.NEXT, 1.0) == "push"
    assert cell_text(board["auto"], SortColumn.NEXT, 1.0) == "..."  # which one, not known yet


async def test_the_forms_offer_stream_and_batch() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 40)) as pilot:
        await connected(pilot)
        await pilot.press("n")
        spawn = app.screen
        assert isinstance(spawn, SpawnScreen)
        spawn.query_one("#strategy", Select).value = Strategy.STREAM  # refused if not offered
        assert spawn.request().strategy is Strategy.STREAM
        await pilot.press("escape")
        await pilot.press("p")
        assert isinstance(app.screen, PolicyEditorScreen)
        app.screen.query_one("#strategy", Select).value = Strategy.BATCH
        app.screen.action_submit()
        await pilot.pause()
        assert app.defaults.strategy is Strategy.BATCH


async def test_a_stream_job_spawned_from_the_form_shows_pushed_in_its_history(
    live_server: LiveServer,
) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=(110, 32)) as pilot:
        await connected(pilot)
        app.spawn(
            SpawnRequest(
                count=2,
                duration_min_s=0.3,
                duration_max_s=0.3,
                outcome="completed",
                strategy=Strategy.STREAM,
                policy=FAST_POLICY,
            )
        )
        await wait_until(
            pilot, lambda: len(app.board) == 2 and all(v.finished for v in app.board), "2 ends"
        )
        view = next(iter(app.board))
        assert view.outcome is Outcome.COMPLETED and view.reason is DelayReason.PUSHED
        assert view.strategy is Strategy.STREAM and view.attempt == 0 and view.skipped == 0
        app.open_detail(view.key)
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        reason = app.screen.query_one("#poll-reason", Static)
        await wait_until(pilot, lambda: "pushed" in str(reason.render()), "the pushed reason")


async def test_compare_runs_stream_and_batch_with_their_lags() -> None:
    """Each set-up on its own client: the stream set-up's pushes never reach the backoff
    set-up's jobs, so the server records each job's end by its own set-up's channel."""
    assert {"stream", "batch"} <= {preset.name for preset in presets()}
    batch = draw_batch(3, seed=1, low_s=0.2, high_s=0.4)
    chosen = [preset_named("stream"), preset_named("batch"), preset_named("backoff")]
    with LiveServer() as server:  # its own: the channels of every job on it are counted
        runs = await run_comparison(lambda: VideoSimClient(server.url), chosen, batch,
                                    lambda n: None)  # fmt: skip
        async with httpx.AsyncClient(base_url=server.url) as http:
            jobs = (await http.get("/jobs", params={"limit": 100})).json()["jobs"]
    stream, batch_run, backoff = runs
    assert stream.strategy == "stream" and batch_run.strategy == "batch"
    assert (stream.used, batch_run.used, backoff.used) == (
        {"stream": 3},
        {"batch": 3},
        {"backoff": 3},
    )
    for run in runs:
        assert run.jobs == 3 and run.missed == 0
        assert len(run.lags) == 3  # from the server's record, whatever the channel
    for run in (stream, batch_run):
        assert run.requests_per_job <= 1.0
    assert stream.status_requests == [0, 0, 0]
    assert all(requests >= 1 for requests in backoff.status_requests)
    channels = Counter(job["first_final_channel"] for job in jobs)
    assert channels == {"stream": 3, "batch": 3, "status": 3}


async def test_the_compare_view_lists_stream_and_batch() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(130, 40)) as pilot:
        await connected(pilot)
        app.push_screen(CompareScreen(app.compare))
        await pilot.pause()
        chosen = app.screen.query_one("#compare-presets", SelectionList).selected
        assert {"stream", "batch"} <= set(chosen)


async def test_an_auto_watch_waiting_for_a_push_shows_how_it_is_watched(
    live_server: LiveServer,
) -> None:
    """The special job under auto (no budget) is followed in batch, a long job on the
    event stream: neither sends a poll, so the rows say "push" with the route, and the
    detail view says how the stream is doing."""
    app = make_app(server_url=live_server.url, settings=fast_settings(health_interval_s=0.1))
    async with app.run_test(size=(110, 32)) as pilot:
        await connected(pilot)
        no_budget = replace(FAST_POLICY, max_attempts=None, deadline_s=None)
        app.set_defaults(Strategy.AUTO, no_budget)
        await pilot.press("s")
        long_job = SpawnRequest(
            count=1,
            duration_min_s=60,
            duration_max_s=60,
            outcome="completed",
            strategy=Strategy.AUTO,
            policy=no_budget,
        )
        app.spawn(long_job)
        await wait_until(pilot, lambda: len(app.board) == 2, "two rows")
        special = app.board["special-pending-job"]
        job = next(view for view in app.board if view.key != special.key)
        await wait_until(pilot, lambda: special.strategy is Strategy.BATCH, "special on batch")
        await wait_until(pilot, lambda: job.strategy is Strategy.STREAM, "the job on the stream")
        now = app.clock()
        assert cell_text(special, SortColumn.NEXT, now) == cell_text(job, SortColumn.NEXT, now)
        assert cell_text(job, SortColumn.NEXT, now) == "push"
        app.open_detail(job.key)
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        summary = app.screen.query_one("#detail-summary", Static)
        await wait_until(pilot, lambda: "event stream connected" in str(summary.render()),
                         "the stream's state")  # fmt: skip
        assert "watched by push (stream)" in str(summary.render())
