"""Declarative TOML files read into pydantic models, every problem said in one line.

API profiles and scenarios are both small TOML files a user writes by hand; a mistake in
one must name the file, the line and the field, and never show a traceback."""

from __future__ import annotations

import tomllib
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class TomlFileError(ValueError):
    """A file that cannot be used; the message is one line."""


def parse_toml_model(text: str, where: str, model: type[Model]) -> Model:
    """``text`` (from ``where``, a file name for messages) as a ``model``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"{where}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] == "missing")  # the odd first
        error = errors[0]
        location = [str(part) for part in error["loc"]]
        field = ".".join(location) or "(the file)"
        line = _line_of(text, location)
        at = f" line {line}" if line else ""
        message = error["msg"].removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise TomlFileError(f"{where}{at}: {field}: {message}{more}") from None


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
