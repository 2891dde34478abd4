"""The server's edge: limits at the connection, and the one ASGI middleware.

uvicorn's httptools protocol has no cap on header size or count and no timeout on a
request that arrives slowly: a 60 MB header stalled the event loop for seconds, and
sockets that sent a byte now and then stayed open for minutes, each holding a file
descriptor until none was left for real clients. :func:`guarded_protocol` returns that
protocol with the limits of :class:`EdgeLimits`:

- headers larger than ``max_header_bytes`` or more than ``max_headers`` -> 431, closed;
- headers not complete ``header_timeout_s`` after the first byte (or after connecting)
  -> 408, closed; a body not complete ``body_timeout_s`` after its headers -> 408, closed;
- more than ``max_connections`` open connections -> the new one gets 503 with
  Retry-After and is closed at once, so file descriptors never run out.

Then every request passes :class:`EdgeMiddleware`, the app's only middleware of its own:
the body-size limit, the request count for /metrics, and the hot path, GET /status,
served before FastAPI's routing (see its docstring for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.settings import ServerSettings

# File descriptors kept free for the listening socket, the state file, logs and the
# connection being refused.
_SPARE_FDS = 64
_DEFAULT_MAX_CONNECTIONS = 10_000
# How long a refused connection is drained before it is closed.
_LINGER_S = 1.0


@dataclass(frozen=True)
class EdgeLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> EdgeLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=settings.max_connections or default_max_connections(),
        )


def default_max_connections() -> int:
    """The open-file limit less some spare descriptors, at most 10,000."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _DEFAULT_MAX_CONNECTIONS
    return max(1, min(_DEFAULT_MAX_CONNECTIONS, soft - _SPARE_FDS))


def _answer(status: int, reason: str, detail: str, extra: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, with a JSON body like the app's."""
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "connection": "close",
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


_TOO_LARGE = _answer(431, "Request Header Fields Too Large", "Request headers too large")
_TOO_MANY = _answer(431, "Request Header Fields Too Large", "Too many request headers")
_TIMEOUT = _answer(408, "Request Timeout", "Request not received in time")
_BUSY = _answer(503, "Service Unavailable", "Too many open connections", {"retry-after": "1"})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`EdgeLimits`, per request.

    Bytes reach the parser one request part at a time: the headers up to their blank
    line (found here, so the cap counts this request's header bytes alone however many
    pipelined requests share a socket read), then exactly the body its Content-Length
    announces. A refused request is answered after every request before it on the
    connection has had its answer.
    """

    # Set by guarded_protocol(). None in a --reload child process, which has only the
    # VIDEOSIM_* environment to go by (and uvicorn hands it this class by name).
    configured: ClassVar[EdgeLimits | None] = None
    # An outage (a scenario's): every connection is cut as soon as it is made or speaks.
    dropping: ClassVar[bool] = False
    limits: EdgeLimits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if GuardedHttpToolsProtocol.configured is None:
            settings = ServerSettings()
            GuardedHttpToolsProtocol.configured = EdgeLimits.from_settings(settings)
        self.limits = GuardedHttpToolsProtocol.configured
        super().connection_made(transport)
        self._refused = False
        self._refusal: bytes | None = None  # waits for the answers owed before it
        self._in_headers = True
        self._header_bytes = 0  # of the request being read
        self._header_count = 0
        self._tail = b""  # the last bytes of the headers so far: a blank line may span reads
        self._body_left: int | None = 0  # None: chunked, parsed as it comes
        self._read_timer: asyncio.TimerHandle | None = None
        if GuardedHttpToolsProtocol.dropping:
            transport.abort()
            return
        if len(self.connections) > self.limits.max_connections:
            self._refuse(_BUSY)
            return
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if GuardedHttpToolsProtocol.dropping:  # a kept-alive connection speaks in an outage
            self.transport.abort()
            return
        while data and self._still_reading():
            if self._in_headers:
                data = self._feed_headers(data)
            elif not self._body_left:
                # A chunked body and whatever follows it, or a state the parser ends by
                # itself (an upgrade, an error): all of it, as uvicorn would.
                super().data_received(data)
                return
            else:
                part, data = data[: self._body_left], data[self._body_left :]
                self._body_left -= len(part)
                super().data_received(part)

    def _still_reading(self) -> bool:
        """Not refused, not closing, and still this connection's protocol (an upgrade
        hands the connection to another)."""
        transport = self.transport
        return not (self._refused or transport.is_closing() or transport.get_protocol() is not self)

    def _feed_headers(self, data: bytes) -> bytes:
        """Feed this request's headers, at most up to the cap; returns what follows them."""
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            room = self.limits.max_header_bytes - self._header_bytes
            if len(data) > room:
                self._refuse(_TOO_LARGE)
                return b""
            self._header_bytes += len(data)
            self._tail = seen[-3:]
            super().data_received(data)
            return b""
        used = end + 4 - len(self._tail)  # bytes of ``data`` up to the blank line's end
        if self._header_bytes + used > self.limits.max_header_bytes:
            self._refuse(_TOO_LARGE)
            return b""
        self._header_bytes += used
        self._tail = b""
        super().data_received(data[:used])
        return data[used:]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:  # the next request on a kept-alive connection
            self._arm(self.limits.header_timeout_s)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(_TOO_MANY)
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_headers = False
        declared, streamed = _declared_body(self.headers)
        self._body_left = None if streamed else max(0, declared or 0)
        self._disarm()
        if self._body_left != 0:
            self._arm(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        # Whatever comes next on this connection is the next request's headers.
        self._in_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._body_left = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not self.pipeline:
            self._send_refusal()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._on_read_timeout)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _on_read_timeout(self) -> None:
        self._read_timer = None
        if self.cycle is not None and self.cycle.response_started and not self._in_headers:
            self.transport.close()  # too late for a 408: just hang up
        else:
            self._refuse(_TIMEOUT)

    def _refuse(self, answer: bytes) -> None:
        """Stop reading this connection, and answer ``answer`` once every request before
        the refused one has been answered."""
        self._refused = True
        self._disarm()
        self.flow.pause_reading()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not self._in_headers:
            # The refused request itself is the one running (its body timed out).
            cycle.disconnected = True
            cycle.message_event.set()
        self._refusal = answer
        if cycle is None or cycle.response_complete or cycle.disconnected:
            self.pipeline.clear()
            self._send_refusal()

    def _send_refusal(self) -> None:
        """Answer and hang up. Reading (and dropping) what the client still sends for a
        moment first: closing with unread data would send a reset that can destroy the
        answer before the client reads it."""
        answer, self._refusal = self._refusal, None
        if answer is None or self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.transport.write(answer)
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._read_timer = self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()


def drop_connections(dropping: bool) -> None:
    """Cut every connection of this process as it is made or sends a request (an outage)."""
    GuardedHttpToolsProtocol.dropping = dropping


def guarded_protocol(limits: EdgeLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to hand to uvicorn (``http=``), with ``limits`` for this process."""
    GuardedHttpToolsProtocol.configured = limits
    return GuardedHttpToolsProtocol


# --- the ASGI layer --------------------------------------------------------------------

# Serves GET /status/{job_id} for the job id given: answers through ``send`` and returns the
# status code it answered with.
StatusHandler = Callable[[Scope, Receive, Send, str], Awaitable[int]]
# Counts one answered request: method, route template, status code.
RequestCounter = Callable[[str, str, int], None]

STATUS_PREFIX = "/status/"
STATUS_TEMPLATE = "/status/{job_id}"
UNMATCHED_ROUTE = "<unmatched>"


_PLAIN_500_START: Message = {
    "type": "http.response.start",
    "status": 500,
    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")],
}
_PLAIN_500_BODY: Message = {"type": "http.response.body", "body": b"Internal Server Error"}


# Methods whose announced body the edge reads in full before the app sees the request.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class EdgeMiddleware:
    """The app's one middleware, outside all of FastAPI's but the 500 handler, for every request:

    - a request body is read here, whole, before the app runs: one 413 (with a JSON
      detail) as soon as it passes ``max_body_bytes`` (or the path's own limit in
      ``larger_bodies``, for a route that takes large batches; a key ending in ``/``
      covers every path under it), at once when its Content-Length says so; and when
      the server begins to stop (:meth:`stop`) while a body is still arriving, the
      request is answered 503 with Retry-After at once instead of holding the shutdown;
    - every answer is counted by method, route template and status code;
    - ``GET /status/{job_id}``, the hot path, is served right here by ``serve_status``,
      without FastAPI's routing and middleware: no send wrapper, nothing but the route's
      own work. A held long-poll is then a short coroutine stack (uvicorn's, this and
      the route's), which keeps its memory small.

    Every other request goes through FastAPI with one send wrapper, which notes the
    status code for the count.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        count: RequestCounter,
        serve_status: StatusHandler,
        larger_bodies: Mapping[str, int] | None = None,
        status_methods: frozenset[str] = frozenset({"GET", "HEAD"}),
        on_built: Callable[[EdgeMiddleware], None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        larger = dict(larger_bodies or {})
        self.larger_bodies = {path: cap for path, cap in larger.items() if not path.endswith("/")}
        self.larger_prefixes = [(path, cap) for path, cap in larger.items() if path.endswith("/")]
        self.count = count
        self.serve_status = serve_status
        self.status_methods = status_methods  # others go to the app, which answers 405
        self._stopping = False
        self._reading: set[asyncio.Task[object]] = set()  # requests whose body is arriving
        if on_built is not None:  # the app builds its middleware itself: this is when
            on_built(self)

    def stop(self) -> None:
        """The server begins to stop: requests still receiving their body are answered 503
        now, and so is any that starts to."""
        self._stopping = True
        for task in self._reading:
            task.cancel()

    @property
    def bodies_arriving(self) -> int:
        """Requests whose body is still being received."""
        return len(self._reading)

    def _body_limit(self, path: str) -> int:
        limit = self.larger_bodies.get(path)
        if limit is not None:
            return limit
        for prefix, cap in self.larger_prefixes:
            if path.startswith(prefix):
                return cap
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":  # the app (re)starts: it takes bodies again
                self._stopping = False
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        declared, streamed = _declared_body(scope["headers"])
        limit = self._body_limit(path)
        too_large = declared is not None and declared > limit
        if (
            method in self.status_methods
            and path.startswith(STATUS_PREFIX)
            and "/" not in path[len(STATUS_PREFIX) :]
            and len(path) > len(STATUS_PREFIX)
        ):
            job_id = path[len(STATUS_PREFIX) :]
            await self._status(scope, receive, send, job_id, limit if too_large else None)
            return
        if too_large:
            await self._refuse(scope, send, _too_large_messages(limit))
            return
        if method in _BODY_METHODS and (streamed or declared):
            body = await self._read_body(receive, limit)
            if body is None:
                return  # the client hung up: nobody to tell
            if not isinstance(body, bytes):
                await self._refuse(scope, send, body)  # 413, or 503 as the server stops
                return
            receive = _replaying(body, receive)

        code = 500

        async def send_noting_code(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_code)
        finally:
            route = scope.get("route")
            self.count(method, getattr(route, "path", UNMATCHED_ROUTE), code)

    async def _refuse(self, scope: Scope, send: Send, answer: tuple[Message, Message]) -> None:
        """Give a prepared answer instead of running the app, and count it."""
        await _send_answer(send, answer)
        self.count(scope["method"], _route_template(scope), answer[0]["status"])

    async def _read_body(
        self, receive: Receive, limit: int
    ) -> bytes | tuple[Message, Message] | None:
        """The whole body; else the answer to give instead (413, or 503 when the server
        stops meanwhile), or None when the client hung up."""
        if self._stopping:
            return _STOPPING
        task = asyncio.current_task()
        assert task is not None, "ASGI requests run in a task"
        self._reading.add(task)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return _too_large_messages(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            task.uncancel()
            return _STOPPING
        finally:
            self._reading.discard(task)

    async def _status(
        self, scope: Scope, receive: Receive, send: Send, job_id: str, over_limit: int | None
    ) -> None:
        code = 500
        try:
            if over_limit is not None:  # a body declared larger than this
                code = 413
                await _send_answer(send, _too_large_messages(over_limit))
            else:
                code = await self.serve_status(scope, receive, send, job_id)
        except Exception:
            # As FastAPI's ServerErrorMiddleware would: a plain 500, then uvicorn logs the
            # error. serve_status sends its answer in one go at its very end, so unless
            # sending it failed, nothing went out yet.
            with contextlib.suppress(Exception):
                await send(_PLAIN_500_START)
                await send(_PLAIN_500_BODY)
            raise
        finally:
            self.count(scope["method"], STATUS_TEMPLATE, code)


def _too_large(limit: int) -> str:
    return f"Request body larger than {limit} bytes"


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the body already read, then whatever comes next (the
    client hanging up)."""
    given = False

    async def receive_replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_replayed


def _answer_messages(
    status: int, body: bytes, extra: dict[str, str] | None = None
) -> tuple[Message, Message]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in (extra or {}).items()]
    if status >= 500:
        headers.append((b"connection", b"close"))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    return start, {"type": "http.response.body", "body": body}


# The answer to a request whose body is still arriving when the server stops.
_STOPPING = _answer_messages(
    503,
    json.dumps({"detail": "Server is stopping; retry shortly"}, separators=(",", ":")).encode(),
    {"retry-after": "1"},
)


def _too_large_messages(limit: int) -> tuple[Message, Message]:
    body = json.dumps({"detail": _too_large(limit)}, separators=(",", ":")).encode()
    return _answer_messages(413, body)


async def _send_answer(send: Send, answer: tuple[Message, Message]) -> None:
    start, body = answer
    await send(start)
    await send(body)


def _declared_body(headers: Iterable[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """(Content-Length if given and valid, whether the body is streamed without one)."""
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value), False
            except ValueError:
                return None, False
        if name == b"transfer-encoding":
            return None, True
    return None, False


def _route_template(scope: Scope) -> str:
    """The template of the documented path this request is for, for the count (the
    router, which would name it, did not run)."""
    openapi = getattr(scope.get("app"), "openapi", None)  # the app Starlette put there
    paths = openapi()["paths"] if openapi is not None else {}
    for template in paths:
        if compile_path(template)[0].match(scope["path"]):
            return str(template)
    return UNMATCHED_ROUTE
