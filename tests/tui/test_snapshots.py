"""Pictures of each view on fixed data: synthetic poll events and a frozen clock, no server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.conftest import (
    JOB_CANCELLED,
    JOB_DONE,
    compare_runs,
    frozen_dashboard,
    synthetic_batch,
    wait_until,
)
from tui.app import VideoSimApp
from tui.screens.compare import CompareScreen

SIZE = (110, 30)


async def with_jobs(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, VideoSimApp)
    await wait_until(pilot, lambda: app.connected and app.health.ok is True, "the fake client")
    app.ingest(synthetic_batch())
    app.cancel_job(JOB_CANCELLED)
    app.refresh_view()
    await pilot.pause()


def test_main_screen(snap_compare: Any) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=SIZE, run_before=with_jobs)


ROOT = Path(__file__).resolve().parents[2]
MAIN_SCREEN_SNAPSHOT = ROOT / "tests/tui/__snapshots__/test_snapshots/test_main_screen.svg"
README_PICTURE = ROOT / "docs/dashboard.svg"


def test_the_readme_picture_is_the_main_screen_snapshot() -> None:
    """The README's picture is test_main_screen's SVG, which that test checks against the
    live dashboard: so the picture cannot drift from what the dashboard shows."""
    assert README_PICTURE.read_text() == MAIN_SCREEN_SNAPSHOT.read_text(), (
        "docs/dashboard.svg is not the main screen's snapshot; after an intended change run "
        "`make screenshot` (pytest --snapshot-update, then the copy)"
    )


def pressed(key: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Jobs on the board, then ``key``, with no text field blinking: a picture taken after
    the first half second of a blink (a loaded machine) differs by the cursor's cell."""

    async def run_before(pilot: Pilot[None]) -> None:
        await with_jobs(pilot)
        await pilot.press(key)
        await pilot.pause()  # the form has mounted and taken the focus (which shows the cursor)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run_before


def test_spawn_form(snap_compare: Any) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=SIZE, run_before=pressed("n"))


def test_policy_editor_with_a_bad_value(snap_compare: Any) -> None:
    async def bad_multiplier(pilot: Pilot[None]) -> None:
        await with_jobs(pilot)
        await pilot.press("p")
        await pilot.click("#multiplier")
        field = pilot.app.screen.query_one("#multiplier")
        field.cursor_blink = False  # type: ignore[attr-defined]  # no picture mid-blink
        field.value = "0.5"  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(frozen_dashboard(), terminal_size=(110, 34), run_before=bad_multiplier)


def test_detail_view(snap_compare: Any) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=SIZE, run_before=open_detail)


async def show_compare(pilot: Pilot[None]) -> None:
    await with_jobs(pilot)
    app = pilot.app
    assert isinstance(app, VideoSimApp)
    app.push_screen(CompareScreen(app.compare))
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    screen.show_results(compare_runs())
    await pilot.pause()
    for field in screen.query(Input):  # no picture mid-blink, however late it is taken
        field.cursor_blink = False
    await pilot.pause()


async def open_detail(pilot: Pilot[None]) -> None:
    await with_jobs(pilot)
    app = pilot.app
    assert isinstance(app, VideoSimApp)
    app.open_detail(JOB_DONE)
    await pilot.pause()
    record = app.screen.query_one("#record")
    await wait_until(pilot, lambda: "status_requests" in str(record.render()), "the record")


def test_compare_view(snap_compare: Any) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=(110, 34), run_before=show_compare)


# The smallest terminal the dashboard is laid out for, and a large one.
SMALL, LARGE = (80, 24), (220, 60)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "220x60"])
def test_main_screen_sizes(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=size, run_before=with_jobs)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "220x60"])
def test_compare_view_sizes(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=size, run_before=show_compare)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "220x60"])
def test_detail_view_sizes(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=size, run_before=open_detail)


@pytest.mark.parametrize("key", ["n", "p", "question_mark"], ids=["spawn", "policy", "help"])
def test_forms_at_80x24(snap_compare: Any, key: str) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=SMALL, run_before=pressed(key))
