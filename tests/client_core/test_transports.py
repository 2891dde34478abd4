"""One suite for both transports the client can run on: its default lean transport and
httpx's own. Whatever a test here asserts, both do, against real sockets: timeouts of
each kind, keep-alive and its expiry, a stale pooled connection, a POST never sent
twice, streaming by media type, chunked and sized bodies, a server closing mid-body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from client_core.lean_transport import LeanTransport, _ChunkedBody
from tests.support.live_server import LiveServer, free_port

TRANSPORTS = ["lean", "httpx"]


def make_transport(kind: str, *, keepalive_expiry_s: float = 30.0) -> httpx.AsyncBaseTransport:
    if kind == "lean":
        return LeanTransport(max_keepalive=4, keepalive_expiry_s=keepalive_expiry_s)
    limits = httpx.Limits(max_keepalive_connections=4, keepalive_expiry=keepalive_expiry_s)
    return httpx.AsyncHTTPTransport(limits=limits)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


class ScriptedServer:
    """A loopback HTTP server whose every exchange is a test's own coroutine.

    ``handler(reader, writer, n)`` gets the n-th request (0-based, over all connections)
    with its head already read into ``requests``; it answers (or not) and returns
    whether the connection stays open for another request."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[str] = []  # "METHOD /path" of every request read
        self.connections = 0
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path = head.decode("latin-1").split(" ", 2)[:2]
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                self.requests.append(f"{method} {path}")
                if not await self._handler(reader, writer, len(self.requests) - 1):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    try:
        yield server
    finally:
        listener.close()


def answer(body: bytes = b'{"ok": true}', *, status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json"]
    if "Transfer_Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a ``Transfer-Encoding: chunked`` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
    writer.write(answer())
    await writer.drain()
    return True


async def crash_on_the_second(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
) -> bool:
    """Reads the second request and hangs up without answering (it may have acted on it)."""
    if n == 1:
        return False
    writer.write(answer())
    await writer.drain()
    return True


@pytest.fixture(params=TRANSPORTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_connections_are_kept_alive_and_reused(kind: str, live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, transport=make_transport(kind)) as http:
        answers = [await http.get("/status/special-pending-job") for _ in range(5)]
        started = await http.post("/start", json={"duration_s": 1.0})
    assert [a.json()["result"] for a in answers] == ["pending"] * 5
    assert started.status_code == 200 and started.json()["duration_s"] == 1.0
    async with (
        scripted(answer_ok) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
    ):
        for _ in range(5):
            assert (await http.get("/x")).status_code == 200
    assert server.connections == 1  # one connection did it all


async def test_an_expired_keep_alive_connection_is_not_used(kind: str) -> None:
    async with scripted(answer_ok) as server:
        transport = make_transport(kind, keepalive_expiry_s=0.05)
        async with httpx.AsyncClient(base_url=server.url, transport=transport) as http:
            await http.get("/x")
            await asyncio.sleep(0.2)  # the client's own expiry passes: a time, not a wait
            await http.get("/x")
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced(kind: str) -> None:
    async def answer_and_hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> bool:
        writer.write(answer())
        await writer.drain()
        return False  # closes the connection after each answer, without saying so

    async with (
        scripted(answer_and_hang_up) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
    ):
        for _ in range(3):
            assert (await http.get("/x")).status_code == 200
            await asyncio.sleep(0.05)  # the close reaches the client's pool
        assert (await http.post("/start", json={})).status_code == 200
    assert server.connections == 4


async def test_a_post_is_never_sent_twice(kind: str) -> None:
    """The server reads the second request and hangs up without answering (it may have
    acted on it): a GET may go again, a POST without an Idempotency-Key never does."""

    async with (
        scripted(crash_on_the_second) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
    ):
        await http.get("/first")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/start", json={})
    assert server.requests == ["GET /first", "POST /start"]


async def test_a_post_with_an_idempotency_key_may_go_again(kind: str) -> None:
    async with (
        scripted(crash_on_the_second) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
    ):
        await http.get("/first")
        try:
            await http.post("/start", json={}, headers={"Idempotency-Key": "k1"})
        except httpx.RemoteProtocolError:
            assert kind == "httpx"  # httpx's transport never sends again; ours may
    assert server.requests.count("POST /start") == (2 if kind == "lean" else 1)


async def test_timeouts_of_each_kind_are_httpx_errors(kind: str) -> None:
    async def never_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> bool:
        await asyncio.Event().wait()
        return False

    transport = make_transport(kind)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/x", timeout=1)
        async with scripted(never_answer) as silent:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{silent.url}/x", timeout=httpx.Timeout(5, read=0.2))

    # A server that never reads: a body larger than every buffer cannot be written.
    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    listener = await asyncio.start_server(never_read, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/x"
    try:
        async with httpx.AsyncClient(transport=make_transport(kind)) as http:
            with pytest.raises(httpx.WriteTimeout):
                await http.post(url, content=b"x" * 64_000_000,
                                timeout=httpx.Timeout(5, write=0.2))  # fmt: skip
    finally:
        listener.close()


@pytest.mark.parametrize("media_type", ["text/event-stream", "Text/Event-Stream; charset=utf-8"])
async def test_an_event_stream_is_handed_out_as_it_arrives(kind: str, media_type: str) -> None:
    """Recognised by its media type (parameters, case), whatever the request's Accept:
    the first event is read while the server still holds the rest."""
    more = asyncio.Event()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {media_type}\r\nTransfer-Encoding: chunked"
        writer.write(head.encode() + b"\r\n\r\n" + chunk(b"data: first\n\n"))
        await writer.drain()
        await more.wait()
        writer.write(chunk(b"data: second\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return False

    async with (
        scripted(stream) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
        http.stream("GET", "/events", headers={"Accept": "*/*"}) as response,
    ):
        chunks = response.aiter_bytes()
        first = await asyncio.wait_for(anext(chunks), 5)
        more.set()
        rest = b"".join([piece async for piece in chunks])
    assert first == b"data: first\n\n"
    assert rest == b"data: second\n\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_sized_and_chunked_bodies_are_read_whole(kind: str, chunked: bool) -> None:
    body = b'{"result": "pending", "padding": "' + b"x" * 100_000 + b'"}'

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if chunked:
            pieces = [body[i : i + 7000] for i in range(0, len(body), 7000)]
            encoded = b"".join(chunk(piece) for piece in pieces) + b"0\r\n\r\n"
            writer.write(answer(encoded, Transfer_Encoding="chunked"))
        else:
            writer.write(answer(body))
        await writer.drain()
        return True

    async with (
        scripted(big) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
    ):
        first, second = await http.get("/a"), await http.get("/b")
    assert first.content == body and second.json()["result"] == "pending"
    assert server.connections == 1


async def test_a_server_closing_mid_body_is_an_error_not_a_short_answer(kind: str) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(answer(b'{"result": "pending"}')[:-8])  # Content-Length says more
        await writer.drain()
        return False

    async with (
        scripted(cut) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
    ):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await http.get("/x")


async def test_a_garbled_answer_is_a_protocol_error(kind: str) -> None:
    async def garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 ???\r\n\r\n")
        await writer.drain()
        return False

    async with (
        scripted(garbled) as server,
        httpx.AsyncClient(base_url=server.url, transport=make_transport(kind)) as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/x")


def test_a_chunked_event_stream_body_is_decoded_across_reads() -> None:
    body = _ChunkedBody()
    stream = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]  # split anywhere
    decoded = b"".join(body.feed(piece) for piece in pieces)
    assert decoded == b"hello world" and body.ended
    with pytest.raises(ValueError):
        _ChunkedBody().feed(b"zz\r\nnot hex\r\n")
