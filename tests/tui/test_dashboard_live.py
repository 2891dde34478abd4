"""The dashboard driven like a user would, against a real server process."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from textual.widgets import Button, DataTable, Input, Select, SelectionList, Static

from client_core import SPECIAL_JOB_ID, BackoffPolicy, Jitter, Outcome, Strategy
from tests.support.live_server import LiveServer
from tests.tui.conftest import FAST_POLICY, connected, fast_settings, wait_until
from tui.app import make_app
from tui.model import JobState, SortColumn, SpawnRequest
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.policy_editor import PolicyEditorScreen
from tui.screens.spawn import SpawnScreen

SIZE = (110, 32)


def long_jobs(count: int, seconds: float = 30.0) -> SpawnRequest:
    return SpawnRequest(
        count=count,
        duration_min_s=seconds,
        duration_max_s=seconds,
        strategy=Strategy.BACKOFF,
        policy=FAST_POLICY,
    )


def quick_jobs(count: int, outcome: str = "completed") -> SpawnRequest:
    return SpawnRequest(
        count=count,
        duration_min_s=0.3,
        duration_max_s=0.3,
        outcome=outcome,
        strategy=Strategy.BACKOFF,
        policy=FAST_POLICY,
    )


async def server_record(server: LiveServer, job_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/jobs/{job_id}")
        response.raise_for_status()
        return dict(response.json())


def cell(app: object, key: str, column: SortColumn) -> str:
    table = app.table  # type: ignore[attr-defined]
    return str(table.get_cell(key, column).plain)


async def test_spawn_form_jobs_finish_with_the_servers_attempt_counts(
    live_server: LiveServer,
) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await pilot.press("n")
        assert isinstance(app.screen, SpawnScreen)
        await pilot.press("backspace", "3", "tab", "0", ".", "3")
        app.screen.query_one("#outcome", Select).value = "error"
        await pilot.click("#submit")
        assert not isinstance(app.screen, SpawnScreen)
        await wait_until(
            pilot, lambda: len(app.board) == 3 and all(v.finished for v in app.board), "3 jobs"
        )
        await pilot.pause(0.1)  # one more frame for the table
        for view in app.board:
            record = await server_record(live_server, view.job_id)
            assert view.outcome is Outcome.ERROR
            assert record["outcome"] == "error" and record["duration_s"] == 0.3
            assert record["status_requests"] == view.attempt >= 1
            assert view.requests == view.attempt + 1  # the POST /start too
            assert cell(app, view.key, SortColumn.STATUS) == "error"
            assert cell(app, view.key, SortColumn.ATTEMPT) == str(record["status_requests"])
            assert cell(app, view.key, SortColumn.OUTCOME) == "error"
        counts = str(app.summary.query_one("#counts", Static).render())
        assert "error 3" in counts


async def test_spawn_button_opens_the_form_and_the_special_job_times_out(
    live_server: LiveServer,
) -> None:
    budget = BackoffPolicy(initial_s=0.05, max_delay_s=0.1, jitter=Jitter.NONE, max_attempts=3)
    app = make_app(server_url=live_server.url, settings=fast_settings(policy=budget))
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await pilot.click("#spawn-button")
        assert isinstance(app.screen, SpawnScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, SpawnScreen)

        await pilot.press("s")
        await wait_until(
            pilot,
            lambda: SPECIAL_JOB_ID in app.board and app.board[SPECIAL_JOB_ID].attempt >= 1,
            "the first poll of the special job",
        )
        special = app.board[SPECIAL_JOB_ID]
        assert special.status == "pending"
        await wait_until(pilot, lambda: special.finished, "the special job's budget to run out")
        assert special.outcome is Outcome.TIMED_OUT
        assert (special.status, special.attempt, special.requests) == ("pending", 3, 3)
        await pilot.pause(0.1)
        assert cell(app, SPECIAL_JOB_ID, SortColumn.OUTCOME) == "timed_out"
        assert cell(app, SPECIAL_JOB_ID, SortColumn.STATUS) == "pending"

        await pilot.press("r")  # retry: a new watch of the same job, on its own row
        await wait_until(pilot, lambda: f"{SPECIAL_JOB_ID}#2" in app.board, "the retry")
        await wait_until(pilot, lambda: app.board[f"{SPECIAL_JOB_ID}#2"].finished, "the retry")


async def test_cancel_stops_polling_and_filter_shows_matching_rows(
    live_server: LiveServer,
) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        app.spawn(long_jobs(1))
        await wait_until(pilot, lambda: len(app.board) == 1, "the long job")
        long_key = next(iter(app.board.jobs))
        app.spawn(quick_jobs(2))
        await wait_until(
            pilot,
            lambda: len(app.board.counts()) and app.board.counts()[JobState.COMPLETED] == 2,
            "the quick jobs",
        )
        await wait_until(pilot, lambda: app.board[long_key].attempt >= 2, "polls of the long job")

        table = app.table
        await pilot.pause(0.1)
        assert table.row_count == 3
        table.move_cursor(row=table.get_row_index(long_key))
        await pilot.press("c")
        long_job = app.board[long_key]
        assert long_job.outcome is Outcome.CANCELLED
        before = (await server_record(live_server, long_job.job_id))["status_requests"]
        await pilot.pause(0.6)  # several poll intervals: a live watch would have polled again
        after = (await server_record(live_server, long_job.job_id))["status_requests"]
        assert after == before
        assert cell(app, long_key, SortColumn.OUTCOME) == "cancelled"

        shown: dict[str | None, set[str]] = {}
        for _ in range(len(JobState) + 1):  # all -> pending -> ... -> all
            await pilot.press("f")
            await pilot.pause(0.1)
            shown[app.state_filter] = set(table.shown_keys())
        completed = {v.key for v in app.board if v.state is JobState.COMPLETED}
        assert shown[JobState.COMPLETED] == completed and len(completed) == 2
        assert shown[JobState.CANCELLED] == {long_key}
        # the long job's status is still pending: the pending filter shows it (issue 9, 16)
        assert shown[JobState.PENDING] == {long_key} and shown[JobState.FAILED] == set()
        assert shown[None] == set(app.board.jobs)
        assert "filter all" in str(app.summary.query_one("#view", Static).render())

        await pilot.press("x")
        await pilot.pause(0.1)
        assert len(app.board) == 0 and table.row_count == 0


async def test_detail_view_shows_poll_history_and_the_server_record(
    live_server: LiveServer,
) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        app.spawn(quick_jobs(1, outcome="completed"))
        await wait_until(
            pilot, lambda: len(app.board) == 1 and next(iter(app.board)).finished, "the job"
        )
        view = next(iter(app.board))
        await pilot.pause(0.1)
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        detail = app.screen
        history = detail.query_one("#history", DataTable)
        record = detail.query_one("#record", Static)
        await wait_until(pilot, lambda: "status_requests" in str(record.render()), "the record")
        # the engine sends the followed job's history with its next delta
        await wait_until(pilot, lambda: history.row_count == view.attempt, "the poll history")
        last_row = [str(cell.plain) for cell in history.get_row_at(history.row_count - 1)]
        assert last_row[1:4] == [str(view.attempt), "200", "completed"]
        server = await server_record(live_server, view.job_id)
        record_text = str(record.render())
        assert f"status_requests     {server['status_requests']}" in record_text
        assert "detection_lag_s" in record_text
        summary = str(detail.query_one("#detail-summary", Static).render())
        assert view.job_id in summary and "completed" in summary

        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


async def test_policy_editor_refuses_a_bad_value_and_saves_a_good_one(
    live_server: LiveServer,
) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert isinstance(app.screen, PolicyEditorScreen)
        editor = app.screen
        multiplier = editor.query_one("#multiplier", Input)
        multiplier.focus()
        multiplier.value = ""
        await pilot.press("0", ".", "5")
        await pilot.pause()
        error = str(editor.query_one("#form-error", Static).render())
        assert "multiplier must be >= 1" in error
        assert editor.query_one("#submit", Button).disabled
        await pilot.press("ctrl+s")  # refused: the editor stays open, defaults unchanged
        assert app.screen is editor
        assert app.defaults.policy == FAST_POLICY

        multiplier.value = "3"
        editor.query_one("#max_attempts", Input).value = "4"
        await pilot.pause()
        assert not editor.query_one("#submit", Button).disabled
        schedule = str(editor.query_one("#schedule", Static).render())
        assert "delays: 0.05 0.15 0.20 0.20" in schedule  # 0.05 x3, capped at 0.2
        assert "gives up after poll 4" in schedule
        await pilot.press("ctrl+s")
        assert app.screen is not editor
        assert app.defaults.policy.multiplier == 3.0
        assert app.defaults.policy.max_attempts == 4


async def test_cursor_stays_on_its_job_while_rows_resort(live_server: LiveServer) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        app.spawn(long_jobs(8, seconds=20.0))  # live for the whole test, polling every 0.2 s
        await wait_until(pilot, lambda: app.table.row_count == 8, "8 rows")
        while app.sort_column is not SortColumn.NEXT:  # countdowns re-sort every frame
            await pilot.press("o")
        table = app.table
        table.move_cursor(row=3)
        await pilot.pause(0.1)
        followed = table.cursor_key
        assert followed is not None
        orders = set()
        for _ in range(100):  # until the rows have moved a few times (slower on a busy machine)
            await pilot.pause(0.1)
            orders.add(tuple(table.shown_keys()))
            assert table.cursor_key == followed
            if len(orders) > 3:
                break
        assert len(orders) > 1  # the rows did move under the cursor
        await pilot.press("O")
        await pilot.pause(0.1)
        assert table.cursor_key == followed
        assert "sort next desc" in str(app.summary.query_one("#view", Static).render())


async def test_server_going_away_shows_unreachable_and_polling_resumes(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory("--delay", "0.3")
    app = make_app(server_url=server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await wait_until(pilot, lambda: app.health.ok is True, "a healthy server")
        app.spawn(long_jobs(3, seconds=60.0))
        await wait_until(
            pilot,
            lambda: len(app.board) == 3 and all(v.attempt >= 1 for v in app.board),
            "the first polls",
        )
        server.kill()
        await wait_until(pilot, lambda: "unreachable, retrying" in app.sub_title, "the header")
        health = app.summary.query_one("#health", Static)
        await wait_until(
            pilot, lambda: "unreachable, retrying" in str(health.render()), "the summary bar"
        )
        assert not any(v.finished for v in app.board)  # watches wait, they do not give up

        server.start()
        await wait_until(pilot, lambda: app.health.ok is True, "the server to be back")
        # The restarted server lost its jobs: the watches poll again and learn so.
        await wait_until(pilot, lambda: all(v.finished for v in app.board), "watches to resume")
        assert {v.outcome for v in app.board} == {Outcome.NOT_FOUND}
        app.spawn(quick_jobs(2))
        await wait_until(
            pilot, lambda: app.board.counts()[JobState.COMPLETED] == 2, "new jobs to complete"
        )


async def test_spawning_many_keeps_keys_working(live_server: LiveServer) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        on_the_board_at_keypress: list[int] = []
        cycle_filter = app.action_cycle_filter

        def spy() -> None:
            on_the_board_at_keypress.append(len(app.board))
            cycle_filter()

        app.action_cycle_filter = spy  # type: ignore[method-assign]
        app.spawn(quick_jobs(150))
        await pilot.press("f")
        assert app.state_filter is JobState.PENDING
        assert on_the_board_at_keypress[0] < 150  # handled while starts were still going out
        await wait_until(
            pilot, lambda: app.board.counts()[JobState.COMPLETED] == 150, "150 jobs to complete"
        )
        assert app.board.starting == 0 and app.board.start_failures == 0


async def test_compare_runs_one_batch_under_two_setups(live_server: LiveServer) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=(110, 34)) as pilot:
        await connected(pilot)
        await pilot.press("m")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.query_one("#compare-count", Input).value = "3"
        screen.query_one("#compare-duration", Input).value = "0.3-0.6"
        setups = screen.query_one("#compare-presets", SelectionList)
        setups.deselect_all()
        setups.select("long-poll")
        setups.select("hinted")
        await pilot.press("ctrl+r")
        table = screen.query_one("#compare-table", DataTable)
        status = screen.query_one("#compare-status", Static)
        await wait_until(pilot, lambda: table.row_count == 2, f"the comparison ({status.render()})")
        rows = {str(table.get_row_at(n)[0].plain): table.get_row_at(n) for n in range(2)}
        assert set(rows) == {"hinted", "long-poll"}
        assert str(status.render()).startswith("3 jobs per set-up, numbers from the server's")
        for row in rows.values():
            assert float(row[1].plain) >= 1.0  # status requests per job
        takeaway = str(screen.query_one("#takeaway", Static).render())
        assert "requests per job" in takeaway
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


async def put_faults(server: LiveServer, faults: dict[str, float]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        (await http.put("/admin/faults", json=faults)).raise_for_status()


async def test_summary_counts_the_429_and_503_answers(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory("--delay", "0.5")
    app = make_app(server_url=server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        app.spawn(long_jobs(3))
        await wait_until(
            pilot, lambda: len(app.board) == 3 and all(v.attempt for v in app.board), "polls"
        )
        await put_faults(server, {"unavailable_rate": 1.0, "retry_after_s": 1})
        await wait_until(pilot, lambda: app.board.unavailable >= 3, "503 answers")
        counts = app.summary.query_one("#counts", Static)
        await wait_until(pilot, lambda: "503 " in str(counts.render()), "the 503 count")
        assert "429" not in str(counts.render())  # none of those yet
        await put_faults(server, {"rate_limit_rps": 0.5})
        await wait_until(pilot, lambda: "429 " in str(counts.render()), "the 429 count")
        codes = {app.table.get_cell(v.key, SortColumn.HTTP).plain for v in app.board}
        assert any(code.startswith(("429", "503")) for code in codes)  # the HTTP column too


async def test_the_api_key_reaches_the_engine_once_through_the_typed_options(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """--api-key, read by the command line, rides the client options to the engine's
    process as one typed struct: its starts and polls are let in."""
    from tui.cli import build_settings, parse_args

    server = live_server_factory("--api-key", "s3cret", "--delay", "0.3")
    cli = build_settings(parse_args(["--server-url", server.url, "--api-key", "s3cret"]))
    assert cli.client_options.api_key == "s3cret"
    settings = fast_settings(client_options=cli.client_options)
    app = make_app(server_url=server.url, settings=settings)
    async with app.run_test(size=(110, 32)) as pilot:
        await connected(pilot)
        app.spawn(quick_jobs(2))
        await wait_until(
            pilot, lambda: len(app.board) == 2 and all(v.finished for v in app.board), "2 ends"
        )
        assert {view.outcome for view in app.board} == {Outcome.COMPLETED}
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.post("/start", json={})
    assert refused.status_code == 401  # without the key, the server says no
