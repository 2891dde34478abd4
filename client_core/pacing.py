"""Client-wide limits on how fast requests leave: a rate pacer and a pause.

Both are shared by every watcher of one ``VideoSimClient``, so ten thousand
watchers together still respect one requests-per-second cap and one
``Retry-After`` from a 429 (the server rate-limits per client, not per job).
"""

from __future__ import annotations

from client_core.clock import Clock


class TokenBucket:
    """At most ``rate`` requests per second, with bursts of up to ``burst``.

    Implemented as a virtual schedule (the "generic cell rate algorithm"):
    each caller reserves the next free slot *before* it waits, so concurrent
    callers queue in arrival order without a lock and without busy-waiting.
    A caller cancelled while waiting forfeits its slot, which only ever makes
    the real rate lower than the cap.
    """

    def __init__(self, rate: float, clock: Clock, burst: int = 1) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests/s (got {rate})")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 (got {burst})")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._interval = 1.0 / rate
        self._tolerance = self._interval * (burst - 1)
        self._theoretical_arrival = clock.now()

    def wait_s(self) -> float:
        """How long until a slot is free, without claiming it."""
        return max(0.0, self._theoretical_arrival - self._tolerance - self._clock.now())

    def reserve(self) -> float:
        """Claim the next slot; returns how long the caller must wait for it."""
        now = self._clock.now()
        start = max(now, self._theoretical_arrival - self._tolerance)
        self._theoretical_arrival = max(self._theoretical_arrival, start) + self._interval
        return start - now

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await self._clock.sleep(wait)


class PauseGate:
    """A shared "not before" time, set by a 429's ``Retry-After``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until = float("-inf")

    def pause_for(self, seconds: float) -> None:
        """Hold every request until ``seconds`` from now (never shortens a pause)."""
        self._until = max(self._until, self._clock.now() + seconds)

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock.now())

    async def wait(self) -> None:
        # Loop: another 429 may extend the pause while we sleep.
        while (left := self.remaining()) > 0:
            await self._clock.sleep(left)
