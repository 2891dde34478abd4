"""The polling engine as the dashboard sees it: one object, not a widget.

It starts the engine (a child process, or a thread in tests), sends it commands, turns the
engine's answers into awaited results, and restarts it when it dies, unless it keeps dying.
It holds no view state and touches no widget: what the app must know arrives through the
three calls of :class:`EngineEvents`, which the app implements and which run on its loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from client_core.comparison import BatchJob, PolicyPreset, PolicyRun
from tui.engine_link import ClientFactory, EngineLink, ProcessLink, ThreadLink
from tui.engine_protocol import (
    Cancel,
    Command,
    ComparisonDone,
    ComparisonProgress,
    Configure,
    Delta,
    EngineMessage,
    FetchRecord,
    Follow,
    Forget,
    Ready,
    RecordAnswer,
    RunComparison,
    StartJobs,
    StopComparison,
    Watch,
)
from tui.model import JobSpec, Now

RESTART_DELAY_S = 0.5  # after an engine crash
MAX_CRASHES = 5  # crashes within CRASH_WINDOW_S before the controller stops restarting
CRASH_WINDOW_S = 60.0


class EngineNotReady(RuntimeError):
    """No connection to a server yet (or any more)."""


class RecordUnavailable(RuntimeError):
    """The engine could not fetch a job's record; the message says why."""


class ComparisonFailed(RuntimeError):
    """A comparison's first failure in the engine (a start refused, the server gone)."""


class EngineEvents(Protocol):
    """What the controller tells its owner (the app), on the owner's loop."""

    def engine_delta(self, delta: Delta) -> None:
        """Rows, counters and health that changed since the last delta."""

    def engine_ready(self) -> None:
        """A (new) engine is connected: hand it the jobs that are still live."""

    def engine_stopped(self, reason: str, *, restarting: bool) -> None:
        """The engine died; ``restarting`` is False once it has died too often."""


class EngineController:
    """Start, talk to and restart the polling engine; await its answers."""

    def __init__(
        self,
        config: Configure,
        events: EngineEvents,
        *,
        client_factory: ClientFactory | None = None,
        clock: Now = time.monotonic,
    ) -> None:
        self.config = config
        self.pid: int | None = None
        self.connected = False  # the engine's client is open
        self._events = events
        self._client_factory = client_factory  # given: the engine runs in a thread (tests)
        self._clock = clock
        self._link: EngineLink | None = None
        self._crashes: deque[float] = deque(maxlen=MAX_CRASHES)
        self._asked: dict[int, asyncio.Future[Any]] = {}  # answers awaited from the engine
        self._progress: dict[int, Callable[[int], None]] = {}  # of comparisons, by request
        self._next_request = 0
        self._followed: str | None = None
        self._restart: asyncio.TimerHandle | None = None
        self._stopped = False

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start an engine (at first, or after a crash)."""
        if self._stopped:
            return
        link: EngineLink
        if self._client_factory is not None:
            link = ThreadLink(self._received, self._ended, self._client_factory)
        else:
            link = ProcessLink(self._received, self._ended)
        self._link = link
        await link.start(self.config)
        self.pid = link.pid

    async def stop(self) -> None:
        """End the engine for good (the app is quitting)."""
        self._stopped = True
        self.connected = False
        if self._restart is not None:
            self._restart.cancel()
        link, self._link = self._link, None
        if link is not None:
            await link.stop()
        self._fail_asked("the dashboard is quitting")

    def _received(self, message: EngineMessage) -> None:
        if isinstance(message, Delta):
            self._events.engine_delta(message)
        elif isinstance(message, RecordAnswer):
            self._settle(message.request, message.record, message.error, RecordUnavailable)
        elif isinstance(message, ComparisonProgress):
            if (on_progress := self._progress.get(message.request)) is not None:
                on_progress(message.done)
        elif isinstance(message, ComparisonDone):
            self._settle(message.request, message.runs, message.error, ComparisonFailed)
        elif isinstance(message, Ready):
            self.pid = message.pid
            self.connected = True
            if self._followed is not None:
                self.send(Follow(self._followed))
            self._events.engine_ready()

    def _ended(self, reason: str) -> None:
        """The engine died: fail what waits on it, and start another unless it keeps dying."""
        self.connected = False
        self._link = None
        self._fail_asked(f"the polling engine stopped ({reason})")
        now = self._clock()
        self._crashes.append(now)
        restarting = not (
            len(self._crashes) == MAX_CRASHES and now - self._crashes[0] < CRASH_WINDOW_S
        )
        if restarting and not self._stopped:
            loop = asyncio.get_running_loop()
            self._restart = loop.call_later(
                RESTART_DELAY_S, lambda: loop.create_task(self.start(), name="engine restart")
            )
        self._events.engine_stopped(reason, restarting=restarting)

    # -- commands --------------------------------------------------------------------------

    def send(self, command: Command) -> bool:
        """Send a command; False when no engine is connected (nothing was sent)."""
        if self._link is None or not self.connected:
            return False
        self._link.send(command)
        return True

    def start_jobs(self, specs: Sequence[JobSpec]) -> bool:
        return self.send(StartJobs(list(specs)))

    def watch(self, watch: Watch) -> bool:
        return self.send(watch)

    def cancel(self, keys: Sequence[str]) -> None:
        if keys:
            self.send(Cancel(list(keys)))

    def forget(self, keys: Sequence[str]) -> None:
        if keys:
            self.send(Forget(list(keys)))

    def follow(self, key: str) -> None:
        """Send ``key``'s poll history from now on (also to an engine started later)."""
        self._followed = key
        self.send(Follow(key))

    # -- questions with answers ----------------------------------------------------------------

    async def fetch_record(self, job_id: str) -> dict[str, Any]:
        """The server's record of a job, fetched by the engine's client (its interactive
        lane). Raises EngineNotReady without an engine, RecordUnavailable with the
        client's reason."""
        request, answer = self._ask(lambda request: FetchRecord(request, job_id))
        try:
            return cast(dict[str, Any], await answer)
        finally:
            self._asked.pop(request, None)

    async def compare(
        self,
        presets: Sequence[PolicyPreset],
        batch: Sequence[BatchJob],
        on_progress: Callable[[int], None],
        scenario: str | None = None,
    ) -> list[PolicyRun]:
        """The compare view's run, on the engine's clients; ``on_progress`` gets the watches
        finished so far. Cancelling this (the view left) cancels the run in the engine.
        Raises EngineNotReady without an engine, ComparisonFailed with the first failure."""
        request, answer = self._ask(
            lambda request: RunComparison(request, list(presets), list(batch), scenario)
        )
        self._progress[request] = on_progress
        try:
            return cast(list[PolicyRun], await answer)
        finally:
            self._asked.pop(request, None)
            self._progress.pop(request, None)
            # a cancelled wait cancels the future too: either way no answer came
            if answer.cancelled() or not answer.done():
                self.send(StopComparison(request))

    def _ask(self, command: Callable[[int], Command]) -> tuple[int, asyncio.Future[Any]]:
        """Send the engine ``command(request number)``; returns the number and the future
        its answer will settle."""
        if self._link is None or not self.connected:
            raise EngineNotReady("not connected to a server")
        self._next_request += 1
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._asked[self._next_request] = answer
        self.send(command(self._next_request))
        return self._next_request, answer

    def _settle(
        self, request: int, result: object, error: str | None, failure: type[Exception]
    ) -> None:
        """Answer the wait for ``request``: its result, or ``failure(error)`` without one."""
        answer = self._asked.pop(request, None)
        if answer is None or answer.done():
            return  # the view that asked has gone
        if result is not None:
            answer.set_result(result)
        else:
            answer.set_exception(failure(error or "no answer"))

    def _fail_asked(self, reason: str) -> None:
        asked, self._asked = self._asked, {}
        for answer in asked.values():
            if not answer.done():
                answer.set_exception(EngineNotReady(reason))
