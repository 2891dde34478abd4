"""The client's one SSE connection: ``GET /events?all=true`` with its ``X-Client-Id``.

Why ``all=true`` and not a subscription: the server adds every job this client starts
(its starts carry the same ``X-Client-Id``) to the stream by itself, including jobs
started after the stream opened. Watching a new job then costs no request at all,
where a subscription costs one ``POST /subscriptions/{sid}/jobs`` per batch of new
jobs, and there is no subscription to lose or expire. Jobs the client did not start
are not on this stream; the hub follows those with the batch loop instead.

A break (connection lost, the server's ``event: error``, a restart) is followed by a
reconnect with ``Last-Event-ID``, so the server replays the final states missed
meanwhile, after a bounded backoff. A stream that is not offered (404, 405, 422, not
``text/event-stream``) or keeps breaking is given up: ``on_gone`` moves its watches to
the batch loop.

The stream has its own ``httpx.AsyncClient`` (its own connection, outside the admission
queue and its in-flight cap), on the lean transport, which hands an event stream's
body out as it arrives: one pass through the parser per read, not per event. Wrapped
around it, :class:`_NotingArrivals` notes when bytes last came, heartbeats included (the SSE
parser drops those comment lines), so a user can see that a quiet stream is alive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import httpx
from httpx_sse import SSEError, aconnect_sse

from client_core.answers import describe_transport_error, detail, retry_after_s
from client_core.channel import ClientStats
from client_core.clock import Clock
from client_core.lean_transport import LeanTransport
from client_core.policy import BackoffPolicy, Jitter
from client_core.protocol import EVENTS_PATH
from client_core.pushed import NOT_FOUND, PushedState, Route, read_pushed
from client_core.racing import stop_task

NOT_OFFERED = frozenset({404, 405, 422})  # an older server, or one refusing all=true
# Between reconnects: 0.1, 0.2, 0.4 ... s, capped at 2 s, each +-20 % so that clients a
# restarted server dropped together do not come back together.
RECONNECT_POLICY = BackoffPolicy(
    initial_s=0.1, multiplier=2.0, max_delay_s=2.0, jitter=Jitter.PROPORTIONAL, jitter_ratio=0.2
)
GIVE_UP_AFTER_FAILURES = 10  # consecutive failed connects (about 15 s): then batch takes over
MAX_BREAKS = 6  # open streams broken within BREAK_WINDOW_S: a stream that keeps breaking
BREAK_WINDOW_S = 60.0
# The server sends a heartbeat every 15 s: three missed in a row means a dead connection.
DEFAULT_STREAM_READ_TIMEOUT_S = 45.0


@dataclass(frozen=True, slots=True)
class StreamSettings:
    base_url: str
    headers: Mapping[str, str]
    connect_timeout_s: float
    read_timeout_s: float = DEFAULT_STREAM_READ_TIMEOUT_S
    max_pause_s: float = 60.0
    reconnect: BackoffPolicy = RECONNECT_POLICY


class EventStream:
    """Runs the connection in a task until closed or given up; reports states as they come."""

    def __init__(
        self,
        settings: StreamSettings,
        *,
        clock: Clock,
        stats: ClientStats,
        on_state: Callable[[PushedState], None],
        on_gone: Callable[[str], None],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._stats = stats
        self._on_state = on_state
        self._on_gone = on_gone
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=dict(settings.headers),
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            transport=_NotingArrivals(transport or LeanTransport(max_keepalive=1), self._heard),
        )
        self.last_event_id: str | None = None
        self.connected = asyncio.Event()  # set while a stream is open
        self.connected_since: float | None = None  # the open connection's start (the clock's)
        self.last_heard_at: float | None = None  # bytes last arrived, heartbeats included
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="videosim-event-stream"
            )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        await self._http.aclose()

    # -- the connection loop ------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        breaks: list[float] = []
        policy = self._settings.reconnect
        rng = policy.rng()
        previous: float | None = None
        while True:
            wait_s: float | None = None
            try:
                await self._listen_once()
            except _NotOffered as exc:
                self._gone(str(exc))
                return
            except _Refused as exc:
                self.last_error = str(exc)
                wait_s = exc.retry_after_s
            except (httpx.TransportError, SSEError) as exc:
                self.last_error = (
                    describe_transport_error(exc)
                    if isinstance(exc, httpx.RequestError)
                    else str(exc)
                )
            opened = self.connected.is_set()  # it was open, then broke: not a failed connect
            self.connected.clear()
            self.connected_since = None
            failures = 0 if opened else failures + 1
            now = self._clock.now()
            breaks = [at for at in breaks if now - at < BREAK_WINDOW_S]
            if opened:  # refused connects count as failures, not as breaks
                breaks.append(now)
            if failures >= GIVE_UP_AFTER_FAILURES or len(breaks) > MAX_BREAKS:
                self._gone(f"the event stream keeps breaking ({self.last_error})")
                return
            previous = policy.delay(max(failures, 1), previous, rng)
            await self._clock.sleep(max(previous, wait_s or 0.0))

    async def _listen_once(self) -> None:
        """One connection, read until it ends; ``connected`` is set while it is open."""
        headers = {}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
            self._stats.stream_resumes += 1
        self._stats.requests_sent += 1
        self._stats.stream_connects += 1
        async with aconnect_sse(
            self._http, "GET", EVENTS_PATH, params={"all": "true"}, headers=headers
        ) as source:
            response = source.response
            code = response.status_code
            if code != 200:
                if code >= 400:
                    self._stats.refusals[code] += 1
                await response.aread()
                message = f"GET /events answered HTTP {code}: {detail(response)}"
                if code in NOT_OFFERED:
                    raise _NotOffered(message)
                raise _Refused(message, retry_after_s(response, self._settings.max_pause_s))
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
            if kind != "text/event-stream":
                raise _NotOffered(f"GET /events answered {kind or 'no content type'}")
            self.connected.set()
            self.connected_since = self._clock.now()
            async for event in source.aiter_sse():
                if event.event == "error":
                    self.last_error = f"the server closed the event stream: {event.data}"
                    break
                self._handle(event.event, event.data)
                if event.id:
                    self.last_event_id = event.id

    def _heard(self) -> None:
        self.last_heard_at = self._clock.now()

    def _handle(self, kind: str, data: str) -> None:
        try:
            body = json.loads(data) if data else None
        except ValueError:
            return  # not this API's event: ignored, the watch's deadline still holds
        if kind == "state":
            state = read_pushed(body, Route.STREAM)
        elif kind == "unknown" and isinstance(body, dict) and isinstance(body.get("job_id"), str):
            state = PushedState(body["job_id"], NOT_FOUND, Route.STREAM)
        else:
            return
        if state is not None:
            self._stats.pushed_states += 1
            self._on_state(state)

    def _gone(self, why: str) -> None:
        self.last_error = why
        self._on_gone(why)


class _NotingArrivals(httpx.AsyncBaseTransport):
    """A transport that calls ``on_bytes`` whenever a response body's bytes arrive."""

    def __init__(self, inner: httpx.AsyncBaseTransport, on_bytes: Callable[[], None]) -> None:
        self._inner = inner
        self._on_bytes = on_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_NotedBody(response.stream, self._on_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _NotedBody(httpx.AsyncByteStream):
    def __init__(self, body: httpx.AsyncByteStream, on_bytes: Callable[[], None]) -> None:
        self._body = body
        self._on_bytes = on_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            self._on_bytes()
            yield chunk

    async def aclose(self) -> None:
        await self._body.aclose()


class _NotOffered(Exception):
    """The server has no event stream for us: do not try again."""


class _Refused(Exception):
    """The server answered, but not with a stream (5xx, 429): try again later."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
