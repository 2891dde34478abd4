"""In-process fake servers for ``httpx.MockTransport``: what the client sees of older servers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]
PUSH_PATHS = ("/capabilities", "/events", "/status/batch", "/subscriptions")


def older_server(handler: Handler) -> httpx.MockTransport:
    """``handler`` as a server without the push routes: they answer 404, as on ``--plain``.

    The ``auto`` strategy asks ``GET /capabilities`` once per client; a fake that answers
    every path as a status would otherwise be read as a server that offers nothing, after
    one more request than a test of the polling strategies expects.
    """

    async def without_push(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(PUSH_PATHS):
            return httpx.Response(404, json={"detail": "Not Found"})
        return await handler(request)

    return httpx.MockTransport(without_push)
