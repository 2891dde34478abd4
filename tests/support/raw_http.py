"""A real TCP server that misbehaves at the HTTP level: canned answers, or none at all.

For what the videosim server will not do on purpose: accept a connection and never
answer, or send a ``Retry-After`` of a billion seconds. Runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class RawHttpServer:
    """``answer`` None: read the request and say nothing, forever.

    Requests to a path in ``not_found`` get a 404 instead (e.g. ``/start/batch``,
    to play a server of the original API).
    """

    answer: bytes | None = None
    not_found: tuple[str, ...] = ("/start/batch", "/capabilities")
    close_after_answer: bool = False  # hang up after each answer, without saying so
    connections: int = 0
    paths: list[str] = field(default_factory=list)  # every request's path, in order
    _server: asyncio.Server | None = field(default=None, repr=False)
    _held: list[asyncio.StreamWriter] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> RawHttpServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._held:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._held.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                self.paths.append(path)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if self.answer is None:
                    await asyncio.Event().wait()  # accepted, read, never answered
                if path in self.not_found:
                    writer.write(http_answer("404 Not Found", b'{"detail": "Not Found"}'))
                else:
                    writer.write(self.answer)
                await writer.drain()
                if self.close_after_answer:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass


def http_answer(status: str, body: bytes, **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]  # fmt: skip
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
