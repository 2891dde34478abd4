"""What this server offers beyond the original polling API, so a client can pick.

Three places say it: ``GET /capabilities``, the ``capabilities`` field of ``/healthz``,
and the ``X-Capabilities`` header of every ``GET /status`` answer (computed once per
app: the hot path only copies a string). Under ``--plain`` none of them exists.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.models import Capabilities
from server.settings import ServerSettings


def capabilities_of(settings: ServerSettings) -> Capabilities | None:
    """The offer, or None under --plain (the original API has nothing to advertise)."""
    if settings.plain:
        return None
    long_poll = settings.long_poll_max_s > 0
    return Capabilities(
        long_poll=long_poll,
        long_poll_max_s=settings.long_poll_max_s if long_poll else None,
        hints=settings.hints,
        batch_start=True,
        max_batch=settings.max_batch,
        batch_status=True,
        max_batch_status=settings.max_batch_status,
        events=True,
        webhooks=True,
    )


def capability_header(capabilities: Capabilities | None) -> str | None:
    """``X-Capabilities``: the features that are on, as a comma+space list."""
    if capabilities is None:
        return None
    names = [
        ("long-poll", capabilities.long_poll),
        ("hints", capabilities.hints),
        ("batch-status", capabilities.batch_status),
        ("events", capabilities.events),
        ("webhooks", capabilities.webhooks),
    ]
    return ", ".join(name for name, on in names if on)


capabilities_router = APIRouter()


@capabilities_router.get(
    "/capabilities", summary="What the server offers; never needs the API key, never faulted"
)
async def capabilities(request: Request) -> Capabilities:
    offer: Capabilities = request.app.state.videosim.capabilities
    return offer
