"""Reading the forms' text fields: what a user typed, to a value or one clear line.

Each parser raises :class:`FieldError` whose message names the field once and says what
it accepts, e.g. ``duration: at most 3600 s, the server's limit (got 3601)``. The same
parsers back the inputs' validators (a red field as you type) and the forms' submit, so
the two never disagree. Numbers are read strictly: ``1e3`` is not a count, ``nan`` and
``inf`` are not durations, and nothing is silently dropped from what was typed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from textual.validation import ValidationResult, Validator

from tui.settings import DEFAULT_MAX_DURATION_S

_WHOLE = re.compile(r"-?[0-9]+")
_NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_DURATION = re.compile(rf"({_NUMBER})(?:\s*-\s*({_NUMBER}))?")


class FieldError(ValueError):
    """A field's text is not a value it accepts; the message is the whole line to show."""


def parse_count(text: str, name: str, maximum: int | None, *, minimum: int = 1) -> int:
    """A whole number written with digits only, within [minimum, maximum]."""
    shown = text.strip()
    within = f"from {minimum} to {maximum:,}" if maximum is not None else f"of {minimum} or more"
    if not _WHOLE.fullmatch(shown):
        got = repr(shown) if shown else "nothing"
        raise FieldError(f"{name}: a whole number {within} (got {got})")
    value = int(shown)
    if value < minimum or (maximum is not None and value > maximum):
        raise FieldError(f"{name}: a whole number {within} (got {value:,})")
    return value


def parse_integer(text: str, name: str) -> int:
    """Any whole number written with digits (and a sign), as a seed."""
    shown = text.strip()
    if not _WHOLE.fullmatch(shown):
        got = repr(shown) if shown else "nothing"
        raise FieldError(f"{name}: a whole number (got {got})")
    return int(shown)


def parse_durations(
    text: str,
    *,
    max_s: float = DEFAULT_MAX_DURATION_S,
    blank_allowed: bool = True,
) -> tuple[float | None, float | None]:
    """``""`` (the server's default, when allowed), ``"3"`` or a range ``"1.5-4"``.

    Every number must be finite, above 0 and at most ``max_s`` (the server refuses the rest).
    """
    shown = text.strip()
    if not shown:
        if blank_allowed:
            return None, None
        raise FieldError("duration: a number of seconds, or a range like 1-5")
    match = _DURATION.fullmatch(shown)
    if match is None:
        raise FieldError(f"duration: a number of seconds, or a range like 1-5 (got {shown!r})")
    typed = [part for part in (match[1], match[2]) if part is not None]
    low, high = float(typed[0]), float(typed[-1])
    for part in typed:
        value = float(part)
        if not math.isfinite(value) or value > max_s:
            raise FieldError(f"duration: at most {max_s:g} s, the server's limit (got {part})")
        if value <= 0:
            raise FieldError("duration: seconds must be greater than 0")
    if high < low:
        raise FieldError(f"duration: a range goes from low to high, e.g. {high:g}-{low:g}")
    return low, high


class FieldValidator(Validator):
    """An Input validator from one of the parsers above: the field turns red as you type."""

    def __init__(self, parse: Callable[[str], object]) -> None:
        super().__init__()
        self._parse = parse

    def validate(self, value: str) -> ValidationResult:
        try:
            self._parse(value)
        except FieldError as exc:
            return self.failure(str(exc))
        return self.success()
