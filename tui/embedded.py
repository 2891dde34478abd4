"""The embedded default: a ``python -m server`` child process the dashboard starts and stops.

When no server URL is given and nothing answers on the default port, the dashboard runs its
own server on a free loopback port (:class:`client_core.local_server.ServerProcess`). The
child must never outlive the dashboard, so every exit path stops it: the app's unmount, the
CLI's ``finally``, an ``atexit`` hook, and, on Linux, a parent-death signal that reaches the
child even if the dashboard is killed outright. The dashboard only ever talks to it over
HTTP through ``client_core``.
"""

from __future__ import annotations

from collections.abc import Sequence

from client_core import VideoSimClient
from client_core.local_server import ServerProcess, ServerStartError

EmbeddedServerError = ServerStartError


class EmbeddedServer(ServerProcess):
    """The dashboard's own server. Spawn it from the thread that lives as long as the app
    (the event loop's): Linux sends the parent-death signal when that *thread* ends."""

    def __init__(self, *, args: Sequence[str] = (), port: int | None = None) -> None:
        super().__init__(args, port=port, die_with_parent=True)


async def server_answers(url: str, *, timeout_s: float = 1.0) -> bool:
    """True when a videosim server answers GET /healthz at ``url`` (no API key needed)."""
    try:
        async with VideoSimClient(
            url, connect_timeout_s=timeout_s, read_timeout_s=timeout_s
        ) as client:
            return bool((await client.health()).ok)
    except Exception:  # a bad URL or anything else: nothing usable answers there
        return False
