"""One held ``POST /status/batch`` for every batch-watched job of a client.

A job this client started has a known earliest end (its start answer's duration); a job
it did not start is due at once. A request names every job due by now plus the one that
ends soonest after that (and any ending within ``LOOKAHEAD_S`` of it), and carries
``wait``: the server answers as soon as one named job is final (then a few ms more to
collect others ending together) or when the wait runs out, and the loop asks again at
once. Naming the next job to end before it is due keeps one request held until its end,
so a request is spent per moment at which jobs end, not also per job becoming due. Only
a job added while a request is held that ends before every job the request names makes
the loop drop the held request and ask anew.

More ids than ``max_batch_status`` go in several requests at once. A server without
the route (404, 405), or one that refuses us (401, 403), hands every job back to
per-job polling through ``on_gone``. Anything transient (no answer, 429, 5xx, an open
circuit) is retried with backoff, never before ``Retry-After``; every watch still ends
by its own deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import Any

import httpx

from client_core.admission import Lane
from client_core.answers import detail, is_retryable, json_object, retry_after_s
from client_core.channel import Channel, CircuitOpen
from client_core.errors import MalformedAnswer
from client_core.policy import BackoffPolicy, Jitter
from client_core.protocol import BATCH_STATUS_PATH
from client_core.pushed import NOT_FOUND, PushedState, Route, read_pushed
from client_core.racing import run_unless, stop_task

GONE = frozenset({401, 403, 404, 405})  # no batch route for us: per-job polling instead
RETRY_POLICY = BackoffPolicy(initial_s=0.1, multiplier=2.0, max_delay_s=5.0, jitter=Jitter.EQUAL)
DEFAULT_WAIT_S = 30.0  # the server caps it at its long-poll maximum anyway
# Named ahead of their end: the job that ends soonest and those ending within this much
# after it (the server answers at the first end and collects others within 5 ms), at
# most LOOKAHEAD_MAX of them: every request that names a job counts in its record.
LOOKAHEAD_S = 0.05
LOOKAHEAD_MAX = 64


class BatchStatusLoop:
    """The jobs to ask about, and the task that asks."""

    def __init__(
        self,
        channel: Channel,
        *,
        on_state: Callable[[PushedState], None],
        on_gone: Callable[[str], None],
        max_ids: int,
        wait_s: float = DEFAULT_WAIT_S,
    ) -> None:
        self._channel = channel
        self._on_state = on_state
        self._on_gone = on_gone
        self.max_ids = max_ids
        self.wait_s = wait_s
        self._jobs: dict[str, float] = {}  # job id -> when it can have ended (channel clock)
        self._carried: dict[str, int] = {}  # job id -> requests that named it so far
        self._due: dict[str, None] = {}  # named in the next request (insertion-ordered)
        self._newly_due = False  # a job became due since the requests in flight were built
        self._named: set[str] = set()  # still wanted, of the jobs the requests in flight name
        # The earliest end among them while they are held; -inf when none is held.
        self._named_until = -math.inf
        self._later: list[tuple[float, str]] = []  # heap of (due at, job id), lazily pruned
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.gone = False
        self.last_error: str | None = None

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job_id: str, due_at: float | None = None) -> None:
        """Ask about ``job_id`` from ``due_at`` on (at once when None or past)."""
        now = self._channel.clock.now()
        due_at = now if due_at is None else due_at
        self._jobs[job_id] = due_at
        self._carried.setdefault(job_id, 0)
        if due_at <= now or due_at < self._named_until:
            self._due[job_id] = None  # the held request cannot answer for it in time
            self._newly_due = True
        else:
            heapq.heappush(self._later, (due_at, job_id))
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="videosim-batch-status"
            )

    def discard(self, job_id: str) -> None:
        """Stop asking about ``job_id``; a held request naming only such jobs is dropped."""
        self._jobs.pop(job_id, None)
        self._carried.pop(job_id, None)
        self._due.pop(job_id, None)
        if job_id in self._named:
            self._named.discard(job_id)
            if not self._named:
                self._changed.set()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        clock = self._channel.clock
        rng = RETRY_POLICY.rng()
        failures = 0
        previous: float | None = None
        while self._jobs:
            self._take_due(clock.now())
            self._take_soonest()
            if not self._due:
                next_at = self._next_due_at()
                self._changed.clear()
                if next_at is None:
                    await self._changed.wait()
                else:
                    await run_unless(clock.sleep(next_at - clock.now()), self._changed)
                continue
            names = list(self._due)
            chunks = [names[i : i + self.max_ids] for i in range(0, len(names), self.max_ids)]
            self._changed.clear()
            self._newly_due = False
            try:
                pause = await self._ask_all(chunks)
            except _Gone as exc:
                self.gone = True
                self.last_error = str(exc)
                self._on_gone(str(exc))
                return
            if pause is None:
                failures, previous = 0, None
                continue
            failures += 1
            previous = RETRY_POLICY.delay(failures, previous, rng)
            await clock.sleep(max(previous, pause))

    def _take_due(self, now: float) -> None:
        later = self._later
        while later and later[0][0] <= now:
            _, job_id = heapq.heappop(later)
            if self._jobs.get(job_id, now + 1) <= now and job_id not in self._due:
                self._due[job_id] = None
                self._newly_due = True

    def _take_soonest(self) -> None:
        """Name the job that ends soonest, and those ending just after it, before they are due."""
        later = self._later
        until = math.inf
        taken = 0
        while later and later[0][0] <= until and taken < LOOKAHEAD_MAX:
            due_at, job_id = heapq.heappop(later)
            if job_id in self._jobs and job_id not in self._due:
                self._due[job_id] = None
                until = min(until, due_at + LOOKAHEAD_S)
                taken += 1

    def _next_due_at(self) -> float | None:
        later = self._later
        while later and later[0][1] not in self._jobs:
            heapq.heappop(later)
        return later[0][0] if later else None

    async def _ask_all(self, chunks: list[list[str]]) -> float | None:
        """Hold one request per chunk until one answers or a job not named becomes due.

        Returns None when answered, else how long to wait before asking again (a failure).
        """
        clock = self._channel.clock
        self._named = {job_id for chunk in chunks for job_id in chunk}
        self._named_until = min((self._jobs[job_id] for job_id in self._named), default=-math.inf)
        asks = [asyncio.ensure_future(self._ask(chunk)) for chunk in chunks]
        try:
            while True:
                next_at = self._next_due_at()
                timer = None
                waiters: set[asyncio.Future[Any]] = {*asks}
                changed = asyncio.ensure_future(self._changed.wait())
                waiters.add(changed)
                if next_at is not None:
                    timer = asyncio.ensure_future(clock.sleep(next_at - clock.now()))
                    waiters.add(timer)
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for helper in (changed, timer):
                    if helper is not None and not helper.done():
                        helper.cancel()
                answered = [ask for ask in asks if ask in done]
                if answered:
                    return max((ask.result() for ask in answered), key=lambda p: p or 0.0)
                self._changed.clear()
                self._take_due(clock.now())
                if self._newly_due or not self._named:
                    return None  # a job due that no request names, or none wanted: ask anew
        finally:
            self._named = set()
            self._named_until = -math.inf
            for ask in asks:
                if not ask.done():
                    ask.cancel()
            await asyncio.gather(*asks, return_exceptions=True)

    async def _ask(self, job_ids: list[str]) -> float | None:
        """One batch request; delivers the final states. None, or the pause after a failure."""
        channel = self._channel
        channel.stats.batch_requests += 1
        for job_id in job_ids:
            if job_id in self._carried:
                self._carried[job_id] += 1
        try:
            response = await channel.send(
                "POST",
                BATCH_STATUS_PATH,
                lane=Lane.BACKGROUND,
                json={"job_ids": job_ids, "wait": self.wait_s},
                timeout_s=channel.read_timeout_s + self.wait_s,
                gated=True,
            )
        except CircuitOpen:
            self.last_error = channel.breaker.short_circuit()
            return 0.0
        except httpx.RequestError as exc:
            self.last_error = str(exc) or type(exc).__name__
            return 0.0
        code = response.status_code
        if code == 200:
            try:
                self._deliver(json_object(response))
            except MalformedAnswer as exc:
                self.last_error = str(exc)
                return 0.0
            return None
        pause = retry_after_s(response, channel.max_server_pause_s)
        if code == 429 and pause is not None:
            channel.admission.pause.pause_for(pause)
        message = f"POST /status/batch answered HTTP {code}: {detail(response)}"
        if code in GONE:
            raise _Gone(message)
        if code in (413, 422) and self.max_ids > 1:
            self.max_ids = max(1, len(job_ids) // 2)  # a smaller cap than we thought
            return 0.0
        if not is_retryable(code):
            raise _Gone(message)
        self.last_error = message
        return pause or 0.0

    def _deliver(self, body: dict[str, Any]) -> None:
        jobs = body.get("jobs")
        unknown = body.get("unknown")
        states: list[PushedState] = []
        for item in jobs if isinstance(jobs, list) else []:
            state = read_pushed(item, Route.BATCH)
            if state is not None and state.job_id in self._jobs:
                states.append(state)
        for job_id in unknown if isinstance(unknown, list) else []:
            if isinstance(job_id, str) and job_id in self._jobs:
                states.append(PushedState(job_id, NOT_FOUND, Route.BATCH))
        for state in states:
            carried = self._carried.get(state.job_id, 1)
            self.discard(state.job_id)
            self._channel.stats.pushed_states += 1
            self._on_state(
                PushedState(state.job_id, state.result, state.route, state.finished_at, carried)
            )


class _Gone(Exception):
    """The server has no batch status for us."""
