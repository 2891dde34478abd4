"""Limits at the connection, before a request reaches the app.

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
"""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


def default_max_connections() -> int:
    """The open-file limit less some spare descriptors, at most 10,000."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _DEFAULT_MAX_CONNECTIONS
    return max(1, min(_DEFAULT_MAX_CONNECTIONS, soft - _SPARE_FDS))


def _answer(status: int, reason: str, detail: str, extra: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, with a JSON body like the app's."""
    body = json.dumps({"detail": detail}).encode()
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

    limits: EdgeLimits  # set on the subclass that guarded_protocol makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
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
    """The protocol class to hand to uvicorn (``http=``), bound to ``limits``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
