"""Running the app under uvicorn so that a graceful stop is quiet.

uvicorn's shutdown waits up to ``timeout_graceful_shutdown`` for running requests, then
cancels them and logs an ERROR; the lifespan's shutdown, where the app could release its
held long-polls, only runs after that. So a SIGTERM with long-polls held took the whole
timeout, logged an error, and each client saw a dropped connection. Here the holds are
released as soon as the shutdown begins: each held request answers with its job's state
at that moment, and the server stops at once.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import uvicorn


class ReleasingServer(uvicorn.Server):
    """uvicorn.Server that calls ``release`` when a shutdown begins."""

    def __init__(self, config: uvicorn.Config, release: Callable[[], None]) -> None:
        super().__init__(config)
        self._release = release

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._release()
        await super().shutdown(sockets)


def serve(config: uvicorn.Config, release: Callable[[], None]) -> bool:
    """Run until stopped, as ``uvicorn.run`` does; False if the server never started."""
    server = ReleasingServer(config, release)
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C forces the quit
        server.run()
    return server.started
