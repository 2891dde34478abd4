"""Many timers on one task: a heap of wake-up times, slept through on the injected clock.

Ten thousand push watches each need a deadline (and a safety-net time) while they wait.
A task and a sleep per watch would cost more CPU than the pushed states themselves, so
every watch of a client shares this: ``call_at`` is one heap push, ``cancel`` marks the
entry, and one task sleeps until the earliest entry is due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from client_core.clock import Clock
from client_core.racing import stop_task


class Alarm:
    """A pending call; ``cancel()`` before it is due and it never happens."""

    __slots__ = ("at", "callback", "order", "owner")

    def __init__(self, at: float, order: int, callback: Callable[[], None], owner: Alarms) -> None:
        self.at = at
        self.order = order
        self.callback: Callable[[], None] | None = callback
        self.owner = owner

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self.owner.cancelled += 1

    def __lt__(self, other: Alarm) -> bool:
        return (self.at, self.order) < (other.at, other.order)


class Alarms:
    """``call_at(when, callback)`` on ``clock``'s time; one task for all of them."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[Alarm] = []
        self._order = itertools.count()
        self._earlier = asyncio.Event()  # an alarm now comes before the one slept for
        self._sleeping_until = float("inf")
        self._task: asyncio.Task[None] | None = None
        self.cancelled = 0  # cancelled alarms still in the heap

    def call_at(self, at: float, callback: Callable[[], None]) -> Alarm:
        alarm = Alarm(at, next(self._order), callback, self)
        heapq.heappush(self._heap, alarm)
        if self.cancelled > 1024 and 2 * self.cancelled > len(self._heap):
            # Mostly cancelled (watches that ended early): keep the heap small.
            self._heap = [entry for entry in self._heap if entry.callback is not None]
            heapq.heapify(self._heap)
            self.cancelled = 0
        if at < self._sleeping_until:
            self._earlier.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="videosim-alarms")
        return alarm

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        clock = self._clock
        heap = self._heap
        while True:
            heap = self._heap
            now = clock.now()
            while heap and (heap[0].callback is None or heap[0].at <= now):
                alarm = heapq.heappop(heap)
                if alarm.callback is None:
                    self.cancelled -= 1
                else:
                    callback, alarm.callback = alarm.callback, None
                    callback()
            if not heap:
                self._sleeping_until = float("inf")
                return
            self._sleeping_until = heap[0].at
            self._earlier.clear()
            sleep = asyncio.ensure_future(clock.sleep(heap[0].at - now))
            earlier = asyncio.ensure_future(self._earlier.wait())
            try:
                await asyncio.wait([sleep, earlier], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in (sleep, earlier):
                    if not waiting.done():
                        waiting.cancel()
