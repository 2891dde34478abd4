"""The job table's reuse of cell renderings: only changed cells are rendered again, and
what it shows is what DataTable renders from scratch (cursor, focus, sorting, theme)."""

from __future__ import annotations

from unittest.mock import patch

from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable

from tests.tui.conftest import (
    JOB_CANCELLED,
    JOB_WAITING,
    FrozenClock,
    connected,
    frozen_dashboard,
    synthetic_batch,
)
from tui.app import VideoSimApp
from tui.model import SortColumn
from tui.widgets.job_table import JobTable


def table_lines(table: JobTable) -> list[Strip]:
    return table.render_lines(Region(0, 0, table.size.width, table.size.height))


def from_scratch(table: JobTable) -> list[Strip]:
    """What the table renders with every cache dropped (as after a theme change)."""
    table.notify_style_update()
    return table_lines(table)


def advance(app: VideoSimApp, seconds: float) -> None:
    assert isinstance(app.clock, FrozenClock)
    app.clock.now += seconds
    app.refresh_view()


async def test_a_frame_renders_only_the_cells_that_changed() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        app.ingest(synthetic_batch())
        app.refresh_view()
        await pilot.pause()
        table_lines(app.table)
        advance(app, 0.3)  # only the live rows' countdown and elapsed cells change
        live_rows = sum(not view.finished for view in app.board)
        with patch.object(
            DataTable, "_render_cell", autospec=True, side_effect=DataTable._render_cell
        ) as rendered:
            table_lines(app.table)
        assert 0 < rendered.call_count <= 2 * live_rows


async def test_reused_renderings_match_a_render_from_scratch() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        app.ingest(synthetic_batch())
        app.refresh_view()
        table = app.table
        steps = [
            lambda: advance(app, 0.3),
            lambda: table.move_cursor(row=2),
            lambda: app.cancel_job(JOB_WAITING),
            lambda: table.blur(),
            lambda: setattr(app, "theme", "nord"),
            lambda: table.focus(),
            lambda: setattr(app, "sort_column", SortColumn.STATUS),
            lambda: app.action_reverse_sort(),
            lambda: app.cancel_job(JOB_CANCELLED),
        ]
        for step in steps:
            step()
            await pilot.pause()
            assert table_lines(table) == from_scratch(table)
