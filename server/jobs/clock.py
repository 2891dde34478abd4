"""Where the server gets the time from.

Job state is a pure function of the clock, so tests swap in :class:`FakeClock` and move
time forward by hand instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time in epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock: job times are reported to clients as epoch seconds."""

    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to, for deterministic tests."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward and return the new time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        return self._now
