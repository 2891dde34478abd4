"""Every timed wake-up of the server process: one heap and one alarm.

Long-polls wait for their job to finish or their wait to run out, event streams for the
next job of theirs to finish, webhooks for a delivery's next attempt. Each asks this
schedule for a :class:`Timer`: a callback due when the server's clock reaches a moment
(a job's finish time), or when the monotonic clock reaches a deadline (a wait's end),
whichever comes first. All timers sit in one heap ordered by when they are due and one
alarm is set for its head, so timers due together share one wake-up and ten thousand
waits cost no task, event or loop timer each.

The two clocks can disagree (the wall clock drifts from the monotonic one; a test's fake
clock stands still): a timer whose alarm went off while the server's clock still says
"not yet" is aimed again, never fired early. Tests that move a fake clock call
:meth:`Schedule.fire_due` after ``advance()``.

The alarm is a Linux timerfd the event loop watches, set to the microsecond. The loop's
own timers count in whole milliseconds (uvloop): aimed in between, they fired up to 1 ms
early and the re-check came 1 ms or more later (lag p99 2.5-4.1 ms); aimed at the next
whole millisecond they are never early but 0-2 ms late. Where there is no timerfd, that
loop timer is the alarm (python -m bench.long_poll_lag compares them).
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Protocol

from server.jobs.clock import Clock

# Cancelled timers still in the heap are dropped all at once when they are this many and
# outnumber the live ones.
_COMPACT_AFTER = 1024
# A loop timer may fire this much before the moment it was set for (asyncio's resolution).
_MARGIN_S = 1e-6
# A timer whose alarm went off while the server's clock still says "not yet" is looked at
# again this much later at the earliest: any sooner and a clock that stands still spins
# the loop.
_RECHECK_S = 0.0002


class Timer:
    """One pending callback; :meth:`cancel` it and it never runs."""

    __slots__ = ("at", "callback", "deadline", "schedule")

    def __init__(
        self, at: float, deadline: float, callback: Callable[[], object], schedule: Schedule
    ) -> None:
        self.at = at  # on the server's clock
        self.deadline = deadline  # on the monotonic clock
        self.callback: Callable[[], object] | None = callback
        self.schedule = schedule

    @property
    def pending(self) -> bool:
        return self.callback is not None

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self.schedule.cancelled()


class Schedule:
    """Calls each timer's callback once, from the event loop, when it is due."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Timer]] = []  # (monotonic aim, tie-breaker, timer)
        self._order = itertools.count()
        self._alarm: _Alarm | None = None  # set for the head of the heap, while there is one
        self._alarm_at = math.inf
        self._stale = 0  # entries of the heap whose timer ran or was cancelled

    def __len__(self) -> int:
        """Entries in the heap, cancelled ones not yet dropped included."""
        return len(self._heap)

    @property
    def armed(self) -> bool:
        """An alarm (a file descriptor) is held: something is due at a finite time."""
        return self._alarm is not None

    def call_at(
        self, at: float, callback: Callable[[], object], *, deadline: float = math.inf
    ) -> Timer:
        """``callback()`` once the server's clock reaches ``at`` or the monotonic clock
        reaches ``deadline``, whichever comes first."""
        timer = Timer(at, deadline, callback, self)
        monotonic_now = time.monotonic()
        self._push(timer, min(deadline, monotonic_now + (at - self.clock.now())))
        return timer

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        """``callback()`` after ``seconds`` of monotonic time."""
        return self.call_at(math.inf, callback, deadline=time.monotonic() + seconds)

    def fire_due(self) -> int:
        """Run every timer whose moment the server's clock has reached; returns how many.
        The alarm does this on its own; tests that move a fake clock call it."""
        now = self.clock.now()
        fired = 0
        for _, _, timer in list(self._heap):
            if timer.callback is not None and timer.at <= now:
                fired += 1
                self._stale += 1  # its entry stays until popped or compacted
                _fire(timer)
        self._compact()
        return fired

    def cancelled(self) -> None:
        """A timer was cancelled: its entry stays until popped or compacted."""
        self._stale += 1
        self._compact()

    def cancel_all(self) -> list[Timer]:
        """Forget every timer (the server is stopping); returns the ones still pending."""
        pending = [timer for _, _, timer in self._heap if timer.callback is not None]
        self._heap.clear()
        self._stale = 0
        self._stop_alarm()
        return pending

    def _push(self, timer: Timer, aim: float) -> None:
        heapq.heappush(self._heap, (aim, next(self._order), timer))
        if aim < self._alarm_at:
            self._set_alarm(aim)

    def _set_alarm(self, at: float) -> None:
        if not math.isfinite(at):  # only timers that are never due: nothing to wake for
            self._stop_alarm()
            return
        if self._alarm is None:
            self._alarm = _alarm(asyncio.get_running_loop(), self._on_alarm)
        self._alarm_at = at
        self._alarm.set(at)

    def _stop_alarm(self) -> None:
        """Nothing is due any more: give the alarm (a file descriptor) back."""
        if self._alarm is not None:
            self._alarm.close()
            self._alarm = None
        self._alarm_at = math.inf

    def _on_alarm(self) -> None:
        self._alarm_at = math.inf
        monotonic_now = time.monotonic() + _MARGIN_S
        now = self.clock.now()
        heap = self._heap
        while heap and (heap[0][2].callback is None or heap[0][0] <= monotonic_now):
            _, _, timer = heapq.heappop(heap)
            if timer.callback is None:
                self._stale -= 1
                continue
            if timer.at <= now or timer.deadline <= monotonic_now:
                _fire(timer)
            else:  # the server's clock and the monotonic one disagree: aim again
                remaining = max(timer.at - now, _RECHECK_S)
                aim = min(timer.deadline, monotonic_now + remaining)
                heapq.heappush(heap, (aim, next(self._order), timer))
        if heap:
            self._set_alarm(heap[0][0])
        else:
            self._stop_alarm()

    def _compact(self) -> None:
        if self._stale > _COMPACT_AFTER and self._stale > len(self._heap) - self._stale:
            # in place: _on_alarm may be walking this list (a callback cancelled a timer)
            self._heap[:] = [entry for entry in self._heap if entry[2].callback is not None]
            heapq.heapify(self._heap)
            self._stale = 0
            if not self._heap:
                self._stop_alarm()


def _fire(timer: Timer) -> None:
    callback, timer.callback = timer.callback, None
    if callback is not None:
        callback()


# --- alarms ---------------------------------------------------------------------------


class _Alarm(Protocol):
    """Calls back once the monotonic clock reaches the moment last set."""

    def set(self, at: float) -> None: ...

    def close(self) -> None: ...


def _alarm(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> _Alarm:
    """A timerfd alarm where Linux has one, else a loop timer."""
    if _timerfd is not None:
        fd = _timerfd.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd >= 0:
            return _TimerFdAlarm(loop, fd, callback)
    return _LoopTimerAlarm(loop, callback)


class _LoopTimerAlarm:
    """A loop timer aimed at the next whole millisecond at or after the moment: the
    loop's clock counts whole milliseconds (uvloop), and a timer aimed in between fires up
    to 1 ms early. Computed from time.monotonic(), the clock both uvloop and asyncio count
    in, not from loop.time(), which uvloop rounds down to when the loop last woke."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._timer: asyncio.TimerHandle | None = None

    def set(self, at: float) -> None:
        self.close()
        self._timer = self._loop.call_at(math.ceil(at * 1000) / 1000, self._callback)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("it_interval", _TimeSpec), ("it_value", _TimeSpec)]


# From <sys/timerfd.h> and <time.h> (Linux); os.timerfd_create arrives in Python 3.13.
_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
_timerfd = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
if _timerfd is not None and not hasattr(_timerfd, "timerfd_create"):
    _timerfd = None


class _TimerFdAlarm:
    """A Linux timerfd on the monotonic clock, which the loop watches: it becomes
    readable at the moment set, to the microsecond."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._callback = callback
        self._spec = _ITimerSpec()  # reused: set() runs once per wake-up
        self._spec_ref = ctypes.byref(self._spec)
        loop.add_reader(fd, self._ready)

    def set(self, at: float) -> None:
        seconds = math.floor(at)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = int((at - seconds) * 1e9)
        assert _timerfd is not None
        if _timerfd.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None):
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)

    def _ready(self) -> None:
        try:
            os.read(self._fd, 8)  # how often it expired: once is all that matters
        except BlockingIOError:  # set again since it became readable: not due yet
            return
        self._callback()
