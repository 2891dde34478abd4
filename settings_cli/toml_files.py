"""Declarative TOML files read into pydantic models, every problem said in one line.

API profiles and scenarios are both small TOML files a user writes by hand, or built-ins
shipped in a package's ``builtin/`` folder and named by their stem; a mistake in one must
name the file, the line and the field, and never show a traceback."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class TomlFileError(ValueError):
    """A file that cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class TomlSource:
    text: str
    where: str  # the file's path, or "NAME (built in)": what messages name
    folder: Path | None  # the file's folder (paths inside it are relative to it); None: built in


def builtin_names(package: str) -> list[str]:
    """The built-ins of ``package``: the stems of its ``builtin/*.toml``."""
    folder = resources.files(package) / "builtin"
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir()
                  if entry.name.endswith(".toml"))  # fmt: skip


def read_source(
    package: str, kind: str, name_or_path: str, error: type[TomlFileError] = TomlFileError
) -> TomlSource:
    """A built-in of ``package`` by name, or a file by path; ``error`` says why not."""
    if name_or_path in builtin_names(package):
        source = resources.files(package) / "builtin" / f"{name_or_path}.toml"
        return TomlSource(source.read_text(encoding="utf-8"), f"{name_or_path} (built in)", None)
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        known = ", ".join(builtin_names(package))
        raise error(f"unknown {kind} {name_or_path!r}: a built-in name ({known}) "
                    "or the path of a .toml file")  # fmt: skip
    try:
        return TomlSource(path.read_text(encoding="utf-8"), str(path), path.parent)
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {kind} {path}: {exc}") from None


def parse_toml_model(
    text: str, where: str, model: type[Model], error: type[TomlFileError] = TomlFileError
) -> Model:
    """``text`` (from ``where``, a file name for messages) as a ``model``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = sorted(exc.errors(), key=lambda e: e["type"] == "missing")  # odd first
        first = problems[0]
        location = [str(part) for part in first["loc"]]
        field = ".".join(location) or "(the file)"
        line = _line_of(text, location)
        at = f" line {line}" if line else ""
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise error(f"{where}{at}: {field}: {message}{more}") from None


def _line_of(text: str, location: list[str]) -> int | None:
    """The line of the key an error names: its table's header first, then the key."""
    lines = text.splitlines()
    start = 0
    keys = [part for part in location if not part.isdigit()]
    for depth in range(len(keys) - 1, 0, -1):
        header = "[" + ".".join(keys[:depth]) + "]"
        found = next((n for n, line in enumerate(lines) if line.strip() == header), None)
        if found is not None:
            start = found
            break
    if not keys:
        return None
    key = keys[-1]
    for number in range(start, len(lines)):
        stripped = lines[number].lstrip()
        if stripped.startswith((f"{key} ", f"{key}=")):
            return number + 1
    return start + 1 if start else None
