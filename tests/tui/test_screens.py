"""The dashboard's screens and forms driven with the pilot, on the fake client (no server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.content import Content
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, DataTable, Footer, Input, Select, SelectionList, Static
from textual_plotext import PlotextPlot

from client_core import SPECIAL_JOB_ID, DelayReason, Strategy
from client_core.comparison import PolicyRun
from tests.tui.conftest import (
    JOB_DONE,
    FakeClient,
    FrozenClock,
    compare_runs,
    connected,
    fast_settings,
    frozen_dashboard,
    synthetic_batch,
    wait_until,
)
from tests.tui.original_api import OriginalApiServer
from tui.app import VideoSimApp, make_app
from tui.model import PollRecord, SortColumn
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.policy_editor import PolicyEditorScreen
from tui.screens.spawn import SpawnScreen
from tui.widgets.summary_bar import ServerHealth, view_text

SIZE = (110, 34)


async def test_policy_preview_lists_one_delay_per_allowed_poll() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert isinstance(app.screen, PolicyEditorScreen)
        app.screen.query_one("#strategy", Select).value = Strategy.BACKOFF
        app.screen.query_one("#max_attempts", Input).value = "5"
        app.screen.query_one("#jitter_ratio", Input).value = "0.1"
        await pilot.pause()
        preview = str(app.screen.query_one("#schedule", Static).render())
        delays_line, polls_line = preview.splitlines()
        assert len(delays_line.removeprefix("delays").split(":")[1].split()) == 5 + 1  # and "s"
        assert polls_line.endswith("gives up after poll 5")


async def test_policy_preview_says_what_the_chosen_strategy_will_do() -> None:
    """auto with a budget long-polls, without one it waits for a push: the preview says
    which, not the backoff schedule alone; the footer names the Save button."""
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PolicyEditorScreen)
        schedule = screen.query_one("#schedule", Static)

        async def preview(strategy: Strategy, attempts: str) -> str:
            screen.query_one("#strategy", Select).value = strategy
            screen.query_one("#max_attempts", Input).value = attempts
            await pilot.pause()
            return str(schedule.render())

        budgeted = await preview(Strategy.AUTO, "5")
        assert budgeted.startswith("auto with a budget of 5 polls: long-polls")
        assert budgeted.splitlines()[-1].endswith("gives up after poll 5")
        assert (await preview(Strategy.AUTO, "")).startswith(
            "no poll per job: the end is pushed on the event stream, else held batch"
        )
        assert (await preview(Strategy.BATCH, "")).startswith("no poll per job: one held batch")
        assert (await preview(Strategy.LONG_POLL, "")).startswith("each poll is held")
        assert (await preview(Strategy.BACKOFF, "")).startswith("delays")
        assert footer_labels(screen) == {"esc Cancel", "^s Save"}


async def run_compare(
    pilot: Pilot[None], count: str, setups: list[str], duration: str = "0.3"
) -> CompareScreen:
    app = await connected(pilot)
    await pilot.press("m")
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    screen.query_one("#compare-count", Input).value = count
    screen.query_one("#compare-duration", Input).value = duration
    choice = screen.query_one("#compare-presets", SelectionList)
    choice.deselect_all()
    for name in setups:
        choice.select(name)
    await pilot.press("ctrl+r")
    return screen


def compare_status(screen: CompareScreen) -> str:
    return str(screen.query_one("#compare-status", Static).render())


async def test_compare_measures_on_the_client_when_the_server_keeps_no_records() -> None:
    """The original ignores the duration asked for (here 0.3 s; its jobs last 3 s) and
    offers no push: the lag is a bound from the answers, each set-up shows that it fell
    back to polling, and the closing sentence claims nothing the figures do not show."""
    with OriginalApiServer(delay_s=3.0) as server:
        app = make_app(server_url=server.url, settings=fast_settings())
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_compare(pilot, "3", ["fixed 1s", "stream"])
            table = screen.query_one("#compare-table", DataTable)
            await wait_until(
                pilot, lambda: table.row_count == 2, f"results ({compare_status(screen)})"
            )
            assert "counted by this client" in compare_status(screen)
            assert "at most the time from the last pending answer" in compare_status(screen)
            rows = [[cell.plain for cell in table.get_row_at(row)] for row in range(2)]
            assert [row[0] for row in rows] == ["fixed 1s", "stream -> backoff"]
            fixed = rows[0]
            assert float(fixed[1]) >= 3.0  # requests per job: a poll a second for 3 s
            assert fixed[3].startswith("<=") and fixed[3].endswith("s")
            # Asked 0.3 s, seen after ~3 s: the old figure was >= 2.7 s; a poll a second
            # bounds the truth by about a second.
            assert float(fixed[3][2:-1]) < 2.0
            takeaway = str(screen.query_one("#takeaway", Static).render())
            assert "The server offered no help: stream fell back to the backoff" in takeaway
            assert "cut" not in takeaway
            assert not screen.query_one("#compare-run", Button).disabled


async def test_the_compare_view_refuses_what_it_cannot_read_and_keeps_its_results() -> None:
    app = offline_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        count = screen.query_one("#compare-count", Input)
        for typed, message in (
            ("1e9", "jobs: a whole number from 1 to 500 (got '1e9')"),
            ("abc", "jobs: a whole number from 1 to 500 (got 'abc')"),
            ("-1", "jobs: a whole number from 1 to 500 (got -1)"),
        ):
            count.value = typed
            await pilot.press("ctrl+r")
            assert compare_status(screen) == f"Cannot run: {message}"
        count.value = "2"
        screen.query_one("#compare-seed", Input).value = "1.5"
        await pilot.press("ctrl+r")
        assert compare_status(screen) == "Cannot run: seed: a whole number (got '1.5')"
        screen.query_one("#compare-seed", Input).value = "-3"  # any integer seeds a batch
        runs = [PolicyRun("backoff", "backoff", [3, 4], [0.4, 0.6], [0.1, 0.2])]
        screen.show_results(runs)
        await pilot.press("escape")
        await pilot.press("m")
        again = app.screen
        assert isinstance(again, CompareScreen) and again is not screen
        await pilot.pause()
        assert again.query_one("#compare-seed", Input).value == "-3"
        assert again.query_one("#compare-table", DataTable).row_count == 1


async def test_a_failed_set_up_cancels_the_others_and_its_failure_stays_shown() -> None:
    # Six starts, the server takes five: the sixth is refused while the others poll.
    with OriginalApiServer(delay_s=600, max_jobs=5, refusal_delay_s=0.5) as server:
        app = make_app(server_url=server.url, settings=fast_settings())
        async with app.run_test(size=SIZE) as pilot:
            screen = await run_compare(pilot, "2", ["original", "fixed 1s", "hinted"])
            run_button = screen.query_one("#compare-run", Button)
            await wait_until(pilot, lambda: not run_button.disabled, "the run to end")
            failure = compare_status(screen)
            assert failure.startswith("The comparison failed: ") and "no more jobs" in failure
            assert server.status_requests > 0  # watches were polling when the start failed
            polled = server.status_requests
            await pilot.pause(1.5)  # every watch left behind would have polled by now
            assert server.status_requests == polled
            assert compare_status(screen) == failure


async def test_leaving_the_compare_view_stops_its_watches() -> None:
    with OriginalApiServer(delay_s=600) as server:
        app = make_app(server_url=server.url, settings=fast_settings())
        async with app.run_test(size=SIZE) as pilot:
            await run_compare(pilot, "2", ["fixed 1s", "hinted"])
            await wait_until(pilot, lambda: server.status_requests >= 4, "the watches to poll")
            await pilot.press("escape")
            assert not isinstance(app.screen, CompareScreen)
            await pilot.pause(0.5)  # cancellation crosses to the engine's loop
            polled = server.status_requests
            await pilot.pause(1.5)
            assert server.status_requests == polled


def offline_dashboard() -> VideoSimApp:
    """A dashboard that never connects: the server is "not ready yet" for as long as needed."""
    return make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        settings=fast_settings(connect=False),
        clock=FrozenClock(),
    )


def form_error(app: VideoSimApp) -> str:
    return str(app.screen.query_one("#form-error", Static).render())


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("3601", "duration: at most 3600 s, the server's limit (got 3601)"),
        ("1e9", "duration: at most 3600 s, the server's limit (got 1e9)"),
        ("1-inf", "duration: a number of seconds, or a range like 1-5 (got '1-inf')"),
        ("nan", "duration: a number of seconds, or a range like 1-5 (got 'nan')"),
        ("5-1", "duration: a range goes from low to high, e.g. 1-5"),
    ],
)
async def test_spawn_form_refuses_what_the_server_would_and_stays_open(
    typed: str, message: str
) -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await pilot.press("n", "tab", *typed)
        assert form_error(app) == message  # inline, as typed
        assert not app.screen.query_one("#duration", Input).is_valid
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SpawnScreen)  # still open, input kept
        assert app.screen.query_one("#duration", Input).value == typed
        assert form_error(app) == message
        assert len(app.board) == 0 and app.board.starting == 0


async def test_spawn_form_checks_against_the_limit_the_dashboard_was_given() -> None:
    app = make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(max_duration_s=60.0),
        clock=FrozenClock(),
    )
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await pilot.press("n", "tab", "6", "1")
        assert form_error(app) == "duration: at most 60 s, the server's limit (got 61)"
        await pilot.press("backspace", "0")
        assert form_error(app) == ""


async def test_how_many_refuses_1e3_instead_of_reading_13() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await pilot.press("n", "backspace", "1", "e", "3", "enter")
        assert isinstance(app.screen, SpawnScreen)
        assert app.screen.query_one("#count", Input).value == "1e3"
        assert form_error(app) == "how many: a whole number from 1 to 10,000 (got '1e3')"


async def test_spawn_form_stays_open_while_the_server_is_not_ready() -> None:
    app = offline_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "backspace", "4", "tab", "2", "ctrl+s")
        assert isinstance(app.screen, SpawnScreen)
        assert form_error(app).startswith("Not connected to a server yet")
        assert app.screen.query_one("#count", Input).value == "4"
        assert app.screen.query_one("#duration", Input).value == "2"


@pytest.mark.parametrize("typed", ["abc", "1e3", "0", "501", ""])
async def test_compare_jobs_field_says_what_it_takes(typed: str) -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await pilot.press("m")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.query_one("#compare-count", Input).value = typed
        await pilot.press("ctrl+r")
        status = compare_status(screen)
        assert status.startswith("Cannot run: jobs: a whole number from 1 to 500 (got ")
        assert "invalid literal" not in status and "int()" not in status


async def with_jobs(pilot: Pilot[None]) -> VideoSimApp:
    app = await connected(pilot)
    app.ingest(synthetic_batch())
    app.refresh_view()
    await pilot.pause()
    return app


def toasts(app: VideoSimApp) -> list[str]:
    return [notification.message for notification in app._notifications]


async def test_retry_in_the_detail_view_jumps_to_the_new_watch() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await with_jobs(pilot)
        app.open_detail(SPECIAL_JOB_ID)  # ended timed_out: a retry watches it again
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.key == f"{SPECIAL_JOB_ID}#2"
        assert screen.key in app.board


async def test_retry_in_the_detail_view_says_a_new_job_is_starting() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await with_jobs(pilot)
        app.open_detail(JOB_DONE)
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert any(message.startswith("Starting a new job") for message in toasts(app))
        await pilot.press("c")  # cancel goes up as a message too: the watch already ended
        await pilot.pause()
        assert "This watch has already ended" in toasts(app)


def footer_labels(node: Widget) -> set[str]:
    """What the footer keys under ``node`` read, e.g. ``^s Save`` (FooterKey, found by its
    type name: the class itself is private to Textual)."""
    return {" ".join(str(key.render()).split()) for key in node.query("FooterKey") if key.display}


async def footer_keys(pilot: Pilot[None], until: Callable[[set[str]], bool] = bool) -> set[str]:
    """The keys the footer on top shows (a form must bring its own: the table's footer
    under a modal form lists keys that do not work there), once ``until`` holds for them:
    by default, once it shows any (the footer recomposes when the focus settles)."""
    app = pilot.app
    footers = app.screen.query(Footer)
    assert footers, f"{type(app.screen).__name__} has no footer of its own"
    footer = footers.first()

    def shown() -> set[str]:
        return {label.split()[0] for label in footer_labels(footer)}

    await wait_until(pilot, lambda: until(shown()), "the footer's keys")
    return shown()


async def test_q_quits_from_the_table_only_never_from_a_form() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot)
        shown = await footer_keys(pilot, until=lambda keys: "q" in keys)
        assert "^p" not in shown  # listed in the help; it crowded out q Quit
        for key in ("n", "p", "m"):
            await pilot.press(key)
            await pilot.pause()
            assert "q" not in await footer_keys(pilot), key
            assert "esc" in await footer_keys(pilot), key
            await pilot.press("escape")
        await pilot.press("n")
        app.screen.query_one("#outcome").focus()
        await pilot.press("q")  # on a select, not in a text field: still no quit
        assert app.is_running and isinstance(app.screen, SpawnScreen)
        await pilot.press("escape")
        app.push_screen(CompareScreen(app.compare))
        await pilot.pause()
        app.screen.query_one("#compare-run").focus()  # no text field has the focus
        await pilot.pause()
        assert "q" not in await footer_keys(pilot)
        await pilot.press("q")
        assert app.is_running and isinstance(app.screen, CompareScreen)


async def test_help_scrolls_with_the_keyboard_at_80x24() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        dialog = app.screen.query_one("#dialog")
        assert dialog.max_scroll_y > 0 and dialog.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert dialog.scroll_y > 0
        await pilot.press("end")
        await pilot.pause()
        assert dialog.scroll_y == dialog.max_scroll_y
        await pilot.press("home")
        await pilot.pause()
        assert dialog.scroll_y == 0


def assert_on_screen(app: VideoSimApp, selector: str) -> None:
    width, height = app.size
    for widget in app.screen.query(selector):
        if not widget.display:  # hidden on purpose (the footer's palette key)
            continue
        region = widget.region
        assert region.width > 0 and region.height > 0, (selector, region)
        assert region.right <= width and region.bottom <= height, (selector, region)


async def test_every_view_fits_80x24() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await with_jobs(pilot)
        assert_on_screen(app, "FooterKey")
        jobs = app.table
        assert jobs.virtual_size.width <= jobs.scrollable_content_region.width  # no sideways
        app.open_detail(next(iter(app.board)).key)
        await pilot.pause()
        history = app.screen.query_one("#history", DataTable)
        assert history.virtual_size.width <= history.region.width  # "Why" shows whole
        await pilot.press("escape")
        for key, parts in (
            ("p", ["#submit", "#close", "#schedule", "FooterKey"]),
            ("n", ["#submit", "#close", "FooterKey"]),
            ("question_mark", ["#dialog", "FooterKey"]),
            ("t", ["#submit", "#close", "#columns-note", "FooterKey"]),
        ):
            await pilot.press(key)
            await pilot.pause()
            for selector in parts:
                assert_on_screen(app, selector)
            await pilot.press("escape")
        app.push_screen(CompareScreen(app.compare))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.show_results(compare_runs())
        await pilot.pause()
        assert_on_screen(app, "#compare-run")
        assert_on_screen(app, "FooterKey")
        table = screen.query_one("#compare-table", DataTable)
        assert table.virtual_size.width <= table.region.width  # every column shows


async def test_a_long_server_status_leaves_the_counts_whole() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await with_jobs(pilot)
        long_note = "starting embedded server: " + "still waiting for the port, " * 5
        app.health = ServerHealth(url=None, note=long_note)
        app.refresh_view()
        await pilot.pause()
        counts = app.screen.query_one("#counts", Static)
        shown = counts.render()
        assert isinstance(shown, Content)
        assert counts.region.width >= shown.cell_length  # nothing of the counts is hidden
        health = app.screen.query_one("#health", Static)
        assert health.region.x >= counts.region.right
        assert health.region.right <= 80


async def test_chart_lines_differ_in_marker_and_colour() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        app.push_screen(CompareScreen(app.compare))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.show_results(compare_runs())
        monitor = screen.query_one(PlotextPlot).plt._active.monitor
        markers = [series[0] for series in monitor.marker]
        colours = [series[0] for series in monitor.color]
        assert len(set(markers)) == len(markers) == 4  # the stream set-up, at zero requests, too
        assert len(set(colours)) == 4
        assert "braille" not in markers  # one glyph per point, readable without colour


def test_filter_and_sort_read_apart_in_any_rendering() -> None:
    assert view_text(None, SortColumn.ADDED, False).plain == "filter all · sort added"


async def test_the_detail_view_shows_a_long_reason_whole_at_80x24() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await with_jobs(pilot)
        view = app.board.jobs[JOB_DONE]
        reason = "HTTP 503: the server is at its job cap; new starts wait until jobs expire"
        view.history.append(
            PollRecord(
                at_s=1.0,
                attempt=view.attempt + 1,
                http_status=503,
                status="",
                next_delay_s=1.0,
                reason=DelayReason.RETRY_AFTER,
                strategy=Strategy.BACKOFF,
                error=reason,
                eta_s=None,
            )
        )
        view.history_count += 1
        app.open_detail(JOB_DONE)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        history = screen.query_one("#history", DataTable)
        history.move_cursor(row=history.row_count - 1)
        await pilot.pause()
        shown = str(screen.query_one("#poll-reason", Static).render())
        assert reason in " ".join(shown.split())  # whole, however it wraps
