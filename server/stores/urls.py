"""Which store a ``--store`` URL names, checked where the settings are read.

``--store`` / ``VIDEOSIM_STORE`` is a URL:

- ``memory`` (default): jobs in this process's memory, the fastest; gone when it stops.
- ``sqlite:///path/jobs.db``: the same memory tables, plus a SQLite file (WAL) that every
  answered start is committed to first, so jobs survive ``kill -9``. One process only.
- ``redis://host:port/db``: jobs in Redis, shared by every worker and host that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

StoreKind = Literal["memory", "sqlite", "redis"]


class StoreUrlError(ValueError):
    """The store URL names no store this server has."""


def store_kind(url: str) -> StoreKind:
    """``memory``, ``sqlite`` or ``redis``; raises :class:`StoreUrlError` for anything else."""
    if url == "memory":
        return "memory"
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        sqlite_path(url)  # refuses an ambiguous path
        return "sqlite"
    if url.startswith(("redis://", "rediss://", "unix://")):
        return "redis"
    raise StoreUrlError(
        f"{url!r} is not a store: use memory, sqlite:///path/jobs.db or redis://host:port/db"
    )


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///`` URL names: relative after three slashes, absolute after
    four. Raises :class:`StoreUrlError` for a relative path that reads like an absolute
    one written with three slashes (``sqlite:///tmp/jobs.db`` when ``./tmp`` does not
    exist but ``/tmp`` does), which would silently make a new directory here."""
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_absolute():
        first = path.parts[0]
        if len(path.parts) > 1 and not Path(first).exists() and (Path("/") / first).is_dir():
            raise StoreUrlError(
                f"{url!r} names the relative path {path} (no ./{first} here); for "
                f"/{path} write sqlite:////{path} (four slashes)"
            )
    return path
