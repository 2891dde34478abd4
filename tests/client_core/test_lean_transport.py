"""The lean HTTP/1.1 transport: keep-alive, a connection the server dropped, errors as httpx's."""

from __future__ import annotations

import httpx
import pytest

from client_core.lean_transport import LeanTransport
from tests.support.live_server import LiveServer, free_port
from tests.support.raw_http import RawHttpServer, http_answer


async def test_connections_are_kept_alive_and_reused(live_server: LiveServer) -> None:
    transport = LeanTransport(max_keepalive=4)
    async with httpx.AsyncClient(base_url=live_server.url, transport=transport) as http:
        answers = [await http.get("/status/special-pending-job") for _ in range(5)]
        started = await http.post("/start", json={"duration_s": 1.0})
        kept = sum(len(idle) for idle in transport._idle.values())
    assert [a.json()["result"] for a in answers] == ["pending"] * 5
    assert started.status_code == 200 and started.json()["duration_s"] == 1.0
    assert answers[0].headers["content-type"] == "application/json"
    assert kept == 1  # one connection did it all


async def test_a_kept_alive_connection_the_server_dropped_is_replaced() -> None:
    pending = http_answer("200 OK", b'{"result": "pending"}')
    async with (
        RawHttpServer(pending, close_after_answer=True) as server,
        httpx.AsyncClient(base_url=server.url, transport=LeanTransport(max_keepalive=4)) as http,
    ):
        answers = [await http.get("/status/job") for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert server.connections == 3


async def test_failures_are_httpx_errors() -> None:
    transport = LeanTransport(max_keepalive=4)
    async with httpx.AsyncClient(transport=transport, timeout=0.3) as http:
        with pytest.raises(httpx.ConnectError, match="connection refused"):
            await http.get(f"http://127.0.0.1:{free_port()}/healthz")
        async with RawHttpServer(answer=None) as silent:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{silent.url}/healthz")
        async with RawHttpServer(b"HTTP/1.1 ???\r\n\r\n") as garbled:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(f"{garbled.url}/healthz")


def test_a_chunked_event_stream_body_is_decoded_across_reads() -> None:
    from client_core.lean_transport import _ChunkedBody

    body = _ChunkedBody()
    stream = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]  # split anywhere
    decoded = b"".join(body.feed(piece) for piece in pieces)
    assert decoded == b"hello world" and body.ended
    with pytest.raises(ValueError):
        _ChunkedBody().feed(b"zz\r\nnot hex\r\n")
