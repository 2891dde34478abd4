"""Every action is reachable three ways (key, command palette, help) and documented."""

from __future__ import annotations

from pathlib import Path

from tests.tui.conftest import frozen_dashboard
from tui.app import VideoSimApp
from tui.keys import KEY_GROUPS, MAIN_KEYS
from tui.screens.column_chooser import ColumnChooserScreen
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.event_log import EventLogScreen
from tui.screens.help import HelpScreen, display_keys
from tui.screens.policy_editor import PolicyEditorScreen
from tui.screens.sort_picker import SortPickerScreen
from tui.screens.spawn import SpawnScreen
from tui.screens.watch_ids import WatchIdsScreen
from tui.widgets.job_table import JobTable
from tui.widgets.search_bar import SearchBar

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tui.md"


async def test_palette_offers_every_action_and_help_lists_every_key() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(110, 40)) as pilot:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {key.label for key in MAIN_KEYS} <= titles
        assert "Theme" in titles  # Textual's own stay available
        for key in MAIN_KEYS:
            assert callable(getattr(app, f"action_{key.action}"))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


def test_every_key_has_an_action_where_it_is_bound() -> None:
    owners = {
        "Job table": [VideoSimApp],
        "Job detail": [DetailScreen],
        "Compare": [CompareScreen],
        "Event log": [EventLogScreen],
        "Spawn form": [SpawnScreen],
        "Policy editor": [PolicyEditorScreen],
        "Moving in the table": [JobTable],
        "Search box": [SearchBar],
        "Sort picker": [SortPickerScreen],
        "Column chooser": [ColumnChooserScreen],
        "Watch ids": [WatchIdsScreen],
    }
    for group, keys in KEY_GROUPS:
        for owner in owners[group]:
            for key in keys:
                assert hasattr(owner, f"action_{key.action}"), (owner.__name__, key.action)


def test_docs_list_every_key() -> None:
    docs = DOCS.read_text()
    for _, keys in KEY_GROUPS:
        for key in keys:
            shown = display_keys(key.key).replace("⏎", "enter")
            for part in shown.split(" / "):
                assert f"`{part}`" in docs, f"docs/tui.md does not mention key {part!r}"
    assert "dashboard.svg" in docs
    assert (DOCS.parent / "dashboard.svg").read_text().startswith("<svg")
