"""``VideoSimClient``: the one object callers hold; it wires the parts together.

- ``channel``: one pooled ``httpx.AsyncClient`` behind admission (lanes, 429 pause,
  rate cap, in-flight cap) and one circuit breaker;
- ``answers``: each response parsed and classified once;
- ``starts``: ``start`` / ``start_many`` with deadlines and idempotency keys;
- ``watching``: the watch loop, timed by the pure ``planner``;
- ``push_hub``, ``push_watch``: watches that wait for a pushed state (event stream,
  batch status, webhooks) instead of polling.

Nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from api_profiles import DEFAULT_PROFILE, Profile, load_profile
from client_core.admission import Lane
from client_core.answers import (
    HealthCheck,
    JobStatus,
    describe_transport_error,
    detail,
    json_object,
)
from client_core.capabilities import Capabilities, CapabilityCache
from client_core.channel import Channel, ClientStats
from client_core.clock import Clock, SystemClock
from client_core.errors import MalformedAnswer, RequestRejected, ServerUnreachable
from client_core.event_stream import DEFAULT_STREAM_READ_TIMEOUT_S, StreamSettings
from client_core.events import PollEvent, Strategy, WatchResult
from client_core.health_gate import DEFAULT_PROBE_POLICY, HealthGate
from client_core.planner import DEFAULT_TIMING, PollTiming
from client_core.policy import BackoffPolicy
from client_core.profile_protocol import ProfileProtocol
from client_core.protocol import (
    CLIENT_ID_HEADER,
    DEFAULT_SERVER_URL,
    check_url,
    job_record_path,
)
from client_core.push_hub import PushHub
from client_core.push_watch import DEFAULT_SAFETY_S, PUSH_STRATEGIES, watch_pushed
from client_core.pushed import PushWait, Route
from client_core.starts import (
    DEFAULT_START_DEADLINE_S,
    START_RETRY_POLICY,
    Starter,
    StartResult,
    StartSpec,
)
from client_core.watching import fetch_status, watch_job
from client_core.webhooks import WebhookReceiver

DEFAULT_POLICY = BackoffPolicy()
# Every server-advised pause (Retry-After, long-poll hold) is capped at this.
DEFAULT_MAX_SERVER_PAUSE_S = 60.0
# A watch whose policy has no deadline stops after this long: the server's longest
# job (1 h by default) plus a minute. Nothing the server says can hold a watch longer.
DEFAULT_WATCH_DEADLINE_S = 3660.0
DEFAULT_READ_TIMEOUT_S = 5.0  # a server that accepts and never answers is noticed this fast
MAX_REMEMBERED_POLICIES = 256


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a client reaches its server, as settings and processes hand it around (the
    dashboard's engine gets it over a pipe): a typed struct, turned into a client by
    :meth:`VideoSimClient.with_options`. The defaults are the client's own."""

    api_key: str | None = None
    client_id: str | None = None  # None: a random one per client
    connect_timeout_s: float = 2.0
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    max_in_flight: int = 64
    max_rps: float | None = None
    max_server_pause_s: float = DEFAULT_MAX_SERVER_PAUSE_S
    # The job API spoken: a built-in profile's name or a profile file's path (a string,
    # so the options cross a process pipe; the client loads it).
    profile: str = DEFAULT_PROFILE


class VideoSimClient:
    """Async client for the videosim API. Use ``async with``; share one per process."""

    @classmethod
    def with_options(
        cls,
        base_url: str,
        options: ClientOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> VideoSimClient:
        """A client from typed options (what settings and the dashboard's engine carry)."""
        return cls(
            base_url,
            api_key=options.api_key,
            client_id=options.client_id,
            connect_timeout_s=options.connect_timeout_s,
            read_timeout_s=options.read_timeout_s,
            max_in_flight=options.max_in_flight,
            max_rps=options.max_rps,
            max_server_pause_s=options.max_server_pause_s,
            transport=transport,
            clock=clock,
            profile=load_profile(options.profile),
        )

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER_URL,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        max_in_flight: int = 64,
        max_rps: float | None = None,
        max_server_pause_s: float = DEFAULT_MAX_SERVER_PAUSE_S,
        default_deadline_s: float = DEFAULT_WATCH_DEADLINE_S,
        start_deadline_s: float = DEFAULT_START_DEADLINE_S,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client_id: str | None = None,
        circuit_threshold: int = 5,
        probe_policy: BackoffPolicy = DEFAULT_PROBE_POLICY,
        timing: PollTiming = DEFAULT_TIMING,
        stream_read_timeout_s: float = DEFAULT_STREAM_READ_TIMEOUT_S,
        push_safety_s: float = DEFAULT_SAFETY_S,
        profile: Profile | None = None,
    ) -> None:
        self.base_url = check_url(base_url)
        positive = {
            "connect_timeout_s": connect_timeout_s,
            "read_timeout_s": read_timeout_s,
            "stream_read_timeout_s": stream_read_timeout_s,
            "push_safety_s": push_safety_s,
            "max_server_pause_s": max_server_pause_s,
            "default_deadline_s": default_deadline_s,
            "start_deadline_s": start_deadline_s,
        }
        for name, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0 (got {value})")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1 (got {max_in_flight})")
        if max_rps is not None and not max_rps > 0:
            raise ValueError(f"max_rps must be > 0 or None for no limit (got {max_rps})")
        headers = {"Accept": "application/json"}
        self.client_id = client_id or f"videosim-{secrets.token_hex(8)}"
        # A profile that is not videosim's own: its start, status and auth (see
        # client_core.profile_protocol); videosim's push routes do not exist there.
        protocol = None if profile is None or profile.native else ProfileProtocol(profile)
        if protocol is not None:
            headers.update(protocol.auth_headers())
        else:
            if api_key:
                headers["X-Api-Key"] = api_key
            # It groups this client's jobs for its event stream (GET /events?all=true).
            headers[CLIENT_ID_HEADER] = self.client_id
        self.profile = profile
        self._channel = Channel(
            self.base_url,
            headers=headers,
            clock=clock or SystemClock(),
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_in_flight=max_in_flight,
            max_rps=max_rps,
            max_server_pause_s=max_server_pause_s,
            circuit_threshold=circuit_threshold,
            probe_policy=probe_policy,
            transport=transport,
            protocol=protocol,
        )
        self._capabilities = CapabilityCache(self._channel)
        stream_settings = StreamSettings(
            self.base_url,
            headers,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=stream_read_timeout_s,
            max_pause_s=max_server_pause_s,
        )
        self._hub = PushHub(self._channel, self._capabilities, stream_settings)
        self._starter = Starter(
            self._channel, default_deadline_s=start_deadline_s, on_started=self._hub.note_started
        )
        self.push_safety_s = push_safety_s
        self.connect_timeout_s = connect_timeout_s
        self.max_in_flight = max_in_flight
        self.max_rps = max_rps
        self.max_server_pause_s = max_server_pause_s
        self.default_deadline_s = default_deadline_s
        self.timing = timing  # the planner's margins around eta_s and Retry-After
        self._deadline_policies: dict[BackoffPolicy, BackoffPolicy] = {}

    @property
    def profile_name(self) -> str:
        """The job API spoken (its profile's name)."""
        return self.profile.name if self.profile is not None else "videosim"

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> VideoSimClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._hub.aclose()
        await self._channel.aclose()

    @property
    def clock(self) -> Clock:
        """The clock the client's times (e.g. :class:`PushWait`'s) are read on."""
        return self._channel.clock

    @property
    def stats(self) -> ClientStats:
        return self._channel.stats

    @property
    def health_gate(self) -> HealthGate:
        """The shared circuit breaker (one per client, whatever the lane)."""
        return self._channel.breaker

    @property
    def circuit_open(self) -> bool:
        """True while the shared circuit breaker holds every watcher back."""
        return self._channel.breaker.is_open

    @property
    def long_poll_max_s(self) -> float | None:
        """The server's advertised long-poll cap (capped), as last seen; None = not offered."""
        return self._channel.long_poll_max_s

    @property
    def batch_start_offered(self) -> bool | None:
        """Whether ``POST /start/batch`` exists; None until a ``start_many`` found out."""
        return self._starter.batch_offered

    @property
    def push(self) -> PushHub:
        """The event stream, the batch loop and the push watches waiting on them."""
        return self._hub

    async def capabilities(self) -> Capabilities:
        """What the server offers (``GET /capabilities``, asked once; an older server: none)."""
        return await self._capabilities.get()

    def use_webhooks(self, receiver: WebhookReceiver) -> None:
        """Starts from now on carry the receiver's URL and secret; its callbacks end watches.

        ``auto`` watches of those jobs then wait for the callback (no requests), with the
        batch loop as the safety net ``push_safety_s`` after the job's earliest end.
        """
        self._starter.extra_fields = {
            "callback_url": receiver.url,
            "callback_secret": receiver.secret,
        }
        self._hub.webhooks_on = True
        receiver.add_listener(self._hub.deliver)

    def queued(self, lane: Lane) -> int:
        """Requests waiting for admission in ``lane`` (for dashboards and tests)."""
        return self._channel.admission.queued(lane)

    # -- one-shot calls (interactive lane) ----------------------------------------------

    async def start(
        self,
        duration_s: float | None = None,
        outcome: str | None = None,
        *,
        deadline_s: float | None = None,
        retry_policy: BackoffPolicy = START_RETRY_POLICY,
    ) -> str:
        """``POST /start``; returns the job id.

        Transient failures are retried with ``retry_policy``'s delays until
        ``deadline_s`` (default: the client's ``start_deadline_s``). Raises
        ``ServerUnreachable``, ``RequestRejected`` or ``MalformedAnswer``.
        """
        spec = StartSpec(duration_s, outcome)
        return await self._starter.start(spec, deadline_s=deadline_s, retry_policy=retry_policy)

    async def start_many(
        self, specs: Iterable[StartSpec], *, deadline_s: float | None = None
    ) -> list[StartResult]:
        """Start every spec, in batches when the server offers them; results in order.

        Never raises for a job that could not start: its ``StartResult.error`` says why.
        """
        return await self._starter.start_many(specs, deadline_s=deadline_s)

    async def status(self, job_id: str, wait_s: float | None = None) -> JobStatus:
        """One ``GET /status/{id}`` (no retries); raises ``ServerUnreachable`` if no answer."""
        try:
            return await fetch_status(
                self._channel,
                job_id,
                self._channel.status_path(job_id),
                wait_s,
                lane=Lane.INTERACTIVE,
            )
        except httpx.RequestError as exc:
            raise ServerUnreachable(self._unreachable_message(exc)) from None

    async def job_record(self, job_id: str) -> dict[str, Any]:
        """The server's own record of a job (``GET /jobs/{id}``)."""
        try:
            response = await self._channel.send(
                "GET", job_record_path(job_id), lane=Lane.INTERACTIVE
            )
        except httpx.RequestError as exc:
            raise ServerUnreachable(self._unreachable_message(exc)) from None
        if response.status_code != 200:
            raise RequestRejected(
                f"cannot read job {job_id}: {detail(response)}", http_status=response.status_code
            )
        try:
            return json_object(response)
        except MalformedAnswer as exc:
            raise MalformedAnswer(f"cannot read job {job_id}: {exc}", http_status=200) from None

    def push_wait(self, job_id: str) -> PushWait | None:
        """How a watch of ``job_id`` waits for a pushed end right now (the event stream,
        the batch loop, a webhook), or None while it polls or nobody watches it."""
        route = self._hub.route_of(job_id)
        if route is None:
            return None
        stream = self._hub.stream
        if route is Route.STREAM and stream is not None:
            return PushWait(route, stream.connected_since, stream.last_heard_at)
        return PushWait(route)

    async def health(self) -> HealthCheck:
        """``GET /healthz`` with the connect timeout; never raises."""
        return await self._channel.health()

    # -- watching (background lane) --------------------------------------------------------

    def watch(
        self,
        job_id: str,
        policy: BackoffPolicy = DEFAULT_POLICY,
        strategy: Strategy | str = Strategy.AUTO,
        *,
        cancel: asyncio.Event | None = None,
        first_poll_after_s: float | None = None,
    ) -> AsyncGenerator[PollEvent, None]:
        """Poll one job until it ends; one event per poll, the last with ``outcome`` set.

        A policy without ``deadline_s`` gets the client's ``default_deadline_s``.
        ``first_poll_after_s`` (e.g. ``StartResult.duration_s``) delays the first poll
        until the job can have ended.
        Setting ``cancel`` ends the watch at once with a final CANCELLED event.
        Close the generator (``contextlib.aclosing``) if you stop iterating early.
        """
        if policy.deadline_s is None:
            policy = self._with_default_deadline(policy)
        strategy = Strategy(strategy)
        if strategy in (Strategy.AUTO, *PUSH_STRATEGIES):
            return watch_pushed(
                self._channel,
                self._hub,
                self._capabilities,
                job_id,
                policy,
                strategy,
                cancel=cancel,
                timing=self.timing,
                first_poll_after_s=first_poll_after_s,
                safety_s=self.push_safety_s,
            )
        return watch_job(
            self._channel,
            job_id,
            policy,
            strategy,
            cancel=cancel,
            timing=self.timing,
            first_poll_after_s=first_poll_after_s,
        )

    def _with_default_deadline(self, policy: BackoffPolicy) -> BackoffPolicy:
        """``policy`` with the client's deadline; made once per policy (watches share them)."""
        found = self._deadline_policies.get(policy)
        if found is None:
            found = policy.replace(deadline_s=self.default_deadline_s)
            if len(self._deadline_policies) < MAX_REMEMBERED_POLICIES:
                self._deadline_policies[policy] = found
        return found

    async def wait(
        self,
        job_id: str,
        policy: BackoffPolicy = DEFAULT_POLICY,
        strategy: Strategy | str = Strategy.AUTO,
        *,
        cancel: asyncio.Event | None = None,
        on_event: Callable[[PollEvent], None] | None = None,
        first_poll_after_s: float | None = None,
    ) -> WatchResult:
        """Watch to the end and summarise; ``on_event`` sees every event on the way."""
        last: PollEvent | None = None
        last_error: str | None = None
        requests = 0
        watch = self.watch(
            job_id, policy, strategy, cancel=cancel, first_poll_after_s=first_poll_after_s
        )
        async with contextlib.aclosing(watch) as events:
            async for event in events:
                if on_event is not None:
                    on_event(event)
                last = event
                requests += event.sent
                last_error = event.error or last_error
        if last is None or last.outcome is None:  # pragma: no cover - a watch always ends so
            raise AssertionError("a watch ended without an outcome")
        return WatchResult(
            job_id=job_id,
            outcome=last.outcome,
            attempts=last.attempt,
            elapsed_s=last.elapsed_s,
            last_error=last_error,
            requests=requests,
        )

    def _unreachable_message(self, exc: httpx.RequestError) -> str:
        return f"server at {self.base_url} is unreachable: {describe_transport_error(exc)}"


def wait_for(
    base_url: str,
    job_id: str,
    policy: BackoffPolicy = DEFAULT_POLICY,
    strategy: Strategy | str = Strategy.AUTO,
    **client_options: Any,
) -> WatchResult:
    """Blocking convenience for scripts: watch one job to the end (runs its own loop)."""

    async def run() -> WatchResult:
        async with VideoSimClient(base_url, **client_options) as client:
            return await client.wait(job_id, policy, strategy)

    return asyncio.run(run())
