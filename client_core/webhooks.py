"""A small webhook receiver: the server POSTs each job's final state here.

``WebhookReceiver(secret)`` listens on a loopback port (asyncio streams and h11, one
request per connection). A callback is accepted only with a valid Standard Webhooks
signature (``webhook-id``, ``webhook-timestamp`` within five minutes of now,
``webhook-signature``), checked by the ``standardwebhooks`` library with the secret's UTF-8
bytes as the key. Accepted states go to every listener (``VideoSimClient.use_webhooks``
adds the client's); the answer is 204. A listener that raises makes the answer 500, so
the server delivers again later: a state is acknowledged only once it was taken in.

Answers: 204 accepted, 401 missing or bad signature or stale timestamp, 400 a body
that is not a job's final state, 404/405 anything but ``POST /``, 500 a listener failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from types import TracebackType

import h11
from standardwebhooks import Webhook, WebhookVerificationError

from client_core.pushed import PushedState, Route, read_pushed

MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_S = 10.0
CALLBACK_PATH = "/"


def signature_problem(secret: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """Why a callback must be refused, or None when its signature holds."""
    try:
        Webhook(secret.encode()).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as error:
        return str(error) or "bad signature"
    return None


class WebhookReceiver:
    """``async with WebhookReceiver(secret) as receiver:`` then give ``receiver.url`` out."""

    def __init__(
        self,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not secret:
            raise ValueError("secret must be a non-empty string")
        self.secret = secret
        self.host = host
        self.port = port
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
        problem = signature_problem(self.secret, headers, body)
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
