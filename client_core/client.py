"""The polling client: one pooled HTTP connection set, many watchers.

``VideoSimClient`` owns exactly one ``httpx.AsyncClient``. Every request (from
any number of concurrent watchers) goes through the same admission steps:

1. the shared 429 pause (a ``Retry-After`` from a rate limit holds everyone),
2. the requests-per-second pacer (``max_rps``; ``None`` = unlimited),
3. the in-flight cap (``max_in_flight``, a semaphore; at most half of it may
   be long-poll holds so short polls never starve behind held requests),
4. the shared health gate (circuit breaker): while it is open, polls are
   answered locally and only its single probe talks to the server.

``watch()`` turns one job into a stream of ``PollEvent``s; *when* to poll is
decided by ``planner.plan_next_poll`` (pure, tested on its own), the waiting by
the injected clock. Nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from client_core.clock import Clock, SystemClock
from client_core.events import DelayReason, Outcome, PollEvent, Strategy, WatchResult
from client_core.health_gate import DEFAULT_PROBE_POLICY, HealthGate
from client_core.pacing import PauseGate, TokenBucket
from client_core.planner import DEFAULT_TIMING, AnswerKind, PollAnswer, PollTiming, plan_next_poll
from client_core.policy import BackoffPolicy, Jitter
from client_core.racing import run_unless

DEFAULT_SERVER_URL = "http://127.0.0.1:7999"
DEFAULT_POLICY = BackoffPolicy()
# Starting a job is retried a few times on transient failures, quickly.
START_RETRY_POLICY = BackoffPolicy(
    initial_s=0.2, multiplier=2.0, max_delay_s=2.0, jitter=Jitter.EQUAL, max_attempts=3
)
START_ATTEMPTS_WITHOUT_BUDGET = 5  # when the given retry policy has no budget of its own
FINAL_RESULTS = frozenset({"completed", "error"})
KNOWN_RESULTS = FINAL_RESULTS | {"pending"}
RETRYABLE_HTTP = frozenset({408, 425, 429})  # plus every 5xx
SPARE_CONNECTIONS = 4  # for the health probe and health() calls, which skip the cap
# Idle connections kept open. httpcore scans every pooled connection on each request, so
# keeping all of them alive costs more CPU than the reconnects it saves on loopback.
KEEPALIVE_MIN = 16


class CircuitOpen(Exception):
    """Internal: a poll not sent because the health gate is open."""


class ClientError(Exception):
    """A request could not be completed; the message is meant for a user."""

    def __init__(
        self, message: str, *, http_status: int | None = None, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One answer to ``GET /status/{id}``, whatever its HTTP status."""

    job_id: str
    result: str  # "pending" | "completed" | "error"; "" when the answer held no job state
    eta_s: float | None = None
    progress: float | None = None
    http_status: int = 200
    retry_after_s: float | None = None
    long_poll_max_s: float | None = None  # from X-Long-Poll-Max; None = not offered
    detail: str | None = None  # the server's message on a non-200 answer

    @property
    def final(self) -> bool:
        return self.result in FINAL_RESULTS


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """``GET /healthz``, never raising: ``ok`` False carries the reason in ``error``."""

    ok: bool
    latency_s: float | None = None
    error: str | None = None
    long_poll_max_s: float | None = None
    hints: bool | None = None
    jobs: int | None = None


@dataclass(slots=True)
class ClientStats:
    """Running counters for one client (tests, benchmarks, the dashboard)."""

    requests_sent: int = 0
    transport_failures: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    long_polls_held: int = 0


class VideoSimClient:
    """Async client for the videosim API. Use ``async with``; share one per process."""

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER_URL,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        max_in_flight: int = 64,
        max_rps: float | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client_id: str | None = None,
        circuit_threshold: int = 5,
        probe_policy: BackoffPolicy = DEFAULT_PROBE_POLICY,
        timing: PollTiming = DEFAULT_TIMING,
    ) -> None:
        self.base_url = _check_url(base_url)
        timeouts = {"connect_timeout_s": connect_timeout_s, "read_timeout_s": read_timeout_s}
        for name, value in timeouts.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0 (got {value})")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1 (got {max_in_flight})")
        if max_rps is not None and not max_rps > 0:
            raise ValueError(f"max_rps must be > 0 or None for no limit (got {max_rps})")

        self._clock: Clock = clock or SystemClock()
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-Api-Key"] = api_key
        if client_id:
            headers["X-Client-Id"] = client_id
        connections = max_in_flight + SPARE_CONNECTIONS
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=None),
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=max(KEEPALIVE_MIN, max_in_flight // 4),
                keepalive_expiry=30.0,
            ),
            transport=transport,
        )
        self.max_in_flight = max_in_flight
        self.max_rps = max_rps
        self.timing = timing  # the planner's margins around eta_s and Retry-After
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._max_holds = max(1, max_in_flight // 2)
        self._holds = 0
        self._rate = TokenBucket(max_rps, self._clock) if max_rps else None
        self._pause = PauseGate(self._clock)
        self.health_gate = HealthGate(
            self._probe, self._clock, threshold=circuit_threshold, probe_policy=probe_policy
        )
        self._long_poll_max_s: float | None = None
        self.stats = ClientStats()

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> VideoSimClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.health_gate.aclose()
        await self._http.aclose()

    @property
    def circuit_open(self) -> bool:
        """True while the shared health gate holds every watcher back."""
        return self.health_gate.is_open

    @property
    def long_poll_max_s(self) -> float | None:
        """The server's advertised long-poll cap, as last seen; None = not offered."""
        return self._long_poll_max_s

    # -- one-shot calls -------------------------------------------------------------

    async def start(
        self,
        duration_s: float | None = None,
        outcome: str | None = None,
        *,
        retry_policy: BackoffPolicy = START_RETRY_POLICY,
    ) -> str:
        """``POST /start``; returns the job id. Transient failures are retried."""
        body: dict[str, Any] = {}
        if duration_s is not None:
            body["duration_s"] = duration_s
        if outcome is not None:
            body["outcome"] = outcome
        attempts = retry_policy.max_attempts or START_ATTEMPTS_WITHOUT_BUDGET
        rng = retry_policy.rng()
        started = self._clock.now()
        previous: float | None = None
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = await self._send("POST", "/start", json=body or None)
            except httpx.RequestError as exc:
                failure = ClientError(self._unreachable_message(exc), unreachable=True)
            else:
                if response.status_code == 200:
                    job_id = _json_field(response, "job_id")
                    if isinstance(job_id, str) and job_id:
                        return job_id
                    failure = ClientError("cannot start a job: the answer had no job_id")
                elif _retryable(response.status_code):
                    retry_after = _retry_after_s(response)
                    failure = ClientError(
                        f"cannot start a job: HTTP {response.status_code}: {_detail(response)}",
                        http_status=response.status_code,
                    )
                else:
                    raise ClientError(
                        f"cannot start a job: {_detail(response)}", http_status=response.status_code
                    )
            previous = retry_policy.delay(attempt, previous, rng)
            wait = max(previous, retry_after or 0.0)
            time_left = retry_policy.time_left(self._clock.now() - started + wait)
            if attempt == attempts or (time_left is not None and time_left < 0):
                raise failure
            await self._clock.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def status(self, job_id: str, wait_s: float | None = None) -> JobStatus:
        """One ``GET /status/{id}`` (no retries). Raises ClientError if no answer came."""
        try:
            return await self._get_status(job_id, wait_s)
        except httpx.RequestError as exc:
            raise ClientError(self._unreachable_message(exc), unreachable=True) from exc
        except ValueError as exc:
            raise ClientError(f"unexpected answer from the server: {exc}") from exc

    async def job_record(self, job_id: str) -> dict[str, Any]:
        """The server's own record of a job (``GET /jobs/{id}``)."""
        try:
            response = await self._send("GET", f"/jobs/{_path_id(job_id)}")
        except httpx.RequestError as exc:
            raise ClientError(self._unreachable_message(exc), unreachable=True) from exc
        if response.status_code != 200:
            raise ClientError(
                f"cannot read job {job_id}: {_detail(response)}", http_status=response.status_code
            )
        try:
            return _json_object(response)
        except ValueError as exc:
            raise ClientError(f"unexpected answer from the server: {exc}") from None

    async def health(self) -> HealthCheck:
        """``GET /healthz`` with the connect timeout; never raises."""
        began = time.perf_counter()
        try:
            response = await self._send(
                "GET", "/healthz", admitted=False, timeout_s=self._connect_timeout_s
            )
        except httpx.RequestError as exc:
            return HealthCheck(ok=False, error=_describe_transport_error(exc))
        latency = time.perf_counter() - began
        if response.status_code != 200:
            return HealthCheck(
                ok=False,
                latency_s=latency,
                error=f"HTTP {response.status_code}: {_detail(response)}",
            )
        try:
            body = _json_object(response)
        except ValueError as exc:
            return HealthCheck(ok=False, latency_s=latency, error=str(exc))
        long_poll = _float_or_none(body.get("long_poll_max_s"))
        self._long_poll_max_s = long_poll if long_poll and long_poll > 0 else None
        hints = body.get("hints")
        jobs = body.get("jobs")
        return HealthCheck(
            ok=body.get("status") == "ok",
            latency_s=latency,
            long_poll_max_s=self._long_poll_max_s,
            hints=hints if isinstance(hints, bool) else None,
            jobs=jobs if isinstance(jobs, int) else None,
        )

    # -- watching ------------------------------------------------------------------------

    async def watch(
        self,
        job_id: str,
        policy: BackoffPolicy = DEFAULT_POLICY,
        strategy: Strategy | str = Strategy.AUTO,
        *,
        cancel: asyncio.Event | None = None,
    ) -> AsyncIterator[PollEvent]:
        """Poll one job until it ends; one event per poll, the last with ``outcome`` set.

        Setting ``cancel`` ends the watch at once with a final CANCELLED event.
        Cancelling the consuming task just stops it (the CancelledError propagates).
        """
        strategy = Strategy(strategy)
        _path_id(job_id)
        rng = policy.rng()
        started = self._clock.now()
        attempt = 0
        previous_delay: float | None = None
        hold_s: float | None = None
        status = ""
        timed_by = strategy  # the strategy that timed the request in flight
        try:
            while True:
                attempt += 1
                finished, polled = await run_unless(self._poll(job_id, hold_s), cancel)
                if not finished or polled is None:
                    yield self._cancelled_event(job_id, attempt, status, started, timed_by)
                    return
                answer = polled
                if hold_s is not None:
                    hold_s = None
                    self._holds -= 1
                answered_at = self._clock.now()
                status = answer.result
                plan = plan_next_poll(
                    answer,
                    attempt=attempt,
                    elapsed_s=answered_at - started,
                    policy=policy,
                    strategy=strategy,
                    rng=rng,
                    previous_delay_s=previous_delay,
                    long_poll_max_s=self._long_poll_max_s,
                    hold_slot_free=self._holds < self._max_holds,
                    circuit_open=self.health_gate.is_open,
                    timing=self.timing,
                )
                previous_delay = plan.scheduled_s
                if plan.hold_s is not None:
                    hold_s = plan.hold_s
                    self._holds += 1
                yield PollEvent(
                    job_id=job_id,
                    attempt=attempt,
                    status=answer.result,
                    outcome=plan.outcome,
                    next_delay_s=plan.delay_s,
                    reason=plan.reason,
                    elapsed_s=answered_at - started,
                    strategy=plan.strategy if plan.outcome is None else timed_by,
                    http_status=answer.http_status,
                    error=answer.error,
                    eta_s=answer.eta_s,
                    progress=answer.progress,
                    sent=answer.sent,
                )
                if plan.outcome is not None:
                    return
                timed_by = plan.strategy
                wake_at = answered_at + (plan.delay_s or 0.0)
                # While the circuit is open, wake as soon as it closes, not at the schedule.
                circuit_wait = plan.reason is DelayReason.CIRCUIT_OPEN
                wake_early = self.health_gate.closed if circuit_wait else None
                await run_unless(self._sleep_until(wake_at), cancel, wake_early)
                if cancel is not None and cancel.is_set():
                    yield self._cancelled_event(job_id, attempt, status, started, timed_by)
                    return
        finally:
            if hold_s is not None:
                self._holds -= 1

    async def wait(
        self,
        job_id: str,
        policy: BackoffPolicy = DEFAULT_POLICY,
        strategy: Strategy | str = Strategy.AUTO,
        *,
        cancel: asyncio.Event | None = None,
        on_event: Callable[[PollEvent], None] | None = None,
    ) -> WatchResult:
        """Watch to the end and summarise; ``on_event`` sees every event on the way."""
        last: PollEvent | None = None
        last_error: str | None = None
        requests = 0
        watch = self.watch(job_id, policy, strategy, cancel=cancel)
        async with contextlib.aclosing(watch) as events:
            async for event in events:
                if on_event is not None:
                    on_event(event)
                last = event
                requests += int(event.sent)
                last_error = event.error or last_error
        assert last is not None and last.outcome is not None  # a watch always ends with one
        return WatchResult(
            job_id=job_id,
            outcome=last.outcome,
            attempts=last.attempt,
            elapsed_s=last.elapsed_s,
            last_error=last_error,
            requests=requests,
        )

    # -- internals: one poll -----------------------------------------------------------------

    async def _poll(self, job_id: str, hold_s: float | None) -> PollAnswer:
        """One status request, classified; transport failures become answers too."""
        try:
            job = await self._get_status(job_id, hold_s, gated=True)
        except CircuitOpen:
            return PollAnswer(AnswerKind.SHORT_CIRCUIT, error=self.health_gate.short_circuit())
        except httpx.RequestError as exc:
            return PollAnswer(AnswerKind.NO_ANSWER, error=_describe_transport_error(exc))
        except ValueError as exc:
            return PollAnswer(AnswerKind.RETRY, http_status=200, error=f"malformed answer: {exc}")
        code = job.http_status
        if code == 200:
            kind = AnswerKind.FINISHED if job.final else AnswerKind.PENDING
        elif code == 404:
            kind = AnswerKind.NOT_FOUND
        elif _retryable(code):
            kind = AnswerKind.RETRY
        else:
            kind = AnswerKind.REJECTED
        return PollAnswer(
            kind,
            http_status=code,
            result=job.result,
            eta_s=job.eta_s,
            progress=job.progress,
            retry_after_s=job.retry_after_s if code != 200 else None,
            error=None if code == 200 else f"HTTP {code}: {job.detail}",
        )

    async def _get_status(
        self, job_id: str, wait_s: float | None, *, gated: bool = False
    ) -> JobStatus:
        params = None
        timeout_s: float | None = None
        if wait_s is not None:
            params = {"wait": f"{max(0.0, wait_s):.3f}"}
            # The server may hold the answer for all of wait_s (up to its 30 s cap by
            # default), so the read timeout runs on top of the hold, not through it.
            timeout_s = self._read_timeout_s + max(0.0, wait_s)
        response = await self._send(
            "GET", f"/status/{_path_id(job_id)}", params=params, timeout_s=timeout_s, gated=gated
        )
        code = response.status_code
        retry_after = _retry_after_s(response)
        if code == 429 and retry_after is not None:
            self._pause.pause_for(retry_after)  # the limit is per client: everyone waits
        if code != 200:
            return JobStatus(
                job_id=job_id,
                result="",
                http_status=code,
                retry_after_s=retry_after,
                detail=_detail(response),
            )
        long_poll = _float_or_none(response.headers.get("X-Long-Poll-Max"))
        self._long_poll_max_s = long_poll if long_poll and long_poll > 0 else None
        body = _json_object(response)
        result = body.get("result")
        if result not in KNOWN_RESULTS:
            raise ValueError(f"unknown result {result!r}")
        return JobStatus(
            job_id=job_id,
            result=str(result),
            eta_s=_float_or_none(body.get("eta_s")),
            progress=_float_or_none(body.get("progress")),
            http_status=code,
            retry_after_s=retry_after,
            long_poll_max_s=self._long_poll_max_s,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        admitted: bool = True,
        gated: bool = False,
    ) -> httpx.Response:
        """Send one request through admission; feeds the health gate either way.

        ``gated`` requests are refused with ``CircuitOpen`` while the health gate
        is open, checked both before and after waiting for admission (the gate
        may open while a request queues behind the in-flight cap).
        """
        if gated and self.health_gate.is_open:
            raise CircuitOpen
        if admitted:
            await self._admit()
            if gated and self.health_gate.is_open:
                self._in_flight.release()
                raise CircuitOpen
        if params and "wait" in params:
            self.stats.long_polls_held += 1
        request_timeout = self._http.timeout
        if timeout_s is not None:
            request_timeout = httpx.Timeout(timeout_s, connect=self._connect_timeout_s, pool=None)
        stats = self.stats
        stats.requests_sent += 1
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            response = await self._http.request(
                method, path, params=params, json=json, timeout=request_timeout
            )
        except httpx.TransportError as exc:
            stats.transport_failures += 1
            self.health_gate.record_failure(_describe_transport_error(exc))
            raise
        finally:
            stats.in_flight -= 1
            if admitted:
                self._in_flight.release()
        self.health_gate.record_success()
        return response

    async def _admit(self) -> None:
        """Wait for the 429 pause, the rate cap and an in-flight slot, in that order."""
        while True:
            await self._pause.wait()
            if self._rate is not None:
                await self._rate.acquire()
            await self._in_flight.acquire()
            if self._pause.remaining() <= 0:
                return
            # A 429 arrived while we queued for a slot: give it back and wait again.
            self._in_flight.release()

    async def _probe(self) -> bool:
        return (await self.health()).ok

    async def _sleep_until(self, wake_at: float) -> None:
        await self._clock.sleep(wake_at - self._clock.now())

    def _cancelled_event(
        self, job_id: str, attempt: int, status: str, started: float, strategy: Strategy
    ) -> PollEvent:
        return PollEvent(
            job_id=job_id,
            attempt=attempt,
            status=status,
            outcome=Outcome.CANCELLED,
            next_delay_s=None,
            reason=DelayReason.FINAL,
            elapsed_s=self._clock.now() - started,
            strategy=strategy,
            sent=False,
        )

    def _unreachable_message(self, exc: httpx.RequestError) -> str:
        return f"server at {self.base_url} is unreachable: {_describe_transport_error(exc)}"


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


# -- parsing helpers -----------------------------------------------------------------------


def _check_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"server URL is not valid: {base_url!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"server URL must look like http://host:port (got {base_url!r})")
    return str(url).rstrip("/")


def _path_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id.strip():
        raise ValueError(f"job_id must be a non-empty string (got {job_id!r})")
    return quote(job_id, safe="")


def _retryable(code: int) -> bool:
    return code in RETRYABLE_HTTP or code >= 500


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ValueError(f"HTTP {response.status_code} body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError(f"HTTP {response.status_code} body is not a JSON object")
    return body


def _json_field(response: httpx.Response, name: str) -> object:
    """One field of a JSON object body, or None when the body is not one."""
    try:
        return _json_object(response).get(name)
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    """The server's message: FastAPI's ``detail`` (a string or a list of field errors)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = [str(p) for p in item.get("loc", []) if p not in ("body", "query", "path")]
                field = ".".join(where)
                parts.append(f"{field}: {item.get('msg')}" if field else str(item.get("msg")))
        if parts:
            return "; ".join(parts)
    return response.reason_phrase or f"HTTP {response.status_code}"


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    seconds = _float_or_none(raw.strip())
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds)


def _describe_transport_error(exc: httpx.RequestError) -> str:
    """Short, user-facing text for a request that got no answer."""
    match exc:
        case httpx.ConnectTimeout():
            return "connect timed out"
        case httpx.ReadTimeout():
            return "no answer in time (read timeout)"
        case httpx.TimeoutException():
            return "timed out"
        case httpx.ConnectError():
            text = str(exc)
            if "refused" in text.lower() or "all connection attempts failed" in text.lower():
                return "connection refused"
            return f"cannot connect ({text or 'connect error'})"
        case httpx.RemoteProtocolError():
            return f"connection dropped ({exc or 'server closed the connection'})"
        case httpx.ReadError() | httpx.WriteError():
            return f"connection lost ({exc or type(exc).__name__})"
    return str(exc) or type(exc).__name__
