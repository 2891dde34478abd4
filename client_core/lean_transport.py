"""A lean HTTP/1.1 transport for ``http://`` servers: asyncio streams, h11, a LIFO pool.

httpx's default transport (httpcore over anyio) spends most of a loopback request's
CPU in its own machinery: a scan of every pooled connection each time a request
starts or ends, cancel scopes, and async-library detection on each await. This
transport does one thing: send a request on an idle connection (or a new one) and
read the whole answer, under the request's timeouts. Answers of this API are small,
so bodies are read in full; the one exception is an event stream (an answer whose media
type is ``text/event-stream``, parameters or not), whose body is handed out as it
arrives. Errors are raised as httpx's own (a write that times out is a ``WriteTimeout``,
a read a ``ReadTimeout``), so nothing above it can tell the difference. A kept-alive
connection the server had closed is replaced, and the request sent again, only when
that is safe: a method that may be repeated, or a request with an ``Idempotency-Key``
(a POST is never sent twice otherwise). ``https://`` goes to httpx's transport; the
same test suite runs over both (tests/client_core/test_transports.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11
import httpx

READ_CHUNK = 65_536
EVENT_STREAM = b"text/event-stream"  # an answer of this media type is streamed, not read whole
# Requests that may be sent again on a new connection when a kept-alive one turns out to
# be closed: RFC 9110's idempotent methods, or any request with an Idempotency-Key.
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0

    def usable(self, now: float, expiry_s: float) -> bool:
        return (
            now - self.idle_since < expiry_s
            and not self.writer.transport.is_closing()
            and not self.reader.at_eof()
        )

    def close(self) -> None:
        self.writer.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive for plain ``http://``; others go to ``fallback``."""

    def __init__(self, *, max_keepalive: int, keepalive_expiry_s: float = 30.0) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._max_keepalive = max_keepalive
        self._expiry_s = keepalive_expiry_s
        self._fallback = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            return await self._fallback.handle_async_request(request)
        timeouts = request.extensions.get("timeout", {})
        key = (request.url.host, request.url.port or 80)
        body = await request.aread()
        reused = self._take_idle(key)
        if reused is not None:
            try:
                return await self._exchange(reused, key, request, body, timeouts)
            except _StaleConnection:
                # Closed by the server, most likely while idle; but it may have read the
                # request first: only a request safe to repeat is sent again.
                if not _repeatable(request):
                    raise httpx.RemoteProtocolError(
                        "server closed the connection without answering", request=request
                    ) from None
        connection = await self._connect(key, timeouts.get("connect"))
        try:
            return await self._exchange(connection, key, request, body, timeouts)
        except _StaleConnection:
            raise httpx.RemoteProtocolError(
                "server closed the connection", request=request
            ) from None

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        await self._fallback.aclose()

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        connections = self._idle.get(key)
        now = time.monotonic()
        while connections:
            connection = connections.pop()  # the most recently used: surely still open
            if connection.usable(now, self._expiry_s):
                return connection
            connection.close()
        return None

    def _give_back(self, key: tuple[str, int], connection: _Connection) -> None:
        connections = self._idle.setdefault(key, [])
        if len(connections) >= self._max_keepalive:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        connections.append(connection)

    async def _connect(self, key: tuple[str, int], timeout_s: float | None) -> _Connection:
        host, port = key
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_CHUNK)
        except TimeoutError:
            raise httpx.ConnectTimeout("connect timed out") from None
        except ConnectionRefusedError:
            raise httpx.ConnectError("connection refused") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or "connect error") from None
        return _Connection(reader, writer)

    async def _exchange(
        self,
        connection: _Connection,
        key: tuple[str, int],
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        """Send ``request`` and read its whole answer; the connection goes back if it can."""
        protocol = connection.protocol
        target = request.url.raw_path
        headers = [(name, value) for name, value in request.headers.raw]
        data = protocol.send(h11.Request(method=request.method, target=target, headers=headers))
        if body:
            data += protocol.send(h11.Data(data=body))
        data += protocol.send(h11.EndOfMessage())
        received_any = False
        streaming = False
        try:
            connection.writer.write(data)
            try:
                async with asyncio.timeout(timeouts.get("write")):
                    await connection.writer.drain()
            except TimeoutError:
                connection.close()
                raise httpx.WriteTimeout("write timed out", request=request) from None
            async with asyncio.timeout(timeouts.get("read")):
                answer: h11.Response | None = None
                chunks: list[bytes] = []
                while True:
                    event = protocol.next_event()
                    if event is h11.NEED_DATA:
                        chunk = await connection.reader.read(READ_CHUNK)
                        if not chunk and not received_any:
                            connection.close()
                            raise _StaleConnection
                        received_any = True
                        protocol.receive_data(chunk)
                    elif isinstance(event, h11.Response):
                        answer = event
                        streaming = answer.status_code == 200 and _is_event_stream(answer)
                        if streaming:
                            break  # the body is read as it comes: see _EventStreamBody
                    elif isinstance(event, h11.Data):
                        chunks.append(bytes(event.data))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise httpx.RemoteProtocolError("server closed the connection")
        except _StaleConnection:
            raise
        except TimeoutError:
            connection.close()
            raise httpx.ReadTimeout("read timed out", request=request) from None
        except h11.RemoteProtocolError as exc:
            connection.close()
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        except httpx.HTTPError:
            connection.close()
            raise
        except (ConnectionError, OSError) as exc:
            connection.close()
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
        except BaseException:  # cancelled mid-request: the connection's state is unknown
            connection.close()
            raise
        assert answer is not None
        headers = [(bytes(name), bytes(value)) for name, value in answer.headers]
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": bytes(answer.reason)}
        if streaming:
            chunked = any(
                name.lower() == b"transfer-encoding" and value.lower() == b"chunked"
                for name, value in headers
            )
            events = _EventStreamBody(connection, request, timeouts.get("read"), chunked)
            return httpx.Response(
                answer.status_code, headers=headers, stream=events, extensions=extensions
            )
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            self._give_back(key, connection)
        else:
            connection.close()
        return httpx.Response(
            answer.status_code, headers=headers, content=b"".join(chunks), extensions=extensions
        )


def _repeatable(request: httpx.Request) -> bool:
    return request.method in REPEATABLE_METHODS or "idempotency-key" in request.headers


def _is_event_stream(answer: h11.Response) -> bool:
    """Is the answer's media type ``text/event-stream`` (any parameters, any case)?"""
    for name, value in answer.headers:
        if name == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == EVENT_STREAM
    return False


class _EventStreamBody(httpx.AsyncByteStream):
    """An endless answer (``text/event-stream``), read as it arrives.

    Each step yields everything that arrived in one read, however many events that is,
    so a busy stream costs one pass through httpx and the SSE parser per read, not per
    event. The connection is never reused: closing the body closes it.
    """

    def __init__(
        self,
        connection: _Connection,
        request: httpx.Request,
        read_timeout_s: float | None,
        chunked: bool,
    ) -> None:
        self._connection = connection
        self._request = request
        self._read_timeout_s = read_timeout_s
        self._transfer_chunked = chunked

    async def __aiter__(self) -> AsyncIterator[bytes]:
        protocol = self._connection.protocol
        reader = self._connection.reader
        # Past the head, a chunked body is decoded here: h11 would make one event (and one
        # pass of its machinery) per chunk, and a stream sends one chunk per SSE event.
        chunked = _ChunkedBody() if self._transfer_chunked else None
        try:
            if chunked is not None:
                pending, _ = protocol.trailing_data
                while True:
                    data = chunked.feed(bytes(pending))
                    if data:
                        yield data
                    if chunked.ended:
                        return
                    async with asyncio.timeout(self._read_timeout_s):
                        pending = await reader.read(READ_CHUNK)
                    if not pending:
                        raise httpx.RemoteProtocolError(
                            "server closed the event stream mid-chunk", request=self._request
                        )
            while True:
                parts: list[bytes] = []
                while True:
                    event = protocol.next_event()
                    if isinstance(event, h11.Data):
                        parts.append(bytes(event.data))
                    elif event is h11.NEED_DATA:
                        break
                    else:  # EndOfMessage or ConnectionClosed: the server ended the stream
                        if parts:
                            yield b"".join(parts)
                        return
                if parts:
                    yield b"".join(parts)
                async with asyncio.timeout(self._read_timeout_s):
                    chunk = await reader.read(READ_CHUNK)
                protocol.receive_data(chunk)  # b"": the end, h11 then says how it ended
        except TimeoutError:
            raise httpx.ReadTimeout("read timed out", request=self._request) from None
        except (h11.RemoteProtocolError, ValueError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=self._request) from None
        except (ConnectionError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            raise httpx.ReadError(message, request=self._request) from None
        finally:
            self._connection.close()

    async def aclose(self) -> None:
        self._connection.close()


class _ChunkedBody:
    """Decodes ``Transfer-Encoding: chunked``: bytes in, the data of whole chunks out."""

    def __init__(self) -> None:
        self._buffer = b""
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        """The data of every chunk completed by ``data``; ValueError if it is not chunked."""
        if self.ended:
            return b""  # the final CRLF or trailers: nothing more for the reader
        buffer = self._buffer + data if self._buffer else data
        parts: list[bytes] = []
        at = 0
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(buffer[at:line_end].split(b";", 1)[0], 16)
            if size == 0:  # the last chunk (trailers, if any, are of no use here)
                self.ended = True
                at = len(buffer)
                break
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                break
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise ValueError("malformed chunked body")
            parts.append(buffer[line_end + 2 : data_end])
            at = data_end + 2
        self._buffer = buffer[at:]
        return b"".join(parts)


class _StaleConnection(Exception):
    """A kept-alive connection the server had closed: no byte of an answer came."""
