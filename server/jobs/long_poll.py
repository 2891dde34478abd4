"""Long-polls held by this process: one heap and one alarm for all of them.

Job state comes from the clock (``created_at + duration_s``), so a wait needs only the
job's finish time, never the store: whichever process holds the request can answer it,
whatever store the jobs live in.

A held request is a :class:`Hold`: its job, the moment its wait runs out, and a callback
that wakes it. Holds sit in one heap ordered by when they are due (their job finishes or
their wait runs out, whichever comes first), and one alarm is set for the head of the
heap, so holds due at the same time share one wake-up. A hold owns no timer, event or
task: GET /status?wait keeps its request's own coroutine parked (server.app) and
:meth:`LongPolls.wait_until_settled` waits on one future.

The alarm is a Linux timerfd the event loop watches, set to the microsecond. The loop's
own timers count in whole milliseconds (uvloop): aimed in between, they fired up to 1 ms
early and the re-check came 1 ms or more later (lag p99 2.5-4.1 ms); aimed at the next
whole millisecond they are never early but 0-2 ms late. Where there is no timerfd, that
loop timer is the alarm (python -m bench.long_poll_lag compares them).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import heapq
import itertools
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Protocol

from server.jobs.clock import Clock
from server.jobs.job import Job

# Stale heap entries (holds that ended before they were due) are dropped all at once
# when they are this many and outnumber the live ones.
_COMPACT_AFTER = 1024
# A loop timer may fire this much before the moment it was set for (asyncio's resolution).
_MARGIN_S = 1e-6
# A hold whose alarm went off while the job's clock still says pending (the wall clock
# drifts from the monotonic one; a test's fake clock stands still) is looked at again
# this much later at the earliest: any sooner and a clock that stands still spins the loop.
_RECHECK_S = 0.0002


class Hold:
    """One request waiting for its job to leave pending, or for its wait to run out."""

    __slots__ = ("deadline", "finishes_at", "job_id", "live", "wake", "woken")

    def __init__(self, job: Job, deadline: float, wake: Callable[[], object]) -> None:
        self.job_id = job.job_id
        self.finishes_at = job.finishes_at  # on the job's clock
        self.deadline = deadline  # on the monotonic clock
        self.wake = wake
        self.live = True  # False once woken or given up
        # True once LongPolls called wake: the job settled, the wait ran out, or the
        # server is stopping.
        self.woken = False


class LongPolls:
    """Parks status requests until their job leaves pending or their wait runs out."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._due: list[tuple[float, int, Hold]] = []  # (monotonic time, tie-breaker, hold)
        self._order = itertools.count()
        self._stale = 0  # entries of _due whose hold is no longer live
        self._alarm: _Alarm | None = None  # set for the head of _due, while there is one
        self._alarm_at = math.inf
        self._jobs: dict[str, int] = {}  # job id -> live holds on it
        self._held = 0
        self._closing = False

    @property
    def held_requests(self) -> int:
        """Status requests parked right now."""
        return self._held

    @property
    def waited_jobs(self) -> int:
        """Jobs that somebody long-polls right now."""
        return len(self._jobs)

    def park(self, job: Job, timeout_s: float, wake: Callable[[], object]) -> Hold | None:
        """Call ``wake()`` once, from the event loop, when ``job`` leaves pending, after
        ``timeout_s`` seconds, or when the server stops, whichever comes first.

        None when there is nothing to wait for (the job is not pending, no wait was asked
        for, or the server is stopping). A hold given up before it is woken (the client
        hung up) must be handed to :meth:`unpark`.
        """
        now = self._clock.now()
        if timeout_s <= 0 or self._closing or job.result_at(now) != "pending":
            return None
        monotonic_now = time.monotonic()
        hold = Hold(job, monotonic_now + timeout_s, wake)
        self._jobs[job.job_id] = self._jobs.get(job.job_id, 0) + 1
        self._held += 1
        self._push(hold, min(hold.deadline, monotonic_now + (hold.finishes_at - now)))
        return hold

    def unpark(self, hold: Hold) -> None:
        """Forget a hold nobody waits for any more; a no-op once it was woken."""
        if hold.live:
            self._end(hold)
            self._stale += 1
            self._compact()

    async def wait_until_settled(self, job: Job, timeout_s: float) -> None:
        """Return when ``job`` leaves pending or after ``timeout_s`` seconds, whichever first."""
        woken = asyncio.get_running_loop().create_future()
        hold = self.park(job, timeout_s, functools.partial(_resolve, woken))
        if hold is None:
            return
        try:
            await woken
        finally:
            self.unpark(hold)

    def notify_due(self) -> int:
        """Wake the holds of every job that has finished; returns how many jobs woke.

        The alarm does this on its own with the system clock; tests that move a
        :class:`~server.jobs.clock.FakeClock` call it right after ``advance()``.
        """
        now = self._clock.now()
        woken: set[str] = set()
        for _, _, hold in list(self._due):
            if hold.live and hold.finishes_at <= now:
                woken.add(hold.job_id)
                self._wake(hold)
                self._stale += 1  # its heap entry stays until popped or compacted
        self._compact()
        return len(woken)

    def close(self) -> None:
        """Wake every hold (each request answers with its job's state at that moment) and
        park no new ones: the server is stopping."""
        self._closing = True
        for _, _, hold in self._due:
            if hold.live:
                self._wake(hold)
        self._due.clear()
        self._stale = 0
        self._stop_alarm()

    # --- the heap and its alarm ---------------------------------------------------------

    def _push(self, hold: Hold, at: float) -> None:
        heapq.heappush(self._due, (at, next(self._order), hold))
        if at < self._alarm_at:
            self._set_alarm(at)

    def _set_alarm(self, at: float) -> None:
        if not math.isfinite(at):  # waits without end on jobs without end: nothing due
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
        now = self._clock.now()
        due = self._due
        while due and due[0][0] <= monotonic_now:
            _, _, hold = heapq.heappop(due)
            if not hold.live:
                self._stale -= 1
            elif hold.finishes_at <= now or hold.deadline <= monotonic_now:
                self._wake(hold)
            else:  # the job's clock and the monotonic one disagree: aim again
                remaining = max(hold.finishes_at - now, _RECHECK_S)
                at = min(hold.deadline, monotonic_now + remaining)
                heapq.heappush(due, (at, next(self._order), hold))
        if due:
            self._set_alarm(due[0][0])
        else:
            self._stop_alarm()

    def _wake(self, hold: Hold) -> None:
        self._end(hold)
        hold.woken = True
        hold.wake()

    def _end(self, hold: Hold) -> None:
        hold.live = False
        self._held -= 1
        left = self._jobs[hold.job_id] - 1
        if left:
            self._jobs[hold.job_id] = left
        else:
            del self._jobs[hold.job_id]

    def _compact(self) -> None:
        if self._stale > _COMPACT_AFTER and self._stale > len(self._due) - self._stale:
            self._due = [entry for entry in self._due if entry[2].live]
            heapq.heapify(self._due)
            self._stale = 0
            if not self._due:
                self._stop_alarm()


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


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
