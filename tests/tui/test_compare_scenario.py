"""The compare view under a scenario the server plays: the run, the phases, the report."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, SelectionList, Static

from tests.support.live_server import LiveServer
from tests.tui.conftest import fast_settings, wait_until
from tui.app import make_app

SCENARIO = """
name = "blip"
title = "A blip"
seed = 4

[jobs]
count = 6
durations = { kind = "uniform", low_s = 0.3, high_s = 1.0 }
error_rate = 0.3
arrivals = { kind = "rate", per_s = 30 }

[[phases]]
kind = "unavailable"
start_s = 0.1
length_s = 0.6
share = 1.0
"""


async def test_the_compare_view_runs_under_the_server_scenario_and_exports_its_report(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "blip.toml"
    scenario.write_text(SCENARIO)
    exports = tmp_path / "exports"
    with LiveServer(args=["--scenario", str(scenario)]) as server:
        app = make_app(server_url=server.url, settings=fast_settings(export_dir=str(exports)))
        async with app.run_test(size=(130, 44)) as pilot:
            await wait_until(pilot, lambda: app.connected, "the engine")
            await pilot.press("m")
            field = app.screen.query_one("#compare-scenario", Input)
            field.focus()
            await pilot.press(*str(scenario))  # typed: the e of "exports" stays in the field
            assert field.value == str(scenario)
            chosen = app.screen.query_one("#compare-presets", SelectionList)
            chosen.deselect_all()
            chosen.select("backoff")
            chosen.select("stream")
            await pilot.press("ctrl+r")
            status = app.screen.query_one("#compare-status", Static)
            await wait_until(
                pilot, lambda: "under scenario blip" in str(status.render()), "the results", 30
            )
            assert "6 jobs per set-up" in str(status.render())
            await pilot.press("e")  # the results have the focus now
            await wait_until(pilot, lambda: exports.exists() and any(exports.iterdir()), "export")
    written = sorted(path.suffix for path in exports.iterdir())
    assert written == [".html", ".md"]
    report = next(exports.glob("*.md")).read_text()
    assert "| backoff |" in report and "| stream |" in report and "unavailable 0.1-0.7 s" in report
