"""What the server offers (``GET /capabilities``), read once per client.

``auto`` picks stream > batch > long-poll > hinted > backoff from this. A server of the
original API, or one started with ``--plain``, answers 404: it offers none of the push
routes, and the per-job polling strategies find out the rest from its status answers,
as they always did.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from client_core.admission import Lane
from client_core.answers import float_or_none, json_object
from client_core.channel import Channel, CircuitOpen
from client_core.errors import MalformedAnswer
from client_core.protocol import CAPABILITIES_PATH

DEFAULT_MAX_BATCH_STATUS = 10_000  # the contract's default, when the server does not say
NOT_OFFERED = frozenset({404, 405})


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The push and batch routes a server offers; all False for an older server."""

    long_poll: bool = False
    long_poll_max_s: float | None = None
    hints: bool = False
    batch_start: bool = False
    batch_status: bool = False
    max_batch_status: int = DEFAULT_MAX_BATCH_STATUS
    events: bool = False
    webhooks: bool = False


OLDER_SERVER = Capabilities()  # no /capabilities: only the original routes can be relied on


def read_capabilities(body: dict[str, object], max_pause_s: float) -> Capabilities:
    """The capabilities object; a missing or odd field counts as "not offered"."""
    long_poll_max = float_or_none(body.get("long_poll_max_s"))
    max_batch = body.get("max_batch_status")
    return Capabilities(
        long_poll=body.get("long_poll") is True,
        long_poll_max_s=min(long_poll_max, max_pause_s) if long_poll_max else None,
        hints=body.get("hints") is True,
        batch_start=body.get("batch_start") is True,
        batch_status=body.get("batch_status") is True,
        max_batch_status=max_batch
        if isinstance(max_batch, int) and not isinstance(max_batch, bool) and max_batch > 0
        else DEFAULT_MAX_BATCH_STATUS,
        events=body.get("events") is True,
        webhooks=body.get("webhooks") is True,
    )


class CapabilityCache:
    """``GET /capabilities`` once per client (one request even when many watches ask)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._known: Capabilities | None = None
        self._asking: asyncio.Future[Capabilities | None] | None = None

    @property
    def known(self) -> Capabilities | None:
        """What the server said, or None before it was asked (or while it cannot be)."""
        return self._known

    async def get(self) -> Capabilities:
        """The server's capabilities; ``OLDER_SERVER`` on a 404 (cached) or no answer (not).

        Watches that ask while a request is out share its answer, so a silent server
        costs them one connect timeout together, not one each.
        """
        if self._known is not None:
            return self._known
        if (protocol := self._channel.protocol) is not None:
            # A profile's API has no /capabilities: the profile says what it offers.
            max_s = protocol.long_poll_max_s
            self._known = Capabilities(long_poll=max_s is not None, long_poll_max_s=max_s)
            return self._known
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._ask())
        asking = self._asking
        try:
            found = await asyncio.shield(asking)
        finally:
            if self._asking is asking and asking.done():
                self._asking = None
        if found is None:
            return OLDER_SERVER  # no answer: poll this time, ask again for the next watch
        self._known = found
        return found

    def forget(self) -> None:
        """Ask again next time (the server behind the URL may have changed)."""
        self._known = None

    async def _ask(self) -> Capabilities | None:
        channel = self._channel
        try:
            response = await channel.send(
                "GET",
                CAPABILITIES_PATH,
                lane=Lane.BACKGROUND,
                timeout_s=channel.connect_timeout_s,  # a quick question, like /healthz
                gated=True,
            )
        except (httpx.RequestError, CircuitOpen):
            return None
        if response.status_code in NOT_OFFERED:
            return OLDER_SERVER
        if response.status_code != 200:
            return None
        try:
            return read_capabilities(json_object(response), channel.max_server_pause_s)
        except MalformedAnswer:
            return OLDER_SERVER
