"""Idempotent starts: the answer of a recent start, found again by its Idempotency-Key.

A client that retries a start (its first try timed out, or the answer got lost) sends the
same ``Idempotency-Key`` again and gets the jobs that the first try created, instead of
new ones. Keys live in a scope (one per API key, else one per peer address), so one
caller can neither see nor spoil another's. Every key is kept for the same time, so the
oldest entry is always the first to expire: insertion order is expiry order, and both
the expiry sweep and the eviction at the size bound take O(1) per entry.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from server.jobs.clock import Clock
from server.jobs.job import Job


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


@dataclass(frozen=True, slots=True)
class _Remembered:
    fingerprint: bytes
    jobs: tuple[Job, ...]
    expires_at: float


def fingerprint(route: str, canonical_body: str) -> bytes:
    """What makes two requests "the same": the route and the body as validated."""
    return hashlib.sha256(f"{route}\n{canonical_body}".encode()).digest()


class IdempotencyTable:
    """Remembers which jobs each (scope, key) created, for ``keep_s`` seconds."""

    def __init__(self, clock: Clock, *, keep_s: float, max_keys: int) -> None:
        self._clock = clock
        self._keep_s = keep_s
        self._max_keys = max_keys
        self._entries: OrderedDict[tuple[str, str], _Remembered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, scope: str, key: str, print_: bytes) -> tuple[Job, ...] | None:
        """The jobs made earlier under this key, None if it is new.

        Raises :class:`IdempotencyConflict` if the key came with another body before.
        """
        self._expire()
        remembered = self._entries.get((scope, key))
        if remembered is None:
            return None
        if remembered.fingerprint != print_:
            raise IdempotencyConflict(
                "Idempotency-Key was already used with a different request; "
                "send a new key for a new start"
            )
        return remembered.jobs

    def remember(
        self,
        scope: str,
        key: str,
        print_: bytes,
        jobs: tuple[Job, ...],
        expires_at: float | None = None,
    ) -> None:
        """Keep the answer until ``expires_at`` (default: ``keep_s`` from now; a store
        that reloads its keys passes the time they were given)."""
        self._expire()
        while len(self._entries) >= self._max_keys:
            self._entries.popitem(last=False)  # the oldest goes first, as it would expire first
        if expires_at is None:
            expires_at = self._clock.now() + self._keep_s
        self._entries[(scope, key)] = _Remembered(print_, jobs, expires_at)

    def forget(self, scope: str, key: str) -> None:
        """Drop the key (the start it answered was not committed after all)."""
        self._entries.pop((scope, key), None)

    def _expire(self) -> None:
        now = self._clock.now()
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if oldest.expires_at > now:
                return
            entries.popitem(last=False)
