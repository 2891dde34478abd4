"""Scenarios: the jobs of a run and a timeline of faults, from a small TOML file.

``load_scenario("outage")`` gives a built-in (``builtin/*.toml``); ``load_scenario(path)``
reads a file. A bad name or file raises :class:`ScenarioError` with one line naming the
file, the line and the field. The server plays a scenario's timeline; comparisons and
benchmarks start its jobs.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from scenarios.model import FaultState, Phase, Replay, Scenario
from settings_cli.toml_files import TomlFileError, parse_toml_model

__all__ = ["FaultState", "Phase", "Scenario", "ScenarioError", "builtin_names", "load_scenario"]


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message is one line."""


def builtin_names() -> list[str]:
    folder = resources.files("scenarios") / "builtin"
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir()
                  if entry.name.endswith(".toml"))  # fmt: skip


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    if name_or_path in builtin_names():
        source = resources.files("scenarios") / "builtin" / f"{name_or_path}.toml"
        return _parse(source.read_text(encoding="utf-8"), f"{name_or_path} (built in)", None)
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        known = ", ".join(builtin_names())
        raise ScenarioError(f"unknown scenario {name_or_path!r}: a built-in name ({known}) "
                            "or the path of a .toml file")  # fmt: skip
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    return _parse(text, str(path), path.parent)


def _parse(text: str, where: str, folder: Path | None) -> Scenario:
    try:
        scenario = parse_toml_model(text, where, Scenario)
    except TomlFileError as exc:
        raise ScenarioError(str(exc)) from None
    durations = scenario.jobs.durations
    if isinstance(durations, Replay) and durations.csv is not None:
        observed = _read_durations(Path(folder or ".") / durations.csv, where)
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
