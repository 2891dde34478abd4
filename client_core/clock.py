"""Time, injectable: every wait in ``client_core`` goes through a ``Clock``.

Real code uses ``SystemClock`` (monotonic time, ``asyncio.sleep``). Tests and
simulations pass a ``SteppingClock`` whose ``sleep`` returns at once and moves
virtual time forward, so schedules can be checked without waiting for them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the client needs from time: a reading and a way to wait."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences matter)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a value <= 0 still yields to the event loop)."""
        ...


class SystemClock:
    """Wall time as the event loop sees it."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SteppingClock:
    """Virtual time: ``sleep`` jumps the clock forward instead of waiting.

    Good for one watcher at a time (each sleep is applied in the order it is
    called); ``sleeps`` records every requested wait so a test can assert the
    exact schedule that was followed.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
