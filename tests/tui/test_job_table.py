"""The virtual job table: it draws the model's rows, keeps the cursor on its job, filters
and sorts on the model's index, and hints when there is nothing to show."""

from __future__ import annotations

from tests.tui.conftest import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_WAITING,
    FrozenClock,
    connected,
    frozen_dashboard,
    poll,
    synthetic_batch,
)
from tui.app import VideoSimApp
from tui.model import JobSpec, JobState, SortColumn
from tui.widgets.job_table import CHOOSABLE_COLUMNS, JobTable, layout_for, line_width


def screen_lines(table: JobTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


def advance(app: VideoSimApp, seconds: float) -> None:
    assert isinstance(app.clock, FrozenClock)
    app.clock.now += seconds
    app.refresh_view()


async def test_the_table_draws_only_what_fits_and_pages_through_the_rest() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        for n in range(5000):
            app.board.add(f"job-{n:05}", f"{n:08x}-0000", JobSpec(), 1000.0)
        app.refresh_view()
        await pilot.pause()
        table = app.table
        assert table.row_count == 5000
        lines = screen_lines(table)
        assert lines[0].split()[:3] == ["Job", "Status", "HTTP"]
        assert lines[1].split()[0] == "00000000"
        await pilot.press("pagedown")
        first_shown = table.cursor_row
        assert first_shown > 10 and table.cursor_key == f"job-{first_shown:05}"
        await pilot.press("end")
        assert table.cursor_key == "job-04999"
        assert any("00001387" in line for line in screen_lines(table))  # 4999 in hex


async def test_cursor_stays_on_its_job_across_filter_and_sort() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        app.ingest(synthetic_batch())
        app.refresh_view()
        table = app.table
        table.move_cursor(row=table.get_row_index(JOB_WAITING))
        for _ in range(len(SortColumn)):
            await pilot.press("o")
            assert table.cursor_key == JOB_WAITING
        await pilot.press("O")
        assert table.cursor_key == JOB_WAITING
        await pilot.press("f")  # pending
        assert app.state_filter is JobState.PENDING
        assert table.cursor_key == JOB_WAITING
        assert JOB_DONE not in table.shown_keys()


async def test_rows_follow_the_model_without_a_rebuild_in_insertion_order() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        app.ingest(synthetic_batch())
        app.refresh_view()
        table = app.table
        order = table.shown_keys()
        app.board.apply(JOB_WAITING, poll(JOB_WAITING, 3, "pending", http_status=503), 1000.0)
        advance(app, 0.3)
        assert table.shown_keys() == order
        assert table.get_cell(JOB_WAITING, SortColumn.HTTP).plain == "503"
        assert table.get_cell(JOB_WAITING, SortColumn.ATTEMPT).plain == "3"
        app.cancel_job(JOB_CANCELLED)
        await pilot.pause()
        row = screen_lines(table)[1 + table.get_row_index(JOB_CANCELLED)]
        assert "cancelled" in row


async def test_empty_table_and_empty_filter_say_how_to_spawn() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        await pilot.pause()
        assert any("press n to spawn" in line for line in screen_lines(app.table))
        app.ingest(synthetic_batch())
        app.refresh_view()
        while app.state_filter is not JobState.CANCELLED:  # the story cancels nothing
            await pilot.press("f")
        await pilot.pause()
        lines = screen_lines(app.table)
        assert any("No job matches the filter 'cancelled'" in line for line in lines)


async def test_enter_and_a_header_click_reach_the_app() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        app.ingest(synthetic_batch())
        app.refresh_view()
        await pilot.pause()
        job_width = app.table.column_layout()[0][2]
        await pilot.click(JobTable, offset=(job_width + 3, 0))  # the Status label
        assert app.sort_column is SortColumn.STATUS
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "DetailScreen"


def test_at_80_columns_the_watched_columns_fit_and_the_others_give_way() -> None:
    """Job, status, attempt, next delay and outcome always fit an 80-column terminal, at
    their full widths; the others get room in the order they give way, and no line is
    wider than the table (nothing to scroll sideways to)."""
    width = 78  # an 80-column terminal, less the scrollbar and the border
    shown = layout_for(width, CHOOSABLE_COLUMNS)
    keys = [key for key, _, _ in shown]
    watched = [SortColumn.JOB, SortColumn.STATUS, SortColumn.ATTEMPT, SortColumn.NEXT,
               SortColumn.OUTCOME]  # fmt: skip
    assert set(watched) <= set(keys)
    assert dict((key, w) for key, _, w in shown)[SortColumn.OUTCOME] == len("unreachable")
    assert line_width(shown) <= width
    assert keys == [SortColumn.JOB, SortColumn.STATUS, SortColumn.ATTEMPT, SortColumn.NEXT,
                    SortColumn.ELAPSED, SortColumn.REQUESTS, SortColumn.OUTCOME]  # fmt: skip
    wide = [key for key, _, _ in layout_for(220, CHOOSABLE_COLUMNS)]
    assert wide == list(CHOOSABLE_COLUMNS)  # in the table's order when all fit


async def test_the_sort_cycle_follows_the_columns_on_screen() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot)
        shown = [key for key, _, _ in app.table.column_layout()]
        assert SortColumn.HTTP not in shown  # given way at 80 columns
        seen = []
        for _ in range(len(shown) + 1):
            await pilot.press("o")
            seen.append(app.sort_column)
        assert seen == [*shown, SortColumn.ADDED]


async def test_clearing_rows_lets_go_of_their_rendered_lines() -> None:
    """Rendered lines are cached by content; a line of a row that is gone can never be
    drawn again, so a long session of spawn-and-clear rounds would fill the cache round
    after round (bench/tui_soak.py saw the dashboard grow 14 % over 20 rounds)."""
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        app.ingest(synthetic_batch())
        app.refresh_view()
        await pilot.pause()
        table = app.table
        assert table.cached_lines > 0
        await pilot.press("x")  # clear the finished jobs
        await pilot.pause()
        assert 0 < len(app.board) < len(synthetic_batch().items)
        # The lines of the rows left, as drawn since (each at most twice: the frame of the
        # clear and the next); none of the cleared ones.
        assert table.cached_lines <= 2 * len(app.board)
