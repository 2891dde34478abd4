"""Running the app under uvicorn so that a graceful stop is quiet.

uvicorn's shutdown waits up to ``timeout_graceful_shutdown`` for running requests, then
cancels them and logs an ERROR; the lifespan's shutdown, where the app could release its
held long-polls, only runs after that. So a SIGTERM with long-polls held took the whole
timeout, logged an error, and each client saw a dropped connection. Here the holds are
released as soon as the shutdown begins: each held request answers with its job's state
at that moment, and the server stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable
from types import FrameType

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


def release_on_exit_signals(release: Callable[[], None]) -> None:
    """The same early release where uvicorn builds the server itself (``--workers``,
    ``--reload``): its SIGINT/SIGTERM handlers are wrapped so that ``release`` runs on the
    event loop as the shutdown begins. Call from the app factory, which uvicorn runs on
    the loop after installing its handlers."""
    loop = asyncio.get_running_loop()
    for exit_signal in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(exit_signal)
        if not callable(previous):
            continue

        def on_exit(
            signum: int,
            frame: FrameType | None,
            previous: Callable[[int, FrameType | None], object] = previous,
        ) -> None:
            loop.call_soon_threadsafe(release)
            previous(signum, frame)

        signal.signal(exit_signal, on_exit)
