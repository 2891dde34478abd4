"""One circuit breaker per client, shared by every watcher.

When the server goes away, thousands of watchers retrying on their own would
each keep opening connections to a dead port. Instead, after ``threshold``
consecutive transport failures (counted across all watchers) the gate opens:
watchers stop sending, a single probe task asks ``GET /healthz`` with backoff,
and the first success closes the gate and wakes everyone at once.

The gate knows nothing about HTTP: it is given a ``probe`` coroutine function
that answers "is the server up?", which keeps it testable on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum

from client_core.clock import Clock
from client_core.policy import BackoffPolicy, Jitter
from client_core.racing import stop_task

DEFAULT_PROBE_POLICY = BackoffPolicy(
    initial_s=0.25, multiplier=2.0, max_delay_s=5.0, jitter=Jitter.EQUAL
)


class GateState(StrEnum):
    CLOSED = "closed"  # requests flow
    OPEN = "open"  # the server looks down: only the probe talks to it


class HealthGate:
    """Circuit breaker: closed -> open after N failures -> probe -> closed."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[bool]],
        clock: Clock,
        *,
        threshold: int = 5,
        probe_policy: BackoffPolicy = DEFAULT_PROBE_POLICY,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1 (got {threshold})")
        self._probe = probe
        self._clock = clock
        self.threshold = threshold
        self.probe_policy = probe_policy
        self.state = GateState.CLOSED
        self._closed = asyncio.Event()
        self._closed.set()
        self._probe_task: asyncio.Task[None] | None = None
        # Counters, for tests, benchmarks and the dashboard.
        self.consecutive_failures = 0
        self.times_opened = 0
        self.probes_sent = 0
        self.short_circuits = 0  # polls answered locally while open
        self.last_error: str | None = None
        self._listeners: list[Callable[[GateState], None]] = []

    def add_listener(self, listener: Callable[[GateState], None]) -> None:
        """Call ``listener(state)`` each time the gate opens or closes (no I/O, no await)."""
        self._listeners.append(listener)

    @property
    def is_open(self) -> bool:
        return self.state is GateState.OPEN

    @property
    def closed(self) -> asyncio.Event:
        """Set while requests may flow; watchers wait on it to wake at recovery."""
        return self._closed

    def describe(self) -> str:
        """Why the gate is open, for PollEvent.error and user messages."""
        last = f": {self.last_error}" if self.last_error else ""
        return f"circuit open after {self.consecutive_failures} transport failures{last}"

    def record_success(self) -> None:
        """The server answered (any HTTP status): it is reachable."""
        self.consecutive_failures = 0
        if self.is_open:
            self._close()

    def record_failure(self, error: str) -> None:
        """A request never got an answer (refused, reset, timed out)."""
        self.consecutive_failures += 1
        self.last_error = error
        if not self.is_open and self.consecutive_failures >= self.threshold:
            self._open()

    def short_circuit(self) -> str:
        """Count a poll the gate refused to send; returns the error to report."""
        self.short_circuits += 1
        return self.describe()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def aclose(self) -> None:
        """Stop the probe task, if any (the client calls this on close)."""
        task, self._probe_task = self._probe_task, None
        await stop_task(task)

    def _open(self) -> None:
        self.state = GateState.OPEN
        self.times_opened += 1
        self._closed.clear()
        self._tell(GateState.OPEN)
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.get_running_loop().create_task(
                self._probe_until_up(), name="videosim-health-probe"
            )

    def _close(self) -> None:
        self.state = GateState.CLOSED
        self.consecutive_failures = 0
        self._closed.set()
        self._tell(GateState.CLOSED)

    def _tell(self, state: GateState) -> None:
        for listener in self._listeners:
            listener(state)

    async def _probe_until_up(self) -> None:
        rng = self.probe_policy.rng()
        previous: float | None = None
        attempt = 0
        while self.is_open:
            attempt += 1
            previous = self.probe_policy.delay(attempt, previous, rng)
            await self._clock.sleep(previous)
            if not self.is_open:  # a watcher's late request already got through
                return
            self.probes_sent += 1
            try:
                healthy = await self._probe()
            except Exception as exc:  # a probe must never kill the gate
                healthy = False
                self.last_error = str(exc) or type(exc).__name__
            if healthy:
                self._close()
