"""Settings remembered between runs: the file, the app they restore, and the CLI's wiring.

Every test here uses a config directory under tmp_path (conftest points XDG_CONFIG_HOME
at one for every dashboard test), never the developer's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from client_core import BackoffPolicy, Jitter, Strategy
from tests.tui.conftest import frozen_dashboard
from tui import remembered
from tui.app import VideoSimApp
from tui.cli import main
from tui.model import SortColumn
from tui.remembered import Remembered

CHOICES = Remembered(
    theme="nord",
    strategy=Strategy.HINTED,
    policy=BackoffPolicy(initial_s=0.5, multiplier=2.0, max_delay_s=4.0, jitter=Jitter.NONE),
    sort_column=SortColumn.ELAPSED,
    sort_reverse=True,
)


def test_saved_choices_load_back_and_a_missing_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "videosim" / "dashboard.json"
    assert remembered.load(path) == (Remembered(), None)
    remembered.save(path, CHOICES)
    assert remembered.load(path) == (CHOICES, None)
    assert json.loads(path.read_text())["sort_column"] == "elapsed"


def test_the_default_file_lives_in_the_users_config_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert remembered.default_path() == tmp_path / "videosim" / "dashboard.json"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"theme": "nord", "strat', "Invalid JSON"),
        ('{"strategy": "sometimes"}', "strategy: Input should be"),
        ('{"policy": {"multiplier": 0.5}}', "policy: Value error, multiplier must be >= 1"),
        ("[1, 2]", "Input should be an object"),
    ],
)
def test_a_corrupted_file_is_one_line_and_the_defaults(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "dashboard.json"
    path.write_text(content)
    loaded, note = remembered.load(path)
    assert loaded == Remembered()
    assert note is not None and "\n" not in note
    assert note.startswith(f"ignored the saved settings in {path}") and reason in note


async def test_restored_choices_shape_the_dashboard_and_its_changes_are_saved(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dashboard.json"
    remembered.save(path, CHOICES)
    app = frozen_dashboard()
    remembered.open_session(app, given=set(), path=path)
    async with app.run_test(size=(110, 30)) as pilot:
        assert app.theme == "nord"
        assert app.defaults.strategy is Strategy.HINTED
        assert app.defaults.policy == CHOICES.policy
        assert (app.sort_column, app.sort_reverse) == (SortColumn.ELAPSED, True)
        await pilot.press("o", "O")  # the next column, and the order back to ascending
        await pilot.pause()
    assert remembered.close_session(app, path=path) is None
    saved, _ = remembered.load(path)
    assert (saved.sort_column, saved.sort_reverse) == (SortColumn.REQUESTS, False)
    assert saved.theme == "nord" and saved.policy == CHOICES.policy


def test_flags_and_the_environment_beat_what_was_remembered() -> None:
    app = frozen_dashboard()
    before = app.defaults
    assert remembered.restore(app, CHOICES, given={"strategy", "multiplier", "theme"}) is None
    assert app.defaults == before  # strategy and policy were given today
    assert app.theme != "nord"
    assert app.sort_column is SortColumn.ELAPSED  # nothing said otherwise


def test_a_flag_is_for_one_run_unless_the_dashboard_changes_it(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.json"
    remembered.save(path, CHOICES)
    app = frozen_dashboard()
    session = remembered.open_session(app, given={"strategy", "multiplier"}, path=path)
    assert app.defaults.strategy is not CHOICES.strategy  # today's flag won
    assert remembered.close_session(app, session, path) is None
    saved, _ = remembered.load(path)
    assert (saved.strategy, saved.policy) == (CHOICES.strategy, CHOICES.policy)

    session = remembered.open_session(app, given={"strategy"}, path=path)
    app.defaults = replace(app.defaults, strategy=Strategy.STREAM)  # picked in the dashboard
    assert remembered.close_session(app, session, path) is None
    assert remembered.load(path)[0].strategy is Strategy.STREAM


async def test_a_corrupted_file_is_a_toast_and_the_dashboard_starts(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.json"
    path.write_text("\x00garbage")
    app = frozen_dashboard()
    remembered.open_session(app, given=set(), path=path)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause()
        notes = [entry.message for entry in app.event_log if entry.title == "Settings"]
        assert len(notes) == 1 and notes[0].startswith("ignored the saved settings")
        assert app.is_running


def test_the_cli_restores_saves_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() end to end, with the terminal part (App.run) replaced by a quick change."""
    seen: list[VideoSimApp] = []

    def run_briefly(app: VideoSimApp, *args: object, **kwargs: object) -> None:
        seen.append(app)
        app.sort_column = SortColumn.STATUS

    monkeypatch.setattr(VideoSimApp, "run", run_briefly)
    remembered.save(remembered.default_path(), CHOICES)
    assert main(["--no-embedded", "--strategy", "backoff"]) == 0
    app = seen[-1]
    assert app.theme == "nord" and app.defaults.strategy is Strategy.BACKOFF  # the flag won
    assert app.defaults.policy == CHOICES.policy
    saved, _ = remembered.load(remembered.default_path())
    assert saved.sort_column is SortColumn.STATUS
    assert saved.strategy is CHOICES.strategy  # the flag was for that run only

    assert main(["--no-embedded", "--reset"]) == 0
    assert seen[-1].theme != "nord"
    assert seen[-1].defaults.policy == BackoffPolicy()
    assert remembered.load(remembered.default_path())[0].theme == seen[-1].theme
