"""Who may send the next request: one queue in front of the client's connections.

Every request of one ``VideoSimClient`` (from any number of watchers) is admitted
here, in this order of checks:

1. the shared 429 pause (the server rate-limits per client, so one ``Retry-After``
   holds everyone);
2. the requests-per-second cap (``max_rps``; ``None`` = unlimited);
3. the in-flight cap (``max_in_flight``).

Requests wait in one of two lanes. ``INTERACTIVE`` (starts, job records, health:
what a person is waiting for) is always admitted ahead of ``BACKGROUND`` (watch
polls), so a click in the dashboard never queues behind ten thousand polls. Within
a lane it is first come, first served.

Long-poll holds are counted too: at most half the in-flight cap may be held
requests, so short polls never starve behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from enum import StrEnum

from client_core.clock import Clock
from client_core.pacing import PauseGate, TokenBucket


class Lane(StrEnum):
    INTERACTIVE = "interactive"  # starts, job records, health: someone is waiting
    BACKGROUND = "background"  # watch polls: a little later costs nothing


class Admission:
    """The in-flight slots, the 429 pause and the rate cap, with two priority lanes."""

    def __init__(self, clock: Clock, *, max_in_flight: int, max_rps: float | None) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1 (got {max_in_flight})")
        self._clock = clock
        self.max_in_flight = max_in_flight
        self.pause = PauseGate(clock)
        self.rate = TokenBucket(max_rps, clock) if max_rps else None
        self.in_flight = 0
        self.peak_in_flight = 0
        self.max_holds = max(1, max_in_flight // 2)
        self.holds = 0
        self._queues: dict[Lane, deque[asyncio.Future[None]]] = {
            Lane.INTERACTIVE: deque(),
            Lane.BACKGROUND: deque(),
        }
        self._timer: asyncio.Task[None] | None = None  # wakes the queue after a pause

    # -- slots ---------------------------------------------------------------------

    async def acquire(self, lane: Lane) -> None:
        """Wait for a slot in ``lane``; pair every successful acquire with ``release``."""
        if self._idle_queues() and self._free_now():
            self._take()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues[lane].append(waiter)
        self._dispatch()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._dispatch()

    def queued(self, lane: Lane) -> int:
        return sum(not waiter.done() for waiter in self._queues[lane])

    # -- long-poll holds -------------------------------------------------------------

    @property
    def hold_slot_free(self) -> bool:
        return self.holds < self.max_holds

    def take_hold(self) -> None:
        self.holds += 1

    def release_hold(self) -> None:
        self.holds -= 1

    async def aclose(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    # -- internals -------------------------------------------------------------------

    def _idle_queues(self) -> bool:
        return not self._queues[Lane.INTERACTIVE] and not self._queues[Lane.BACKGROUND]

    def _wait_needed(self) -> float:
        """Seconds until the pause and the rate cap both allow one more request."""
        wait = self.pause.remaining()
        if self.rate is not None:
            wait = max(wait, self.rate.wait_s())
        return wait

    def _free_now(self) -> bool:
        return self.in_flight < self.max_in_flight and self._wait_needed() <= 0

    def _take(self) -> None:
        if self.rate is not None:
            self.rate.reserve()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _next_waiter(self) -> asyncio.Future[None] | None:
        for lane in (Lane.INTERACTIVE, Lane.BACKGROUND):
            queue = self._queues[lane]
            while queue and queue[0].done():  # cancelled while waiting
                queue.popleft()
            if queue:
                return queue[0]
        return None

    def _dispatch(self) -> None:
        """Grant free slots to waiters, interactive first; arm a timer if time must pass."""
        while self.in_flight < self.max_in_flight:
            waiter = self._next_waiter()
            if waiter is None:
                return
            wait = self._wait_needed()
            if wait > 0:
                self._wake_after(wait)
                return
            lane = Lane.INTERACTIVE if self._queues[Lane.INTERACTIVE] else Lane.BACKGROUND
            self._queues[lane].popleft()
            self._take()
            waiter.set_result(None)

    def _wake_after(self, seconds: float) -> None:
        if self._timer is not None and not self._timer.done():
            return
        self._timer = asyncio.get_running_loop().create_task(
            self._sleep_then_dispatch(seconds), name="videosim-admission-timer"
        )

    async def _sleep_then_dispatch(self, seconds: float) -> None:
        await self._clock.sleep(seconds)
        self._timer = None
        self._dispatch()
