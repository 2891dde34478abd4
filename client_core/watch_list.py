"""Lists of job ids to watch (``--watch-file``, ids pasted into the dashboard): jobs that
exist already and are followed without starting anything."""

from __future__ import annotations

import re
from pathlib import Path

SEPARATORS = re.compile(r"[\s,]+")


def job_ids_in(text: str) -> list[str]:
    """The ids in ``text``, in order, each once: one per line or separated by spaces or
    commas; a line starting with ``#`` is a comment."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    found = [part for part in SEPARATORS.split("\n".join(lines)) if part]
    return list(dict.fromkeys(found))


def read_watch_file(path: Path) -> list[str]:
    """The ids in a file; ``ValueError`` with one line when it cannot be read."""
    try:
        return job_ids_in(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the watch file {path}: {exc}") from None
