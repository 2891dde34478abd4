"""Scenarios: the jobs of a run and a timeline of faults, from a small TOML file.

``load_scenario("outage")`` gives a built-in (``builtin/*.toml``); ``load_scenario(path)``
reads a file. A bad name or file raises :class:`ScenarioError` with one line naming the
file, the line and the field. The server plays a scenario's timeline; comparisons and
benchmarks start its jobs.
"""

from __future__ import annotations

import csv
from pathlib import Path

from scenarios.model import FaultState, Phase, Replay, Scenario
from settings_cli import toml_files
from settings_cli.toml_files import TomlFileError, parse_toml_model, read_source

__all__ = ["FaultState", "Phase", "Scenario", "ScenarioError", "builtin_names", "load_scenario"]


class ScenarioError(TomlFileError):
    """A scenario that cannot be used; the message is one line."""


def builtin_names() -> list[str]:
    return toml_files.builtin_names("scenarios")


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    source = read_source("scenarios", "scenario", name_or_path, ScenarioError)
    scenario = parse_toml_model(source.text, source.where, Scenario, ScenarioError)
    durations = scenario.jobs.durations
    if isinstance(durations, Replay) and durations.csv is not None:
        folder = source.folder or Path(".")
        observed = _read_durations(folder / durations.csv, source.where)
        replay = durations.model_copy(update={"seconds": observed, "csv": None})
        jobs = scenario.jobs.model_copy(update={"durations": replay})
        scenario = scenario.model_copy(update={"jobs": jobs})
    return scenario


def _read_durations(path: Path, where: str) -> list[float]:
    """The first column of a CSV of observed durations (seconds > 0); a header is skipped."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = [row for row in csv.reader(file) if row and row[0].strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{where}: cannot read jobs.durations.csv {path}: {exc}") from None
    seconds: list[float] = []
    for number, row in enumerate(rows, start=1):
        try:
            value = float(row[0])
        except ValueError:
            if number == 1:
                continue  # a header
            raise ScenarioError(
                f"{path} line {number}: not a number of seconds: {row[0]!r}"
            ) from None
        if not 0 < value <= 86_400:
            raise ScenarioError(
                f"{path} line {number}: a duration must be in (0, 86400] s (got {value:g})"
            )
        seconds.append(value)
    if not seconds:
        raise ScenarioError(f"{path}: no durations")
    return seconds
