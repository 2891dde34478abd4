"""Build the store a ``--store`` URL names."""

from __future__ import annotations

from server.jobs.clock import Clock
from server.stores.base import JobStore, StoreOptions
from server.stores.memory import MemoryJobStore
from server.stores.urls import sqlite_path, store_kind


def build_store(url: str, clock: Clock, options: StoreOptions) -> JobStore:
    """The store ``url`` names, not yet opened. The SQLite and Redis modules load only when
    named, so a memory server never imports a Redis client."""
    kind = store_kind(url)
    if kind == "sqlite":
        from server.stores.sqlite import SqliteJobStore

        return SqliteJobStore(sqlite_path(url), clock, **options)
    if kind == "redis":
        from server.stores.redis import RedisJobStore

        return RedisJobStore(url, clock, **options)
    return MemoryJobStore(clock, **options)
