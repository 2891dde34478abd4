"""Turning measurements into tables on the terminal and JSON files on disk.

Every section returns a :class:`SectionResult`: tables of raw numbers (rows are plain
dicts, so they go into JSON unchanged) plus the parameters and notes a reader needs to
interpret them. Formatting happens only when a table is printed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MISSING = "-"
# A figure whose rounds differ by more than this share of their median is shown as the
# range it moved over, never as one number: one number would claim a precision it lacks.
RANGE_ABOVE_SPREAD = 0.25
ROUNDS_SUFFIX = "_rounds"  # row[key + ROUNDS_SUFFIX]: every round behind row[key]
SPREAD_SUFFIX = "_spread"  # row[key + SPREAD_SUFFIX]: (max - min) / median of those rounds


@dataclass(frozen=True, slots=True)
class Column:
    """One column: which row key it shows, under which header, formatted how."""

    key: str
    header: str
    fmt: str = "{}"  # a str.format pattern applied to the raw value, e.g. "{:.2f}"

    def cell(self, row: dict[str, Any]) -> str:
        value = row.get(self.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        if isinstance(value, str):
            return value
        rounds = row.get(self.key + ROUNDS_SUFFIX)
        if rounds and is_range(rounds):
            low, high = self.fmt.format(min(rounds)), self.fmt.format(max(rounds))
            if low != high:  # tiny figures can move a lot and still print the same
                return f"{low} - {high}"
        return self.fmt.format(value)


def spread(values: Sequence[float]) -> float | None:
    """(max - min) / median of the rounds of one figure; None for fewer than two."""
    if len(values) < 2:
        return None
    middle = statistics.median(values)
    if middle == 0:
        return 0.0 if max(values) == min(values) else math.inf
    return (max(values) - min(values)) / abs(middle)


def is_range(values: Sequence[float]) -> bool:
    """True when the rounds moved too much for their median to stand for them."""
    moved = spread(values)
    return moved is not None and moved > RANGE_ABOVE_SPREAD


def over_rounds(key: str, values: Sequence[float | None]) -> dict[str, Any]:
    """Row fields for one figure measured in several rounds: the median under ``key``,
    every round under ``key_rounds`` and their spread under ``key_spread``.

    A :class:`Column` showing ``key`` prints the median, or ``min - max`` when the spread
    is above :data:`RANGE_ABOVE_SPREAD`; a ``spread_column(key)`` prints the spread.
    """
    measured = [value for value in values if value is not None]
    if not measured:
        return {key: None}
    return {
        key: statistics.median(measured),
        key + ROUNDS_SUFFIX: measured,
        key + SPREAD_SUFFIX: spread(measured),
    }


def spread_column(key: str, header: str = "spread") -> Column:
    """The spread of the figure under ``key`` as a percentage ("-" for one round)."""
    return Column(key + SPREAD_SUFFIX, header, "{:.0%}")


@dataclass(slots=True)
class Table:
    """A titled grid of raw values; ``caption`` says how to read it."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    caption: str = ""

    def add(self, **values: Any) -> None:
        self.rows.append(values)

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "caption": self.caption,
            "columns": {column.key: column.header for column in self.columns},
            "rows": self.rows,
        }


@dataclass(slots=True)
class SectionResult:
    """Everything one benchmark section measured, ready to print and to save."""

    name: str  # "poll", "server", ...: also the JSON file name
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # raw data behind the tables
    # The section's own checks that did not hold (e.g. a live board that is not polling):
    # the tables are still printed and saved, then the run exits 1.
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def render(console: Console, result: SectionResult) -> None:
    """Print one section: its tables, then its notes."""
    console.rule(f"[bold]{result.title}[/bold]  ({result.elapsed_s:.1f} s)")
    for table in result.tables:
        rich_table = RichTable(
            title=table.title, caption=table.caption or None, title_justify="left"
        )
        for index, column in enumerate(table.columns):
            rich_table.add_column(column.header, justify="left" if index == 0 else "right")
        for row in table.rows:
            rich_table.add_row(*(column.cell(row) for column in table.columns))
        console.print(rich_table)
    for note in result.notes:
        console.print(f"[dim]- {note}[/dim]")
    for failure in result.failures:
        console.print(f"[red]- check failed: {failure}[/red]")
    ranges = ranged_figures(result)
    if ranges:
        console.print(f"[yellow]- shown as a range (spread > 25 %): {'; '.join(ranges)}[/yellow]")
    console.print()


def as_markdown(result: SectionResult) -> str:
    """One section as GitHub Markdown, so the README quotes a run instead of retyping it."""
    lines = [f"### {result.title}", ""]
    for table in result.tables:
        lines += [f"**{table.title}**", ""]
        lines.append("| " + " | ".join(column.header for column in table.columns) + " |")
        lines.append("|" + "|".join([":--"] + ["--:"] * (len(table.columns) - 1)) + "|")
        for row in table.rows:
            lines.append("| " + " | ".join(column.cell(row) for column in table.columns) + " |")
        if table.caption:
            lines += ["", table.caption]
        lines.append("")
    lines += [f"- {note}" for note in result.notes]
    lines += [f"- **check failed**: {failure}" for failure in result.failures]
    ranges = ranged_figures(result)
    if ranges:
        lines += ["", "Shown as a range (moved > 25 % between rounds): " + "; ".join(ranges)]
    return "\n".join(lines).rstrip() + "\n"


def ranged_figures(result: SectionResult) -> list[str]:
    """ "table / row / column" of every figure printed as a range, for the report's notes."""
    found = []
    for table in result.tables:
        for row in table.rows:
            label = table.columns[0].cell(row)
            for column in table.columns:
                rounds = row.get(column.key + ROUNDS_SUFFIX)
                if rounds and is_range(rounds):
                    where = table.title.split(":")[0].split(",")[0]
                    found.append(f"{where} / {label} / {column.header}")
    return found


def write_json(result: SectionResult, directory: Path, quick: bool) -> Path:
    """Save ``<directory>/<name>.json`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.name}.json"
    document = {
        "section": result.name,
        "title": result.title,
        "quick": quick,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(result.elapsed_s, 2),
        "machine": machine(),
        "parameters": result.parameters,
        "tables": [table.as_json() for table in result.tables],
        "notes": result.notes,
        "failures": result.failures,
        "details": result.details,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def machine() -> dict[str, Any]:
    """What the numbers were measured on; absolute figures only compare on the same one."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average": [round(value, 2) for value in load] if load else None,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
