"""The table as an operator uses it: search, vi keys, the sort picker, multi-select, pause,
and columns that use the terminal's width."""

from __future__ import annotations

from tests.tui.conftest import (
    JOB_DONE,
    JOB_ERROR,
    JOB_LOST,
    JOB_WAITING,
    connected,
    frozen_dashboard,
    synthetic_batch,
)
from tui.app import VideoSimApp
from tui.model import JobState, SortColumn
from tui.screens.sort_picker import SortPickerScreen
from tui.widgets.job_table import JobTable

SIZE = (110, 30)


def screen_lines(table: JobTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


async def with_story(app: VideoSimApp, pilot: object) -> JobTable:
    await connected(pilot)  # type: ignore[arg-type]
    app.ingest(synthetic_batch())
    app.refresh_view()
    return app.table


async def test_slash_searches_live_by_id_prefix_and_row_text_and_esc_clears() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        every_row = table.shown_keys()
        await pilot.press("slash", *JOB_WAITING[:4])
        assert table.shown_keys() == [JOB_WAITING]  # live, while typing
        for _ in range(4):
            await pilot.press("backspace")
        jobs = len(app.board)
        await pilot.press(*"refused")  # the last error's text
        assert table.shown_keys() == [JOB_LOST]
        assert len(app.board) == jobs  # s typed a letter, it did not watch the special job
        await pilot.press("q", "backspace")
        assert app.is_running  # nor did q quit
        await pilot.press("enter")  # keeps the search, back to the table
        assert table.has_focus and table.shown_keys() == [JOB_LOST]
        await pilot.press("slash", "escape")
        assert table.shown_keys() == every_row
        assert table.has_focus


async def test_search_works_with_the_state_filter_and_the_sort() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        await pilot.press("slash", *"error", "enter")
        assert set(table.shown_keys()) == {JOB_ERROR}
        await pilot.press("slash", "backspace", "backspace", "backspace", "backspace")
        await pilot.press("backspace", *"pending", "enter")  # status text
        pending = set(table.shown_keys())
        assert JOB_WAITING in pending and JOB_DONE not in pending
        await pilot.press("f", "f")  # completed: no completed job is pending
        assert app.state_filter is JobState.COMPLETED
        assert table.shown_keys() == []
        assert any("No job matches" in line for line in screen_lines(table))


async def test_vi_keys_move_the_cursor() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        keys = table.shown_keys()
        await pilot.press("j", "j")
        assert table.cursor_key == keys[2]
        await pilot.press("k")
        assert table.cursor_key == keys[1]
        await pilot.press("G")
        assert table.cursor_key == keys[-1]
        await pilot.press("g")
        assert table.cursor_key == keys[0]


async def test_sort_picker_sets_the_sort_and_the_header_marks_it() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        await pilot.press("S")
        assert isinstance(app.screen, SortPickerScreen)
        # added asc, added desc, job asc, job desc, status asc, status desc
        await pilot.press("down", "down", "down", "down", "down", "enter")
        assert (app.sort_column, app.sort_reverse) == (SortColumn.STATUS, True)
        await pilot.pause()
        assert "Status ▼" in screen_lines(table)[0]
        statuses = [app.board.jobs[key].status for key in table.shown_keys()]
        assert statuses == sorted(statuses, reverse=True)
        await pilot.press("S", "escape")
        assert (app.sort_column, app.sort_reverse) == (SortColumn.STATUS, True)
