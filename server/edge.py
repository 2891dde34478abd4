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

from starlette.exceptions import HTTPException
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
    """uvicorn's httptools protocol with the limits of :class:`EdgeLimits`."""

    # Set by guarded_protocol(). None in a --reload child process, which has only the
    # VIDEOSIM_* environment to go by (and uvicorn hands it this class by name).
    configured: ClassVar[EdgeLimits | None] = None
    limits: EdgeLimits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if GuardedHttpToolsProtocol.configured is None:
            settings = ServerSettings()
            GuardedHttpToolsProtocol.configured = EdgeLimits.from_settings(settings)
        self.limits = GuardedHttpToolsProtocol.configured
        super().connection_made(transport)
        self._refused = False
        self._in_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._read_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limits.max_connections:
            self._refuse(_BUSY)
            return
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_headers:
            super().data_received(data)
            return
        budget = self.limits.max_header_bytes - self._header_bytes
        if len(data) <= budget:
            self._header_bytes += len(data)
            super().data_received(data)
            return
        # Feed only what the budget allows: either the headers end inside it and the rest
        # is body (or the next request), or they are too large and nothing more is parsed.
        self._header_bytes += budget
        super().data_received(data[:budget])
        if self._refused:
            return
        if self._in_headers:
            self._refuse(_TOO_LARGE)
            return
        super().data_received(data[budget:])

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
        self._disarm()
        if self._expects_body():
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
        super().on_message_complete()

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"0", b"")
            if name == b"transfer-encoding":
                return True
        return False

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._on_read_timeout)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _on_read_timeout(self) -> None:
        self._read_timer = None
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # too late for a 408: just hang up
        else:
            self._refuse(_TIMEOUT)

    def _refuse(self, answer: bytes) -> None:
        """Answer and hang up. Reading (and dropping) what the client still sends for a
        moment first: closing with unread data would send a reset that can destroy the
        answer before the client reads it."""
        self._refused = True
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.transport.is_closing():
            return
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._read_timer = self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()


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


class EdgeMiddleware:
    """The app's one middleware, outside all of FastAPI's own, for every HTTP request:

    - a request body over ``max_body_bytes`` (or the path's own limit in
      ``larger_bodies``, for a route that takes large batches; a key ending in ``/``
      covers every path under it) is answered 413 with a
      JSON detail: at once, before the app, when its Content-Length says so (so a route
      that never reads its body cannot act on the request first), else as soon as the
      streamed bytes pass it;
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
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        larger = dict(larger_bodies or {})
        self.larger_bodies = {path: cap for path, cap in larger.items() if not path.endswith("/")}
        self.larger_prefixes = [(path, cap) for path, cap in larger.items() if path.endswith("/")]
        self.count = count
        self.serve_status = serve_status

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
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        declared, streamed = _declared_body(scope["headers"])
        limit = self._body_limit(path)
        too_large = declared is not None and declared > limit
        if (
            (method == "GET" or method == "HEAD")
            and path.startswith(STATUS_PREFIX)
            and "/" not in path[len(STATUS_PREFIX) :]
            and len(path) > len(STATUS_PREFIX)
        ):
            job_id = path[len(STATUS_PREFIX) :]
            await self._status(scope, receive, send, job_id, limit if too_large else None)
            return
        if too_large:
            await _send_too_large(send, limit)
            self.count(method, _route_template(scope), 413)
            return

        code = 500

        async def send_noting_code(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        if streamed:
            receive = _limited(receive, limit)
        try:
            await self.app(scope, receive, send_noting_code)
        finally:
            route = scope.get("route")
            self.count(method, getattr(route, "path", UNMATCHED_ROUTE), code)

    async def _status(
        self, scope: Scope, receive: Receive, send: Send, job_id: str, over_limit: int | None
    ) -> None:
        code = 500
        try:
            if over_limit is not None:  # a body declared larger than this
                code = 413
                await _send_too_large(send, over_limit)
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


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises a 413 (FastAPI answers it) once the body passes ``limit``."""
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return receive_within_limit


async def _send_too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _too_large(limit)}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
