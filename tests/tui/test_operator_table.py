"""The table as an operator uses it: search, vi keys, the sort picker, multi-select, pause,
and columns that use the terminal's width."""

from __future__ import annotations

from pathlib import Path

from client_core import SPECIAL_JOB_ID, Outcome
from tests.tui.conftest import (
    JOB_DONE,
    JOB_ERROR,
    JOB_HELD,
    JOB_LOST,
    JOB_WAITING,
    connected,
    frozen_dashboard,
    poll,
    synthetic_batch,
)
from tui import remembered
from tui.app import VideoSimApp
from tui.model import (
    JobBoard,
    JobSpec,
    JobStarted,
    JobState,
    PoolBatch,
    SortColumn,
    merge_row,
    row_update,
    row_values,
)
from tui.screens.column_chooser import ColumnChooserScreen
from tui.screens.sort_picker import SortPickerScreen
from tui.widgets.job_table import JobTable, line_width

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


async def test_tab_leaves_the_keys_on_the_rows_the_screen_shows() -> None:
    """Tab used to move the focus to + Spawn: then j/k/G did nothing while c still
    cancelled the old cursor row. Nothing on the main screen takes the focus from the table."""
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        keys = table.shown_keys()
        await pilot.press("tab")
        assert app.focused is table
        await pilot.press("j", "j")
        assert table.cursor_key == keys[2]
        await pilot.press("shift+tab", "G")
        assert app.focused is table and table.cursor_key == keys[-1]


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


def record_commands(app: VideoSimApp) -> list[object]:
    """What the app tells the engine, in order (the engine still gets every command)."""
    engine = app.engine
    assert engine is not None
    sent: list[object] = []
    send = engine.send

    def send_and_record(command: object) -> bool:
        sent.append(command)
        return send(command)  # type: ignore[arg-type]

    engine.send = send_and_record  # type: ignore[method-assign]
    return sent


async def test_space_v_and_star_select_rows_and_the_selection_survives_sort_and_search() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        keys = table.shown_keys()
        await pilot.press("space")  # row 0
        await pilot.press("j", "j", "j", "V")  # rows 0..3
        assert table.selected_keys() == keys[:4]
        await pilot.pause()
        lines = screen_lines(table)
        assert [line.startswith("●") for line in lines[1:6]] == [True] * 4 + [False]
        assert "4 selected" in str(app.screen.query_one("#view").render())
        await pilot.press("O")  # reversed: the same jobs stay selected
        assert table.selected_keys() == keys[:4]
        await pilot.press("space")  # the cursor's job (row 3) leaves the selection
        assert table.selected_keys() == keys[:3]
        await pilot.press("slash", *JOB_LOST[:6], "enter", "asterisk")
        assert set(table.selected_keys()) == {*keys[:3], JOB_LOST}
        await pilot.press("escape")  # clears the selection and the search
        assert table.selected_keys() == [] and table.shown_keys() == keys[::-1]


async def test_cancelling_one_row_says_so_as_cancelling_several_does() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        live = next(key for key in table.shown_keys() if not app.board.jobs[key].finished)
        table.move_cursor(row=table.get_row_index(live))
        await pilot.press("c")
        messages = [entry.message for entry in app.event_log]
        assert f"Cancelled the watch of {live}" in messages
        await pilot.press("c")
        assert [entry.message for entry in app.event_log][-1] == "That watch has already ended"


async def test_cancel_and_retry_act_on_the_selection_and_retry_failed_on_every_failure() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        sent = record_commands(app)
        live = [key for key in table.shown_keys() if not app.board.jobs[key].finished]
        assert len(live) >= 2
        for key in live[:2]:
            table.move_cursor(row=table.get_row_index(key))
            await pilot.press("space")
        await pilot.press("c")
        assert all(app.board.jobs[key].outcome == "cancelled" for key in live[:2])
        assert [type(command).__name__ for command in sent] == ["Cancel"]
        assert sorted(sent[0].keys) == sorted(live[:2])  # type: ignore[attr-defined]
        sent.clear()
        await pilot.press("r")  # both are finished now: one start command for both
        assert [type(command).__name__ for command in sent] == ["StartJobs"]
        assert len(sent[0].specs) == 2  # type: ignore[attr-defined]
        sent.clear()
        await pilot.press("escape")
        failed = [view for view in app.board if view.state in (JobState.ERROR, JobState.FAILED)]
        assert {JOB_ERROR, JOB_LOST, SPECIAL_JOB_ID} <= {view.key for view in failed}
        sent.clear()
        await pilot.press("R")  # the special job is watched again, the others start afresh
        names = [type(command).__name__ for command in sent]
        assert names.count("StartJobs") == 1 and names.count("Watch") == 1
        start = next(c for c in sent if type(c).__name__ == "StartJobs")
        assert len(start.specs) == len(failed) - 1  # type: ignore[attr-defined]
        toast = f"Retrying {len(failed)} failed"
        assert any(toast in entry.message for entry in app.event_log)


async def test_y_copies_the_job_id_with_a_toast() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        table.move_cursor(row=table.get_row_index(JOB_DONE))
        await pilot.press("y")
        assert app.clipboard == JOB_DONE
        assert any(JOB_DONE in entry.message for entry in app.event_log)
        await pilot.press("space", "j", "space", "y")
        assert app.clipboard.splitlines() == [JOB_DONE, JOB_ERROR]


async def test_pause_freezes_the_table_while_the_board_keeps_updating_and_resume_catches_up() -> (
    None
):
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        banner = app.screen.query_one("#pause-banner")
        assert not banner.display
        await pilot.press("P")
        assert banner.display and "0 rows changed" in str(banner.render())
        app.board.apply(JOB_WAITING, poll(JOB_WAITING, 3, "pending", http_status=503), 1000.0)
        app.board.apply(JOB_WAITING, poll(JOB_WAITING, 4, "pending", http_status=429), 1000.1)
        app.board.apply(JOB_HELD, poll(JOB_HELD, 2, "completed", outcome=Outcome.COMPLETED), 1000)
        app.ingest(PoolBatch([JobStarted("new-job", "new-job", JobSpec(), 1000.0)]))
        await pilot.pause(0.2)  # a few frames
        assert app.board.jobs[JOB_WAITING].attempt == 4  # the board moved on
        assert table.get_cell(JOB_WAITING, SortColumn.ATTEMPT).plain == "2"  # the table did not
        assert table.get_cell(JOB_HELD, SortColumn.OUTCOME).plain == ""
        assert "new-job" not in table.shown_keys()
        assert "3 rows changed since" in str(banner.render())
        await pilot.press("o")  # sorting while paused sorts what is shown
        assert "new-job" not in table.shown_keys()
        await pilot.press("P")
        await pilot.pause()
        assert not banner.display
        assert table.get_cell(JOB_WAITING, SortColumn.ATTEMPT).plain == "4"
        assert table.get_cell(JOB_HELD, SortColumn.OUTCOME).plain == "completed"
        assert "new-job" in table.shown_keys()


async def test_a_wide_terminal_gets_whole_ids_a_progress_bar_and_the_last_error() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(220, 60)) as pilot:
        table = await with_story(app, pilot)
        await pilot.pause()
        width = table.scrollable_content_region.width
        assert line_width(table.column_layout()) == width  # every cell of the line is used
        header = screen_lines(table)[0]
        assert "Progress" in header and "Last error" in header
        lines = screen_lines(table)
        assert any(JOB_WAITING in line for line in lines)  # the whole uuid
        assert table.get_cell(JOB_WAITING, SortColumn.PROGRESS).plain == "██░░░  40%"
        assert table.get_cell(JOB_DONE, SortColumn.PROGRESS).plain == "█████ 100%"
        lost = lines[1 + table.get_row_index(JOB_LOST)]
        assert "connection refused [errno 111]" in lost
    narrow = frozen_dashboard()
    async with narrow.run_test(size=(110, 30)) as pilot:
        table = await with_story(narrow, pilot)
        shown = [key for key, _, _ in table.column_layout()]
        assert SortColumn.PROGRESS not in shown and SortColumn.OUTCOME in shown
        assert line_width(table.column_layout()) <= table.scrollable_content_region.width


def test_the_progress_hint_travels_in_the_engines_row_delta() -> None:
    engine_side, dashboard_side = JobBoard(), JobBoard()
    engine_side.add(JOB_WAITING, JOB_WAITING, JobSpec(), 1000.0)
    engine_side.apply(JOB_WAITING, poll(JOB_WAITING, 1, "pending", progress=0.25), 1000.5)
    update = row_update(row_values(engine_side.jobs[JOB_WAITING]), None)
    assert update is not None and update.progress == 0.25
    merge_row(dashboard_side, JOB_WAITING, update, 1000.5)
    assert dashboard_side.jobs[JOB_WAITING].progress == 0.25
    engine_side.apply(JOB_WAITING, poll(JOB_WAITING, 2, "pending"), 1001.0)  # no hint
    assert engine_side.jobs[JOB_WAITING].progress == 0.25  # the last hint stays


async def test_the_column_chooser_hides_columns_and_the_choice_is_remembered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dashboard.json"
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = await with_story(app, pilot)
        await pilot.press("t")
        assert isinstance(app.screen, ColumnChooserScreen)
        await pilot.press("down", "down", "down", "down", "space", "ctrl+s")  # Skipped
        assert not isinstance(app.screen, ColumnChooserScreen)
        assert SortColumn.SKIPPED not in app.columns
        await pilot.pause()
        assert "Skipped" not in screen_lines(table)[0]
        assert remembered.close_session(app, path=path) is None
    again = frozen_dashboard()
    remembered.open_session(again, given=set(), path=path)
    async with again.run_test(size=SIZE) as pilot:
        table = await with_story(again, pilot)
        await pilot.pause()
        assert SortColumn.SKIPPED not in again.columns
        assert "Skipped" not in screen_lines(table)[0]
        assert "Attempt" in screen_lines(table)[0]
