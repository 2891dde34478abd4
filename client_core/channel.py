"""The one pooled HTTP client behind every request: admission in front, breaker behind.

``Channel.send`` is the only place a request leaves ``client_core``. It waits for
admission (lanes, 429 pause, rate cap, in-flight cap), sends with explicit
timeouts, and tells the circuit breaker whether an answer came. Requests marked
``gated`` (watch polls) are refused locally with ``CircuitOpen`` while the
breaker is open; the breaker's single probe is then the only traffic.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from client_core.admission import Admission, Lane
from client_core.answers import HealthCheck, describe_transport_error, detail, read_health
from client_core.clock import Clock
from client_core.health_gate import HealthGate
from client_core.lean_transport import LeanTransport
from client_core.policy import BackoffPolicy
from client_core.profile_protocol import HEALTH_PROBE_ID, ProfileProtocol
from client_core.protocol import SPECIAL_JOB_ID, status_path

SPARE_CONNECTIONS = 4  # for the breaker's probe and health() calls, which skip the cap
# Idle connections httpx's own pool keeps open, when a caller passes its own httpx
# transport. httpcore checks every idle connection whenever a request starts or ends, so
# keeping all alive cost more CPU than reconnecting: 1.9 ms/request with all 68 kept,
# 1.2 ms with 16, at 3,000 jobs. The default LeanTransport keeps all (a LIFO list).
KEEPALIVE = 16


class CircuitOpen(Exception):
    """Internal: a gated request not sent because the breaker is open."""


@dataclass(slots=True)
class ClientStats:
    """Running counters for one client (tests, benchmarks, the dashboard)."""

    requests_sent: int = 0
    transport_failures: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    long_polls_sent: int = 0  # long-poll requests sent (each may be held by the server)
    batch_requests: int = 0  # POST /status/batch requests sent (each names many jobs)
    stream_connects: int = 0  # GET /events connections opened or tried (in requests_sent too)
    stream_resumes: int = 0  # ...of which reconnects carrying Last-Event-ID
    pushed_states: int = 0  # final states pushed: SSE events, batch answers, webhooks
    # answers 400 and above, by status (429 and 503 mean "come back later"); any route
    refusals: Counter[int] = field(default_factory=Counter)
    start_pauses_s: float = 0.0  # start retries that waited as long as a Retry-After said


class Channel:
    """One ``httpx.AsyncClient``, its admission queue, its breaker and its counters."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        clock: Clock,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_in_flight: int,
        max_rps: float | None,
        max_server_pause_s: float,
        circuit_threshold: int,
        probe_policy: BackoffPolicy,
        transport: httpx.AsyncBaseTransport | None,
        protocol: ProfileProtocol | None = None,
    ) -> None:
        self.base_url = base_url
        self.protocol = protocol  # None: videosim's own protocol
        self.clock = clock
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_server_pause_s = max_server_pause_s
        connections = max_in_flight + SPARE_CONNECTIONS
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=None),
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=min(KEEPALIVE, connections),
                keepalive_expiry=30.0,
            ),
            transport=transport or LeanTransport(max_keepalive=connections),
        )
        self.custom_transport = transport  # the caller's own transport, if any
        self.headers = dict(headers)
        self.admission = Admission(clock, max_in_flight=max_in_flight, max_rps=max_rps)
        self.breaker = HealthGate(
            self._probe, clock, threshold=circuit_threshold, probe_policy=probe_policy
        )
        self.stats = ClientStats()
        self.long_poll_max_s: float | None = None  # as last advertised by the server
        self.health_route: bool | None = None  # False: an original-API server (no /healthz)

    async def aclose(self) -> None:
        await self.breaker.aclose()
        await self.admission.aclose()
        await self.http.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        lane: Lane,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        admitted: bool = True,
        gated: bool = False,
    ) -> httpx.Response:
        """Send one request through admission; feeds the breaker either way.

        ``timeout_s`` replaces the read timeout for this request (a long-poll hold
        adds its hold to it). Raises ``httpx.RequestError`` when no answer came.
        """
        breaker = self.breaker
        if gated and breaker.is_open:
            raise CircuitOpen
        if admitted:
            await self.admission.acquire(lane)
            if gated and breaker.is_open:  # it opened while we queued
                self.admission.release()
                raise CircuitOpen
        timeout: httpx.Timeout | None = None
        if timeout_s is not None:
            timeout = httpx.Timeout(timeout_s, connect=self.connect_timeout_s, pool=None)
        stats = self.stats
        stats.requests_sent += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            if timeout is None:
                response = await self.http.request(
                    method, path, params=params, json=json, headers=headers
                )
            else:
                response = await self.http.request(
                    method, path, params=params, json=json, headers=headers, timeout=timeout
                )
        except httpx.TransportError as exc:
            stats.transport_failures += 1
            breaker.record_failure(describe_transport_error(exc))
            raise
        finally:
            stats.in_flight -= 1
            if admitted:
                self.admission.release()
        breaker.record_success()
        if response.status_code >= 400:
            stats.refusals[response.status_code] += 1
        return response

    def status_path(self, job_id: str) -> str:
        """Where ``job_id``'s status is asked (a profile's path, or a URL it was given)."""
        if self.protocol is not None:
            return self.protocol.status_target(job_id)
        return status_path(job_id)

    async def health(self) -> HealthCheck:
        """``GET /healthz`` within the connect timeout, never raising.

        An API spoken through a profile has no health route: the status of a job no API
        has is asked, and any answer but a 5xx means "up".

        A server of the original API has no ``/healthz``: a 404 there while
        ``GET /status/special-pending-job`` answers means "up, no health route". That is
        remembered: later checks ask the special job alone, until it stops answering 200
        (another server may be there now) and ``/healthz`` is asked again.
        """
        began = time.perf_counter()
        if self.protocol is not None:
            return await self._profile_health(self.protocol, began)
        try:
            if self.health_route is False:
                if (await self._special_status()).status_code == 200:
                    return HealthCheck(
                        ok=True, latency_s=time.perf_counter() - began, health_route=False
                    )
                self.health_route = None
            response = await self._get_quickly("/healthz")
            if response.status_code == 404 and (await self._special_status()).status_code == 200:
                self.health_route = False
                return HealthCheck(
                    ok=True, latency_s=time.perf_counter() - began, health_route=False
                )
        except httpx.RequestError as exc:
            self.health_route = None
            return HealthCheck(ok=False, error=describe_transport_error(exc))
        check = read_health(response, time.perf_counter() - began, self.max_server_pause_s)
        if check.ok:
            self.health_route = True
            self.long_poll_max_s = check.long_poll_max_s
        return check

    async def _profile_health(self, protocol: ProfileProtocol, began: float) -> HealthCheck:
        self.health_route = False
        try:
            response = await self._get_quickly(protocol.status_target(HEALTH_PROBE_ID))
        except httpx.RequestError as exc:
            return HealthCheck(ok=False, error=describe_transport_error(exc), health_route=False)
        latency = time.perf_counter() - began
        if response.status_code >= 500:
            error = f"HTTP {response.status_code}: {detail(response)}"
            return HealthCheck(ok=False, latency_s=latency, error=error, health_route=False)
        if response.status_code in (401, 403):
            return HealthCheck(ok=False, latency_s=latency, error=protocol.missing_key(),
                               health_route=False, key_refused=True)  # fmt: skip
        return HealthCheck(ok=True, latency_s=latency, health_route=False)

    async def _special_status(self) -> httpx.Response:
        return await self._get_quickly(status_path(SPECIAL_JOB_ID))

    async def _get_quickly(self, path: str) -> httpx.Response:
        """A GET on the interactive lane within the connect timeout, not admitted."""
        return await self.send(
            "GET", path, lane=Lane.INTERACTIVE, admitted=False, timeout_s=self.connect_timeout_s
        )

    async def _probe(self) -> bool:
        return (await self.health()).ok
