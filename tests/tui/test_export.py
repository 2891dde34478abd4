"""Export (``e``): the files' contents (plain functions), and the keys that write them (pilot)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.tui.conftest import (
    JOB_DONE,
    JOB_LOST,
    FakeClient,
    FrozenClock,
    fast_settings,
    synthetic_batch,
    wait_until,
)
from tui import export
from tui.app import VideoSimApp, make_app
from tui.model import JobBoard
from tui.screens.detail import DetailScreen
from tui.watch_pool import JobStarted, WatchEvent

WHEN = datetime(2026, 12, 1, 23, 30, 5)


def synthetic_board() -> JobBoard:
    board = JobBoard()
    for item in synthetic_batch().items:
        if isinstance(item, JobStarted):
            board.add(item.key, item.job_id, item.spec, item.at)
        elif isinstance(item, WatchEvent):
            board.apply(item.key, item.event, item.at)
    return board


def exported_toasts(app: VideoSimApp) -> list[str]:
    return [entry.message for entry in app.event_log if entry.title == "Exported"]


def test_board_csv_and_json_hold_every_job_with_the_same_values(tmp_path: Path) -> None:
    board = synthetic_board()
    paths = export.write_board(board, 1000.0, tmp_path, WHEN)
    assert [p.name for p in paths] == [
        "videosim-board-20261201-233005.csv",
        "videosim-board-20261201-233005.json",
    ]
    with paths[0].open(newline="") as f:
        rows = list(csv.DictReader(f))
    document = json.loads(paths[1].read_text())
    assert document["exported_at"] == "2026-12-01T23:30:05"
    assert [row["key"] for row in rows] == [job["key"] for job in document["jobs"]]
    assert len(rows) == len(board) == 7
    done = next(row for row in rows if row["job_id"] == JOB_DONE)
    assert (done["state"], done["outcome"], done["attempt"]) == ("completed", "completed", "3")
    assert done["elapsed_s"] == "3.1" and done["asked_duration_s"] == "3.0"
    lost = next(job for job in document["jobs"] if job["job_id"] == JOB_LOST)
    assert lost["outcome"] == "unreachable"
    assert lost["last_error"] == "connection refused [errno 111]"
    assert lost["next_delay_s"] is None  # None in JSON, an empty cell in CSV
    assert next(row for row in rows if row["job_id"] == JOB_LOST)["next_delay_s"] == ""


def test_job_history_and_a_second_export_never_overwrites(tmp_path: Path) -> None:
    view = synthetic_board()[JOB_DONE]
    first = export.write_job(view, 1000.0, tmp_path / "new" / "dir", WHEN)
    second = export.write_job(view, 1000.0, tmp_path / "new" / "dir", WHEN)
    assert first[0].name == f"videosim-job-{JOB_DONE}-20261201-233005.csv"
    assert second[0].name == f"videosim-job-{JOB_DONE}-20261201-233005-2.csv"
    with first[0].open(newline="") as f:
        history = list(csv.DictReader(f))
    assert [(r["attempt"], r["status"], r["reason"]) for r in history] == [
        ("1", "pending", "schedule"),
        ("2", "pending", "schedule"),
        ("3", "completed", "final"),
    ]
    document = json.loads(first[1].read_text())
    assert document["job"]["job_id"] == JOB_DONE
    assert [r["at_s"] for r in document["history"]] == [0.1, 1.1, 3.1]


def test_special_characters_in_a_key_make_a_safe_file_name() -> None:
    assert export.safe_name("special-pending-job#2") == "special-pending-job-2"
    assert export.safe_name("../x") == "---x"


async def test_e_exports_the_board_and_the_detail_views_e_the_job(tmp_path: Path) -> None:
    app = make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(health_interval_s=3600.0, export_dir=str(tmp_path / "out")),
        clock=FrozenClock(),
    )
    async with app.run_test(size=(120, 32)) as pilot:
        app.ingest(synthetic_batch())
        await pilot.press("e")
        boards = sorted((tmp_path / "out").glob("videosim-board-*"))
        assert [p.suffix for p in boards] == [".csv", ".json"]
        assert len(json.loads(boards[1].read_text())["jobs"]) == 7
        assert exported_toasts(app)[-1] == (
            f"{boards[0].name} and {boards[1].name} in {tmp_path / 'out'}"
        )

        app.open_detail(JOB_DONE)
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail view")
        await pilot.press("e")
        jobs = sorted((tmp_path / "out").glob(f"videosim-job-{JOB_DONE}-*"))
        assert [p.suffix for p in jobs] == [".csv", ".json"]
        assert exported_toasts(app)[-1].endswith(f"{jobs[1].name} in {tmp_path / 'out'}")


async def test_exports_go_to_the_data_folder_and_an_empty_board_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not into whatever directory the dashboard started in (the repository after make
    run): the user's data folder, named in full; nothing to export is said, not written."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    app = make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(health_interval_s=3600.0),
        clock=FrozenClock(),
    )
    async with app.run_test(size=(120, 32)) as pilot:
        await pilot.press("e")
        warnings = [entry.message for entry in app.event_log if entry.severity == "warning"]
        assert warnings == ["Nothing to export: the board has no jobs yet"]
        app.ingest(synthetic_batch())
        await pilot.press("e")
    folder = tmp_path / "data" / "videosim" / "exports"
    assert len(names_in(folder, "videosim-board-*")) == 2
    assert exported_toasts(app)[-1].endswith(f" in {folder}")
    assert names_in(tmp_path) == ["data"]  # nothing in the directory it started in


def names_in(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(path.name for path in folder.glob(pattern))


async def test_an_unusable_export_dir_is_a_toast_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    app = make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:1",
        settings=fast_settings(health_interval_s=3600.0, export_dir=str(blocker)),
        clock=FrozenClock(),
    )
    async with app.run_test(size=(120, 32)) as pilot:
        app.ingest(synthetic_batch())
        await pilot.press("e")
        failed = [entry for entry in app.event_log if entry.severity == "error"]
        assert failed[-1].message.startswith("Export failed:")
        assert app.is_running
