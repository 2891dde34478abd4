"""Export (``e``): the board, or one job's poll history, to CSV and JSON files.

A screen is for looking; a file is for a spreadsheet, a bug report or a script. Each
export writes the same rows twice, as CSV (one header line, one line per job or poll) and
as JSON (the rows under a key, plus when they were exported), into the export directory
(``--export-dir``, else :func:`default_directory`: the user's data folder, never the
directory the dashboard happened to start in), named by what and when:
``videosim-board-20261201-233000.csv``. The app names the files, with their full paths,
in a toast.

Everything here is plain Python over the model, so it is tested without a terminal; time
is passed in (``now`` from the app's clock for elapsed times, ``when`` for the name).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs

from client_core.comparison_report import html_report, markdown
from client_core.scenario_compare import ScenarioComparison
from tui.model import JobBoard, PollRecord, WatchedJob
from tui.settings import APP_NAME

Row = dict[str, Any]

BOARD_COLUMNS = (
    "key",
    "job_id",
    "state",
    "status",
    "outcome",
    "attempt",
    "requests",
    "strategy",
    "next_delay_s",
    "elapsed_s",
    "asked_duration_s",
    "asked_outcome",
    "policy",
    "last_error",
)
HISTORY_COLUMNS = (
    "at_s",
    "attempt",
    "http_status",
    "status",
    "next_delay_s",
    "reason",
    "strategy",
    "eta_s",
    "error",
)


def job_row(view: WatchedJob, now: float) -> Row:
    """One job as the table knows it, plus what was asked for (enough to start it again)."""
    return {
        "key": view.key,
        "job_id": view.job_id,
        "state": str(view.state),
        "status": view.status,
        "outcome": None if view.outcome is None else str(view.outcome),
        "attempt": view.attempt,
        "requests": view.requests,
        "strategy": str(view.strategy),
        "next_delay_s": view.next_delay_s,
        "elapsed_s": round(view.elapsed(now), 3),
        "asked_duration_s": view.spec.duration_s,
        "asked_outcome": view.spec.outcome,
        "policy": view.spec.policy.describe(),
        "last_error": view.last_error,
    }


def history_row(record: PollRecord) -> Row:
    return {
        "at_s": round(record.at_s, 3),
        "attempt": record.attempt,
        "http_status": record.http_status,
        "status": record.status,
        "next_delay_s": record.next_delay_s,
        "reason": str(record.reason),
        "strategy": str(record.strategy),
        "eta_s": record.eta_s,
        "error": record.error,
    }


def board_rows(board: JobBoard, now: float) -> list[Row]:
    """Every job on the board, in the order they were added (whatever the filter shows)."""
    return [job_row(view, now) for view in board]


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header line; a missing value (None) is an empty cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row.get(name) is None else row[name] for name in columns})
    return out.getvalue()


def to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def file_stem(what: str, when: datetime) -> str:
    return f"videosim-{what}-{when:%Y%m%d-%H%M%S}"


def write_pair(directory: Path, stem: str, csv_text: str, json_text: str) -> list[Path]:
    """Write ``stem.csv`` and ``stem.json`` (see :func:`write_files`)."""
    return write_files(directory, stem, {".csv": csv_text, ".json": json_text})


def write_files(directory: Path, stem: str, texts: Mapping[str, str]) -> list[Path]:
    """Write ``stem`` + each suffix; a second export in the same second gets ``stem-2``,
    never overwriting the first. Raises OSError when the directory is unusable."""
    directory.mkdir(parents=True, exist_ok=True)
    n, name = 1, stem
    while any((directory / f"{name}{suffix}").exists() for suffix in texts):
        n += 1
        name = f"{stem}-{n}"
    paths = []
    for suffix, text in texts.items():
        path = directory / f"{name}{suffix}"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def write_report(comparison: ScenarioComparison, directory: Path, when: datetime) -> list[Path]:
    """A comparison under a scenario: ``.html`` (self-contained) and ``.md``."""
    stem = file_stem(f"compare-{comparison.scenario.name}", when)
    texts = {".html": html_report(comparison), ".md": markdown(comparison)}
    return write_files(directory, stem, texts)


def default_directory() -> Path:
    """``~/.local/share/videosim/exports`` on Linux (``XDG_DATA_HOME`` moves it)."""
    return platformdirs.user_data_path(APP_NAME) / "exports"


def write_board(board: JobBoard, now: float, directory: Path, when: datetime) -> list[Path]:
    rows = board_rows(board, now)
    document = {"exported_at": when.isoformat(timespec="seconds"), "jobs": rows}
    return write_pair(
        directory, file_stem("board", when), to_csv(rows, BOARD_COLUMNS), to_json(document)
    )


def write_job(view: WatchedJob, now: float, directory: Path, when: datetime) -> list[Path]:
    """One job's poll history (CSV), and the job with its history (JSON)."""
    history = [history_row(record) for record in view.history]
    document = {
        "exported_at": when.isoformat(timespec="seconds"),
        "job": job_row(view, now),
        "history": history,
    }
    stem = file_stem(f"job-{safe_name(view.key)}", when)
    return write_pair(directory, stem, to_csv(history, HISTORY_COLUMNS), to_json(document))


def safe_name(key: str) -> str:
    """A row key as part of a file name (``special-pending-job#2`` -> ``...-job-2``)."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in key)
