"""Pictures of each view on fixed data: synthetic poll events and a frozen clock, no server."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.tui.conftest import (
    JOB_CANCELLED,
    JOB_DONE,
    frozen_dashboard,
    synthetic_batch,
    wait_until,
)
from tui.app import VideoSimApp
from tui.compare import PolicyRun
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


def test_spawn_form(snap_compare: Any) -> None:
    assert snap_compare(frozen_dashboard(), terminal_size=SIZE, run_before=with_jobs, press=["n"])


def test_policy_editor_with_a_bad_value(snap_compare: Any) -> None:
    async def bad_multiplier(pilot: Pilot[None]) -> None:
        await with_jobs(pilot)
        await pilot.press("p")
        await pilot.click("#multiplier")
        pilot.app.screen.query_one("#multiplier").value = "0.5"  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(frozen_dashboard(), terminal_size=(110, 34), run_before=bad_multiplier)


def test_detail_view(snap_compare: Any) -> None:
    async def open_detail(pilot: Pilot[None]) -> None:
        await with_jobs(pilot)
        app = pilot.app
        assert isinstance(app, VideoSimApp)
        app.open_detail(JOB_DONE)
        await pilot.pause()
        record = app.screen.query_one("#record")
        await wait_until(pilot, lambda: "status_requests" in str(record.render()), "the record")

    assert snap_compare(frozen_dashboard(), terminal_size=SIZE, run_before=open_detail)


def test_compare_view(snap_compare: Any) -> None:
    runs = [
        PolicyRun(
            "original",
            "backoff",
            [3, 3, 4, 2],
            [1.2, 0.8, 2.9, 0.4],
            [0.0, 1.0, 3.0, 0.1, 1.1, 3.1, 0.2, 1.2, 3.2, 7.2, 0.3, 1.3],
        ),
        PolicyRun(
            "fixed 1s",
            "backoff",
            [3, 4, 5, 2],
            [0.3, 0.6, 0.9, 0.2],
            [0.0, 1.0, 2.0, 0.1, 1.1, 2.1, 3.1, 0.2, 1.2, 2.2, 3.2, 4.2, 0.3, 1.3],
        ),
        PolicyRun(
            "long-poll",
            "long-poll",
            [1, 2, 2, 1],
            [0.01, 0.01, 0.02, 0.01],
            [0.0, 0.1, 2.0, 0.2, 3.1, 0.3],
        ),
    ]
    for run in runs:
        run.outcomes.update(["completed"] * run.jobs)

    async def show(pilot: Pilot[None]) -> None:
        await with_jobs(pilot)
        pilot.app.push_screen(CompareScreen())
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, CompareScreen)
        screen.show_results(runs)
        await pilot.pause()

    assert snap_compare(frozen_dashboard(), terminal_size=(110, 34), run_before=show)
