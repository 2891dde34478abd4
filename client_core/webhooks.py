"""A small webhook receiver: the server POSTs each job's final state here.

``WebhookReceiver(secret)`` listens on a loopback port (asyncio streams and h11, one
request per connection). A callback is accepted only with a valid
``X-Videosim-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>`` whose
``X-Videosim-Timestamp`` is within five minutes of now; the signature is compared in
constant time. Accepted states go to every listener (``VideoSimClient.use_webhooks``
adds the client's); the answer is 204. A listener that raises makes the answer 500, so
the server delivers again later: a state is acknowledged only once it was taken in.

Answers: 204 accepted, 401 missing or bad signature or stale timestamp, 400 a body
that is not a job's final state, 404/405 anything but ``POST /``, 500 a listener failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from types import TracebackType

import h11

from client_core.protocol import SIGNATURE_HEADER, TIMESTAMP_HEADER
from client_core.pushed import PushedState, Route, read_pushed

MAX_SKEW_S = 300.0  # a timestamp further than this from now is refused (replays)
MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_S = 10.0
CALLBACK_PATH = "/"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signature_problem(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    max_skew_s: float = MAX_SKEW_S,
) -> str | None:
    """Why a callback must be refused, or None when its signature holds."""
    if not signature or not timestamp:
        return "missing signature or timestamp"
    try:
        stamp = int(timestamp)
    except ValueError:
        return "timestamp is not an integer"
    if abs(now - stamp) > max_skew_s:
        return "timestamp too far from now"
    if not hmac.compare_digest(sign(secret, stamp, body), signature):
        return "bad signature"
    return None


class WebhookReceiver:
    """``async with WebhookReceiver(secret) as receiver:`` then give ``receiver.url`` out."""

    def __init__(
        self,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("secret must be a non-empty string")
        self.secret = secret
        self.host = host
        self.port = port
        self._wall_clock = wall_clock
        self._listeners: list[Callable[[PushedState], None]] = []
        self._server: asyncio.Server | None = None
        self.accepted = 0  # callbacks taken in (204)
        self.refused = 0  # callbacks refused (401, 400, 404, 405)
        self.failed = 0  # a listener raised (500)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not listening: use it with async with")
        return f"http://{self.host}:{self.port}{CALLBACK_PATH}"

    def add_listener(self, listener: Callable[[PushedState], None]) -> None:
        """Called with each accepted state; raising makes the server deliver it again."""
        self._listeners.append(listener)

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    # -- one connection, one request ---------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                request, body = await _read_request(connection, reader)
            code = self._answer(request, body)
        except (TimeoutError, h11.RemoteProtocolError, ConnectionError, _TooBig):
            code = 400
            if connection.our_state is not h11.SEND_RESPONSE:
                writer.close()
                return
        headers = [("content-length", "0"), ("connection", "close")]
        with contextlib.suppress(ConnectionError, h11.LocalProtocolError):
            writer.write(connection.send(h11.Response(status_code=code, headers=headers)))
            writer.write(connection.send(h11.EndOfMessage()))
            await writer.drain()
        writer.close()

    def _answer(self, request: h11.Request, body: bytes) -> int:
        if request.target.split(b"?")[0] != CALLBACK_PATH.encode():
            self.refused += 1
            return 404
        if request.method != b"POST":
            self.refused += 1
            return 405
        headers = {
            name.decode().lower(): value.decode("latin-1") for name, value in request.headers
        }
        problem = signature_problem(
            self.secret,
            headers.get(TIMESTAMP_HEADER.lower()),
            headers.get(SIGNATURE_HEADER.lower()),
            body,
            self._wall_clock(),
        )
        if problem is not None:
            self.refused += 1
            return 401
        try:
            state = read_pushed(json.loads(body), Route.WEBHOOK)
        except ValueError:
            state = None
        if state is None:
            self.refused += 1
            return 400
        try:
            for listener in self._listeners:
                listener(state)
        except Exception:
            self.failed += 1
            return 500
        self.accepted += 1
        return 204


class _TooBig(Exception):
    pass


async def _read_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes]:
    request: h11.Request | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65_536)
            connection.receive_data(data)  # b"" marks the end: h11 then says what it means
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                raise _TooBig
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            return request, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("closed before the request was complete")
