"""Where pushed final states meet the watches waiting for them: one hub per client.

A push watch (``stream``, ``batch``, or a job started with a webhook) registers here
and waits for one ``PushedState``. The hub owns the client's one event stream and one
batch loop, started when first needed, and routes each job:

- ``stream``: a job this client started is on its ``all=true`` stream; any other job
  (started elsewhere) goes to the batch loop;
- ``batch``: the batch loop, asked about the job from its earliest possible end;
- ``webhook``: only the callback completes it (the watch moves it to the batch loop if
  nothing came long after the job's end: the safety net).

Falling back, live: a stream that is not offered or keeps breaking hands its jobs to
the batch loop (which first asks without delay, so nothing final is missed); a batch
loop without a route hands its jobs back to per-job polling (``FALLBACK``).

A final state that arrives with nobody waiting (the job ended before its watch began)
is kept, up to ``max_kept`` of them, for the watch that comes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from enum import StrEnum

from client_core.alarms import Alarms
from client_core.batch_status import BatchStatusLoop
from client_core.capabilities import DEFAULT_MAX_BATCH_STATUS, CapabilityCache
from client_core.channel import Channel
from client_core.event_stream import EventStream, StreamSettings
from client_core.pushed import PushedState, Route

MAX_KEPT_FINALS = 100_000  # final states kept for watches not begun yet
MAX_STARTED_REMEMBERED = 1_000_000  # jobs this client started and has not seen end
EARLY_SHARE, EARLY_MAX_S = 0.05, 0.05  # ask about a job this much before its end


class NoState(StrEnum):
    """What else ends a wait for a pushed state."""

    POLL = "poll"  # the hub cannot push this job's state: poll it, one job at a time
    TIME = "time"  # the watch's alarm rang (its deadline, or the safety net)
    CANCEL = "cancel"  # the watch's cancel event was set


Waiter = asyncio.Future[PushedState | NoState]  # one per watch


class PushHub:
    """The registry of push watches, the event stream and the batch loop of one client."""

    def __init__(
        self,
        channel: Channel,
        capabilities: CapabilityCache,
        stream_settings: StreamSettings,
        *,
        max_kept: int = MAX_KEPT_FINALS,
    ) -> None:
        self._channel = channel
        self._capabilities = capabilities
        self._stream_settings = stream_settings
        self._max_kept = max_kept
        self._started: OrderedDict[str, float | None] = OrderedDict()  # id -> earliest end
        self._kept: OrderedDict[str, PushedState] = OrderedDict()
        self._waiters: dict[str, list[Waiter]] = {}
        self._routes: dict[str, Route] = {}  # job id -> how it is followed now
        self._stream: EventStream | None = None
        self._batch: BatchStatusLoop | None = None
        self.alarms = Alarms(channel.clock)  # the deadlines of every push watch
        self.webhooks_on = False  # starts carry a callback_url (see VideoSimClient.use_webhooks)
        self._with_callback: set[str] = set()  # started while webhooks were on
        self.stream_gone: str | None = None  # why the stream was given up, once it was
        self.batch_gone: str | None = None

    # -- what the client tells the hub -------------------------------------------------------

    def note_started(self, job_id: str, duration_s: float | None) -> None:
        """This client started ``job_id``: it is on the client's stream, ends no sooner.

        Its "earliest end", when the batch loop begins to name it, is a little before the
        end the start answer implies (5 % of the duration, at most 50 ms), so the held
        request is already at the server when the job ends and is answered that instant.
        """
        ends_at = None
        if duration_s is not None:
            early = min(duration_s * EARLY_SHARE, EARLY_MAX_S)
            ends_at = self._channel.clock.now() + duration_s - early
        self._started[job_id] = ends_at
        if self.webhooks_on:
            self._with_callback.add(job_id)
        if len(self._started) > MAX_STARTED_REMEMBERED:
            oldest, _ = self._started.popitem(last=False)
            self._with_callback.discard(oldest)

    def has_callback(self, job_id: str) -> bool:
        """Was ``job_id`` started with this client's webhook (so a callback will come)?"""
        return job_id in self._with_callback

    def started_here(self, job_id: str) -> bool:
        return job_id in self._started

    def earliest_end(self, job_id: str) -> float | None:
        return self._started.get(job_id)

    # -- watches -------------------------------------------------------------------------

    def follow(self, job_id: str, route: Route, *, due_at: float | None = None) -> Waiter:
        """A future, this watch's own, that gets the job's final state (or ``NoState.POLL``)."""
        waiter: Waiter = asyncio.get_running_loop().create_future()
        kept = self._kept.pop(job_id, None)
        if kept is not None:
            waiter.set_result(kept)
            return waiter
        self._waiters.setdefault(job_id, []).append(waiter)
        self._route(job_id, route, due_at)
        return waiter

    def reroute(self, job_id: str, route: Route, *, due_at: float | None = None) -> None:
        """Follow a watched job another way (e.g. the safety net moves it to batch)."""
        if job_id in self._waiters:
            self._route(job_id, route, due_at)

    def unfollow(self, job_id: str, waiter: Waiter) -> None:
        """The watch ended (state, deadline, cancel): stop following if it was the last."""
        waiters = self._waiters.get(job_id)
        if waiters is None:
            return
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._forget(job_id)

    def route_of(self, job_id: str) -> Route | None:
        """How a watched job's pushed end is awaited right now; None when nobody waits
        for one (the job is polled, or not watched)."""
        return self._routes.get(job_id) if job_id in self._waiters else None

    def deliver(self, state: PushedState) -> None:
        """A final state arrived, by whatever route: every watch of the job gets it."""
        self._started.pop(state.job_id, None)
        self._with_callback.discard(state.job_id)
        waiters = self._waiters.get(state.job_id)
        if not waiters:
            self._kept[state.job_id] = state
            if len(self._kept) > self._max_kept:
                self._kept.popitem(last=False)
            return
        self._forget(state.job_id)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(state)

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        batch, self._batch = self._batch, None
        if stream is not None:
            await stream.aclose()
        if batch is not None:
            await batch.aclose()
        await self.alarms.aclose()

    @property
    def stream(self) -> EventStream | None:
        return self._stream

    @property
    def batch(self) -> BatchStatusLoop | None:
        return self._batch

    # -- routing -------------------------------------------------------------------------

    def _route(self, job_id: str, route: Route, due_at: float | None) -> None:
        previous = self._routes.get(job_id)
        if route is Route.STREAM and (self.stream_gone or job_id not in self._started):
            route = Route.BATCH  # not on our all=true stream (or no stream): ask in batches
        if route is Route.BATCH and self.batch_gone:
            self._fall_back([job_id])
            return
        self._routes[job_id] = route
        if route is Route.STREAM:
            self._ensure_stream()
        elif route is Route.BATCH and previous is not Route.BATCH:
            if due_at is None:
                due_at = self._started.get(job_id)
            self._ensure_batch().add(job_id, due_at)

    def _forget(self, job_id: str) -> None:
        self._waiters.pop(job_id, None)
        route = self._routes.pop(job_id, None)
        if route is Route.BATCH and self._batch is not None:
            self._batch.discard(job_id)

    def _ensure_stream(self) -> None:
        if self._stream is None:
            channel = self._channel
            self._stream = EventStream(
                self._stream_settings,
                clock=channel.clock,
                stats=channel.stats,
                on_state=self.deliver,
                on_gone=self._stream_is_gone,
                transport=channel.custom_transport,
            )
        self._stream.start()

    def _ensure_batch(self) -> BatchStatusLoop:
        if self._batch is None:
            known = self._capabilities.known
            wait_s = (known.long_poll_max_s if known else None) or self._channel.max_server_pause_s
            self._batch = BatchStatusLoop(
                self._channel,
                on_state=self.deliver,
                on_gone=self._batch_is_gone,
                max_ids=known.max_batch_status if known else DEFAULT_MAX_BATCH_STATUS,
                wait_s=min(wait_s, self._channel.max_server_pause_s),
            )
        return self._batch

    def _stream_is_gone(self, why: str) -> None:
        """Live fallback: every job waiting on the stream is asked about in batches."""
        self.stream_gone = why
        on_stream = [job_id for job_id, route in self._routes.items() if route is Route.STREAM]
        for job_id in on_stream:
            # Ask at once, not from its earliest end: it may have ended while the stream
            # was down, and nothing else will say so.
            self._route(job_id, Route.BATCH, self._channel.clock.now())

    def _batch_is_gone(self, why: str) -> None:
        """Live fallback: every job waiting on the batch loop goes back to polling."""
        self.batch_gone = why
        on_batch = [job_id for job_id, route in self._routes.items() if route is Route.BATCH]
        self._fall_back(on_batch)

    def _fall_back(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            waiters = self._waiters.get(job_id, [])
            self._forget(job_id)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(NoState.POLL)
