"""The terminal benchmark's probes (bench/tui_keys.py) read what a key changed from the
screen. They are checked here on the real table's lines, drawn with their colours as a
terminal shows them: a probe that misses a key's effect reports a stall that never was."""

from __future__ import annotations

from rich.console import Console

from bench.tui_keys import background, key_cases
from tests.tui.conftest import connected, frozen_dashboard
from tui.app import VideoSimApp
from tui.model import FILTER_CYCLE, JobSpec

SIZE = (200, 50)


class Screen:
    """What ``capture-pane`` would print: the table's lines as text, with colours (24-bit,
    as the dashboard draws them in tmux) or not."""

    def __init__(self, app: VideoSimApp) -> None:
        table = app.table
        strips = [table.render_line(y) for y in range(table.size.height)]
        console = Console(color_system="truecolor", force_terminal=True, width=SIZE[0])
        self._plain = "\n".join(strip.text for strip in strips)
        self._escapes = "\n".join(strip.render(console) for strip in strips)

    def screen(self, escapes: bool = False) -> str:
        return self._escapes if escapes else self._plain


def probe(name: str) -> object:
    return next(case.probe for case in key_cases() if case.name == name)


def add_jobs(app: VideoSimApp, count: int) -> None:
    for n in range(count):
        job_id = f"{n:08x}-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
        app.board.add(job_id, job_id, JobSpec(), 1000.0)
    app.refresh_view()


async def test_cursor_probe_sees_a_move_that_scrolls_the_rows() -> None:
    """At the bottom of the view, Down scrolls: the cursor stays on the last line with
    another job on it (the old probe read the line's number and saw no change, for
    seconds, until a re-sort moved the cursor: the 2,000-job "stalls")."""
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        add_jobs(app, 200)
        await pilot.pause()
        rows_shown = app.table.scrollable_content_region.height - 1
        app.table.move_cursor(row=rows_shown - 1)  # the last line shown
        await pilot.pause()
        read = probe("cursor (down)")
        before = read(Screen(app))  # type: ignore[operator]
        await pilot.press("down")
        after = read(Screen(app))  # type: ignore[operator]
        assert app.table.scroll_y == 1
        assert after != before  # the probe sees the key's effect
        assert (before, after) == (f"{rows_shown - 1:08x}", f"{rows_shown:08x}")


async def test_page_down_probe_sees_a_move_within_one_screen() -> None:
    """When every row fits on the screen, PageDown takes the cursor to the last row and
    the first row stays (the old probe watched the first row only)."""
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        add_jobs(app, 20)
        await pilot.pause()
        read = probe("PageDown")
        before = read(Screen(app))  # type: ignore[operator]
        await pilot.press("pagedown")
        after = read(Screen(app))  # type: ignore[operator]
        assert app.table.scroll_y == 0
        assert after != before
        assert (before, after) == ("00000000", f"{19:08x}")


def test_filter_key_is_undone_so_no_key_meets_an_empty_table() -> None:
    """A filter that shows no rows (failed, cancelled) would leave cursor, PageDown and
    Enter nothing to change: after each timed press the filter comes back to "all"."""
    cases = {case.name: case for case in key_cases()}
    # the timed press went all -> pending; the rest of the cycle comes back to all
    assert cases["filter (f)"].undo == ("f",) * (len(FILTER_CYCLE) - 1)
    assert cases["cursor (down)"].setup == ("Home",)
    assert cases["PageDown"].setup == ("Home",)


def test_background_is_read_in_any_colour_system() -> None:
    assert background("\x1b[1;38;2;1;2;3;48;2;40;41;42mjob") == "48;2;40;41;42"
    assert background("\x1b[38;5;100;48;5;7mjob") == "48;5;7"
    assert background("\x1b[1;97;100mjob") == "100"
    assert background("\x1b[1;97mjob") == ""
