"""GET /events: final job states pushed over Server-Sent Events.

A stream carries a set of jobs: named ids, a subscription's jobs, or every job started
with the reader's X-Client-Id. A job's state is a function of the clock, so a stream needs
no task per job: it keeps its pending jobs in a heap by finish time and one timer for the
earliest. When the timer fires, the jobs now final become ``state`` events in a bounded
queue; the reader takes them from there.

Event ids are cursors derived from the jobs themselves, never from a counter in this
process: ``<key time>/<job id>``, where the key time of a final state is the job's finish
time (or, for a job that joined a subscription after it finished, the time it joined).
Events go out in key order, and an event's id is the largest key sent so far, so a
reconnect with ``Last-Event-ID`` replays every final state with a larger key. Any worker
of a shared store, and a durable server after a restart, can compute the same replay. On
a shared store another worker learns of new jobs only by re-reading (every
:data:`REFRESH_S`), so a replay there starts :data:`SHARED_REPLAY_MARGIN_S` earlier: a
reader may see a final state twice, never miss one.

A final state written to a stream is recorded as delivered (the job's record then knows
when a client learned it, see :meth:`~server.stores.base.JobStore.record_deliveries`), in
batches, by one task per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, NoReturn

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from server.faults import FaultInjector
from server.http.identity import caller_identity
from server.jobs.clock import Clock
from server.jobs.job import Job
from server.jobs.schedule import Timer
from server.models import ErrorMessage
from server.push.models import CLIENT_ID_PATTERN
from server.stores.base import JobStore, StoreUnavailable

logger = logging.getLogger(__name__)

MAX_IDS = 100  # ?ids= is for a few jobs; a subscription is for many
REFRESH_S = 0.5  # how often a stream on a shared store re-reads its growing job set
SHARED_REPLAY_MARGIN_S = 2.0
# A stream keeps its subscription alive: it touches it this often (and at most every half
# retention window).
TOUCH_EVERY_S = 60.0
# After the server begins to stop, sse-starlette's own shutdown watcher would cancel a
# stream this long after noticing; ours end at once with an error event, well before.
SHUTDOWN_GRACE_S = 1.0
LOAD_CHUNK = 1000  # jobs read from the store per call while opening a stream

Cursor = tuple[float, str]
# Sorts after every job id (uuid4 text and "special-pending-job"): "every job up to time t".
_AFTER_ALL_IDS = "~"


class Outgoing(NamedTuple):
    """An event to send, and the job whose final state it delivers (None for others)."""

    event: ServerSentEvent
    final_job_id: str | None = None


class BadCursor(ValueError):
    """A Last-Event-ID this server did not make."""


def format_cursor(cursor: Cursor) -> str:
    return f"{cursor[0]!r}/{cursor[1]}"


def parse_cursor(text: str) -> Cursor:
    moment, separator, job_id = text.partition("/")
    try:
        at = float(moment)
    except ValueError:
        raise BadCursor(text) from None
    if not separator or not job_id or not math.isfinite(at):
        raise BadCursor(text)
    return at, job_id


@dataclass(frozen=True)
class JobSet:
    """Which jobs a stream carries: ``kind`` says how they are named."""

    kind: Literal["ids", "subscription", "client"]
    ids: tuple[str, ...] = ()
    subscription_id: str = ""
    client_id: str = ""

    @property
    def group(self) -> tuple[str, str] | None:
        """What other routes call this set, if they can change it."""
        if self.kind == "client":
            return ("client", self.client_id)
        if self.kind == "subscription":
            return ("subscription", self.subscription_id)
        return None


def _compact(document: dict[str, object]) -> str:
    return json.dumps(document, separators=(",", ":"))


def _state_data(job: Job, now: float) -> str:
    result = job.result_at(now)
    finished_at = None if result == "pending" else job.finishes_at
    return _compact(
        {
            "job_id": job.job_id,
            "result": result,
            "created_at": job.created_at,
            "finished_at": finished_at,
        }
    )


class EventStream:
    """One reader's stream: its jobs, the next-finish timer and the undelivered events."""

    def __init__(
        self, streams: EventStreams, job_set: JobSet, buffer: int, resume_from: Cursor | None
    ) -> None:
        self._streams = streams
        self._clock = streams.clock
        self.job_set = job_set
        self._buffer = buffer
        self._resume_from = resume_from
        self._watched: set[str] = set()
        self._pending: list[tuple[float, str, Job]] = []  # heap by finish time
        self._timer: Timer | None = None  # on the process's schedule, for the next finish
        self._queue: deque[Outgoing] = deque()
        self._wake = asyncio.Event()
        self._failure: str | None = None
        self.watermark: Cursor = (-math.inf, "")
        # What a refresh on a shared store has read so far.
        self.client_jobs_read = 0
        self.subscription_read_up_to = -math.inf

    @property
    def undelivered(self) -> int:
        return len(self._queue)

    @property
    def failed(self) -> bool:
        return self._failure is not None

    # --- opening ------------------------------------------------------------------------

    def opening_events(self, jobs: Sequence[tuple[str, Job | None, float]]) -> list[Outgoing]:
        """The snapshot (or, resuming, the replay) for ``(job_id, job, joined_at)`` and
        the jobs it starts watching. Finals come first in key order, then pending jobs
        (snapshot only), then unknown ids."""
        now = self._clock.now()
        finals: list[tuple[Cursor, Job]] = []
        pending: list[Job] = []
        unknown: list[str] = []
        for job_id, job, joined_at in jobs:
            if job_id in self._watched:
                continue
            if job is None:
                if self.job_set.kind != "client":  # an expired job of the group just left it
                    unknown.append(job_id)
                continue
            self._watched.add(job_id)
            if job.result_at(now) == "pending":
                pending.append(job)
                self._watch(job)
            else:
                finals.append(((max(job.finishes_at, joined_at), job_id), job))
        finals.sort(key=lambda item: item[0])
        events: list[Outgoing] = []
        resume = self._resume_from
        if resume is not None:
            margin = SHARED_REPLAY_MARGIN_S if self._streams.shared else 0.0
            replay_after = (resume[0] - margin, resume[1] if margin == 0 else "")
            self.watermark = max(self.watermark, resume)
            for key, job in finals:
                if key > replay_after:
                    events.append(self._state_event(job, key, now))
        else:
            for key, job in finals:
                events.append(self._state_event(job, key, now))
            self.watermark = max(self.watermark, (now, _AFTER_ALL_IDS))
            cursor = format_cursor(self.watermark)
            for job in pending:
                event = ServerSentEvent(_state_data(job, now), event="state", id=cursor)
                events.append(Outgoing(event))
        for job_id in unknown:
            events.append(Outgoing(ServerSentEvent(_compact({"job_id": job_id}), event="unknown")))
        self._arm()
        return events

    def _state_event(self, job: Job, key: Cursor, now: float) -> Outgoing:
        """A final state's event (the stream's watermark moves past ``key``)."""
        self.watermark = max(self.watermark, key)
        data = _state_data(job, now)
        return Outgoing(
            ServerSentEvent(data, event="state", id=format_cursor(self.watermark)), job.job_id
        )

    # --- live ---------------------------------------------------------------------------

    def add_jobs(self, jobs: Iterable[tuple[str, Job | None, float]]) -> None:
        """Jobs that joined the set after the stream opened: a pending one is watched, a
        final one is sent now; ids the store does not know are skipped."""
        if self._failure is not None:
            return
        now = self._clock.now()
        for job_id, job, joined_at in jobs:
            if job is None or job_id in self._watched:
                continue
            self._watched.add(job_id)
            if job.result_at(now) == "pending":
                self._watch(job)
            else:
                self._enqueue(job, (max(job.finishes_at, joined_at), job_id), now)
        self._arm()

    def fail(self, detail: str) -> None:
        """Send an error event next, then close; nothing else is sent or kept."""
        if self._failure is not None:
            return
        self._failure = detail
        self._queue.clear()
        self._pending.clear()
        self._watched.clear()
        self._stop_timer()
        self._wake.set()

    def _watch(self, job: Job) -> None:
        heapq.heappush(self._pending, (job.finishes_at, job.job_id, job))

    def _arm(self) -> None:
        """One timer, for the earliest pending job."""
        if self._failure is not None or not self._pending:
            return
        finishes_at = self._pending[0][0]
        if not math.isfinite(finishes_at):
            return  # the special job never finishes
        if self._timer is not None:
            if self._timer.pending and self._timer.at <= finishes_at:
                return
            self._timer.cancel()
        self._timer = self._streams.store.schedule.call_at(finishes_at, self._on_timer)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self.release_due()
        self._arm()

    def release_due(self) -> None:
        """Queue a state event for every watched job that is final now."""
        now = self._clock.now()
        while self._pending and self._pending[0][0] <= now and self._failure is None:
            finishes_at, job_id, job = heapq.heappop(self._pending)
            self._enqueue(job, (finishes_at, job_id), now)

    def _enqueue(self, job: Job, key: Cursor, now: float) -> None:
        if len(self._queue) >= self._buffer:
            self.fail(
                f"slow reader: more than {self._buffer} events undelivered; "
                "reconnect with Last-Event-ID to resume"
            )
            return
        self._queue.append(self._state_event(job, key, now))
        self._wake.set()

    async def live_events(self) -> AsyncIterator[Outgoing]:
        """Queued events as they come; an error event and the end after :meth:`fail`."""
        while True:
            while self._queue:
                yield self._queue.popleft()
            if self._failure is not None:
                yield Outgoing(ServerSentEvent(_compact({"detail": self._failure}), event="error"))
                return
            self._wake.clear()
            await self._wake.wait()

    def detach(self) -> None:
        self._stop_timer()
        self._pending.clear()
        self._queue.clear()


class EventStreams:
    """Every open stream of this process: new jobs and subscription changes reach the
    streams that carry them, and a stopping server ends them all with an error event."""

    def __init__(self, store: JobStore, clock: Clock, *, buffer: int, heartbeat_s: float,
                 send_timeout_s: float, retention_s: float) -> None:  # fmt: skip
        self.store = store
        self.clock = clock
        self.shared = store.shared
        self.buffer = buffer
        self.heartbeat_s = heartbeat_s
        self.send_timeout_s = send_timeout_s
        self.touch_every_s = min(TOUCH_EVERY_S, retention_s / 2)
        self._streams: set[EventStream] = set()
        # Streams by what names their jobs, so a start or a subscription change reaches
        # only the streams that carry it: ("client", id) and ("subscription", id).
        self._by_group: dict[tuple[str, str], set[EventStream]] = {}
        self._closing = False
        self._delivered: list[tuple[str, float]] = []  # (job id, when), not yet recorded
        self._recording: asyncio.Future[None] | None = None
        store.on_close(self.close)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def undelivered_events(self) -> int:
        return sum(stream.undelivered for stream in self._streams)

    async def open(self, job_set: JobSet, resume_from: Cursor | None) -> EventSourceResponse:
        """The response for GET /events; raises :class:`SubscriptionGone` if the
        subscription does not exist (before anything is sent)."""
        stream = EventStream(self, job_set, self.buffer, resume_from)
        self._streams.add(stream)  # first, so no job started meanwhile is missed
        if (group := job_set.group) is not None:
            self._by_group.setdefault(group, set()).add(stream)
        try:
            opening = stream.opening_events(await self._load_all(stream))
        except BaseException:
            self._discard(stream)
            raise
        if self._closing:
            stream.fail("server stopping")
        return _EventStreamResponse(
            lambda: self._discard(stream),
            self._events(stream, opening),
            ping=self.heartbeat_s,
            send_timeout=self.send_timeout_s,
            shutdown_grace_period=SHUTDOWN_GRACE_S,
        )

    async def _events(
        self, stream: EventStream, opening: list[Outgoing]
    ) -> AsyncIterator[ServerSentEvent]:
        upkeep = asyncio.ensure_future(self._upkeep(stream))
        try:
            for outgoing in opening:
                if stream.failed:
                    break  # stopping, or the subscription is gone: say so at once
                yield outgoing.event
                self._sent(outgoing)
            opening.clear()
            async for outgoing in stream.live_events():
                yield outgoing.event
                self._sent(outgoing)
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            self._discard(stream)

    def _sent(self, outgoing: Outgoing) -> None:
        """``outgoing`` was written to its stream (the generator resumes only then)."""
        if outgoing.final_job_id is None:
            return
        self._delivered.append((outgoing.final_job_id, self.clock.now()))
        if self._recording is None:
            self._recording = asyncio.ensure_future(self._record_delivered())

    async def _record_delivered(self) -> None:
        """Record what the streams sent since the last call, in one store call per batch."""
        try:
            while self._delivered:
                batch, self._delivered = self._delivered, []
                try:
                    await self.store.record_deliveries(batch, "stream")
                except StoreUnavailable as error:
                    logger.warning("event stream: deliveries not recorded: %s", error)
        finally:
            self._recording = None

    def _discard(self, stream: EventStream) -> None:
        if stream not in self._streams:
            return
        stream.detach()
        self._streams.discard(stream)
        if (group := stream.job_set.group) is not None:
            streams = self._by_group[group]
            streams.discard(stream)
            if not streams:
                del self._by_group[group]
        if stream.job_set.kind == "subscription" and not self._closing:
            # The retention window of a subscription starts when its last stream lets go.
            touch = asyncio.ensure_future(
                self.store.touch_subscription(stream.job_set.subscription_id)
            )
            touch.add_done_callback(_ignore_store_outage)

    async def _load_all(self, stream: EventStream) -> list[tuple[str, Job | None, float]]:
        job_set = stream.job_set
        if job_set.kind == "ids":
            named = [(job_id, -math.inf) for job_id in dict.fromkeys(job_set.ids)]
        elif job_set.kind == "subscription":
            found = await self.store.subscription_jobs(job_set.subscription_id)
            if found is None:
                raise SubscriptionGone(job_set.subscription_id)
            await self.store.touch_subscription(job_set.subscription_id)
            named = found
            if found:
                stream.subscription_read_up_to = max(at for _, at in found)
        else:
            ids = await self.store.client_job_ids(job_set.client_id)
            stream.client_jobs_read = len(ids)
            named = [(job_id, -math.inf) for job_id in ids]
        return await self._with_jobs(named)

    async def _with_jobs(
        self, named: Sequence[tuple[str, float]]
    ) -> list[tuple[str, Job | None, float]]:
        loaded: list[tuple[str, Job | None, float]] = []
        for first in range(0, len(named), LOAD_CHUNK):
            chunk = named[first : first + LOAD_CHUNK]
            jobs = await self.store.get_many([job_id for job_id, _ in chunk])
            loaded += [(job_id, job, at) for (job_id, at), job in zip(chunk, jobs, strict=True)]
        return loaded

    async def _upkeep(self, stream: EventStream) -> None:
        """Keep the subscription alive and, on a shared store, pick up jobs that joined the
        set through another process."""
        job_set = stream.job_set
        refresh = self.shared and job_set.kind != "ids"
        if not refresh and job_set.kind != "subscription":
            return
        since_touch = 0.0
        interval = REFRESH_S if refresh else self.touch_every_s
        while True:
            await asyncio.sleep(interval)
            since_touch += interval
            try:
                if job_set.kind == "subscription" and since_touch >= self.touch_every_s:
                    since_touch = 0.0
                    if not await self.store.touch_subscription(job_set.subscription_id):
                        stream.fail("subscription gone")
                        return
                if refresh:
                    await self._refresh(stream)
            except StoreUnavailable as error:
                logger.warning("event stream: %s", error)

    async def _refresh(self, stream: EventStream) -> None:
        job_set = stream.job_set
        if job_set.kind == "client":
            ids = await self.store.client_job_ids(job_set.client_id, stream.client_jobs_read)
            stream.client_jobs_read += len(ids)
            named = [(job_id, -math.inf) for job_id in ids]
        else:
            found = await self.store.subscription_jobs(
                job_set.subscription_id, stream.subscription_read_up_to
            )
            if found is None:
                stream.fail("subscription gone")
                return
            if found:
                stream.subscription_read_up_to = max(at for _, at in found)
            named = found
        if named:
            stream.add_jobs(await self._with_jobs(named))

    # --- what the other routes tell the streams ------------------------------------------

    def jobs_started(self, client_id: str, jobs: Sequence[Job]) -> None:
        """Jobs started with X-Client-Id ``client_id`` in this process."""
        for stream in self._by_group.get(("client", client_id), ()):
            stream.add_jobs((job.job_id, job, -math.inf) for job in jobs)

    async def subscription_extended(self, subscription_id: str, job_ids: Sequence[str]) -> None:
        streams = list(self._by_group.get(("subscription", subscription_id), ()))
        if not streams:
            return
        loaded = await self._with_jobs([(job_id, self.clock.now()) for job_id in job_ids])
        for stream in streams:
            stream.add_jobs(loaded)

    def subscription_deleted(self, subscription_id: str) -> None:
        for stream in self._by_group.get(("subscription", subscription_id), ()):
            stream.fail("subscription gone")

    def close(self) -> None:
        """The server is stopping: every stream sends an error event and ends."""
        self._closing = True
        self.interrupt("server stopping")

    def interrupt(self, detail: str) -> None:
        """Every open stream sends an error event and ends (an outage begins); readers that
        reconnect meet the faults in force, like any other request."""
        for stream in list(self._streams):
            stream.fail(detail)


def _ignore_store_outage(task: asyncio.Future[bool]) -> None:
    if not task.cancelled() and isinstance(task.exception(), StoreUnavailable):
        logger.warning("event stream: %s", task.exception())


class _EventStreamResponse(EventSourceResponse):
    """An event stream that lets go of its jobs however the response ends (also when the
    reader hung up before the first event, or it was a HEAD request), and that drops a
    reader blocking a send longer than the send timeout with a warning, not a traceback
    (nothing more can reach that reader)."""

    def __init__(self, on_end: Callable[[], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.warning("event stream dropped: a send was blocked for %g s", self.send_timeout)
        finally:
            self._on_end()


class SubscriptionGone(Exception):
    """GET /events?subscription= names no live subscription."""


# --- the route ------------------------------------------------------------------------

_EVENT_STREAM_DOC = (
    "text/event-stream. `event: state` (data: job_id, result, created_at, finished_at) "
    "for each named job on connect and when a job becomes final; `event: unknown` (data: "
    "job_id) for an id the server does not know; `event: error` (data: detail) before "
    "the server closes the stream; a comment line as heartbeat."
)

events_router = APIRouter()


@events_router.get(
    "/events",
    response_class=Response,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": _EVENT_STREAM_DOC,
        },
        404: {"model": ErrorMessage, "description": "Subscription not found"},
    },
    summary="Final job states as Server-Sent Events",
)
async def events(
    request: Request,
    ids: Annotated[
        str | None, Query(description=f"comma-separated job ids, at most {MAX_IDS}")
    ] = None,
    subscription: Annotated[
        str | None, Query(description="a subscription id from POST /subscriptions")
    ] = None,
    all: Annotated[
        bool | None, Query(description="every job started with this request's X-Client-Id")
    ] = None,
    client_id: Annotated[
        str | None,
        Header(
            alias="X-Client-Id", pattern=CLIENT_ID_PATTERN, description="with all=true: whose jobs"
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=200,
            description="resume after this event (replays the final states missed)",
        ),
    ] = None,
) -> Response:
    """One stream for the jobs named by exactly one of ``ids``, ``subscription`` or
    ``all=true``; reconnect with ``Last-Event-ID`` to resume where it broke. An empty
    ``ids=`` or ``subscription=`` counts as not given."""
    ids, subscription = ids or None, subscription or None
    chosen = [name for name, given in
              [("ids", ids is not None), ("subscription", subscription is not None),
               ("all", bool(all))] if given]  # fmt: skip
    if len(chosen) != 1:
        what = "none" if not chosen else " and ".join(chosen)
        _refuse("query", "name the jobs with exactly one of ids, subscription or all=true, "
                f"not {what}")  # fmt: skip
    if ids is not None:
        named = tuple(part for part in (p.strip() for p in ids.split(",")) if part)
        if not named:
            _refuse("ids", "give at least one job id")
        if len(named) > MAX_IDS:
            _refuse("ids", f"at most {MAX_IDS} job ids, not {len(named)}; "
                    "use POST /subscriptions for more")  # fmt: skip
        job_set = JobSet("ids", ids=named)
    elif subscription is not None:
        job_set = JobSet("subscription", subscription_id=subscription)
    else:
        if client_id is None:
            _refuse("X-Client-Id", "all=true needs the X-Client-Id header the jobs were "
                    "started with")  # fmt: skip
        job_set = JobSet("client", client_id=client_id or "")
    resume_from = None
    if last_event_id:
        try:
            resume_from = parse_cursor(last_event_id)
        except BadCursor:
            _refuse("Last-Event-ID", "not an event id this server sent")
    if not request.app.state.videosim.offers.push:
        raise HTTPException(503, "push is switched off for now; poll", headers={"Retry-After": "5"})
    faults: FaultInjector = request.app.state.videosim.faults
    if (fault := await faults.turn_away(caller_identity(request))) is not None:
        raise HTTPException(fault.code, fault.detail, headers=fault.headers)
    streams: EventStreams = request.app.state.videosim.streams
    try:
        return await streams.open(job_set, resume_from)
    except SubscriptionGone:
        raise HTTPException(404, "Subscription not found") from None


def _refuse(field: str, message: str) -> NoReturn:
    where = "header" if field[0].isupper() else "query"
    raise RequestValidationError(
        [{"type": "value_error", "loc": (where, field), "msg": message, "input": None}]
    )
