"""Who a request is: whether it carries the server's API key, and whom it counts against.

Both the FastAPI routes and the hand-written GET /status handler ask here, so the key
check and the caller's identity are one implementation.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.types import Scope

MISSING_OR_INVALID_KEY = "Missing or invalid API key"


def api_key_accepted(expected: str | None, given: str | None) -> bool:
    """True when the server has no key, or ``given`` is it (compared in constant time)."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def identity(server_key: str | None, api_key: str | None, scope: Scope) -> str:
    """Who a request counts against: the API key's holder, else the peer address.

    Never a header the client makes up (such as X-Client-Id or, unless a trusted proxy
    sent it, X-Forwarded-For): rotating it would dodge the rate limit, and claiming another
    client's value would spend their allowance or replay their Idempotency-Keys.
    """
    if server_key is not None and api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]
    client = scope.get("client")
    return "peer:" + (client[0] if client else "unknown")


def caller_identity(request: Request) -> str:
    """:func:`identity` of a request the app routes."""
    server_key: str | None = request.app.state.videosim.settings.api_key
    return identity(server_key, request.headers.get("x-api-key"), request.scope)
