"""Starting jobs: one at a time (``POST /start``) or many (``POST /start/batch``).

A start is retried through anything transient (no answer, 429, 5xx, an open
circuit) until its deadline, never for a fixed few attempts, and it goes through
the same admission as every request (interactive lane, 429 pause, rate cap). Each
logical start, or batch chunk, carries one fresh ``Idempotency-Key`` that its
retries reuse, so a start whose answer was lost is never created twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from client_core.admission import Lane
from client_core.answers import (
    describe_transport_error,
    detail,
    gave_up_because,
    is_retryable,
    json_object,
    read_batch_started,
    read_started,
    retry_after_s,
)
from client_core.channel import Channel
from client_core.errors import RequestRejected, ServerUnreachable, VideoSimError
from client_core.policy import BackoffPolicy, Jitter
from client_core.protocol import IDEMPOTENCY_HEADER
from client_core.racing import run_unless

# Retries of a start: quick at first, then every 2 s, until the deadline.
START_RETRY_POLICY = BackoffPolicy(
    initial_s=0.2, multiplier=2.0, max_delay_s=2.0, jitter=Jitter.EQUAL
)
DEFAULT_START_DEADLINE_S = 60.0  # how long a start keeps trying when the caller gives no deadline
DEFAULT_BATCH_SIZE = 500  # jobs per POST /start/batch (the server's default max_batch is 1000)
BATCH_NOT_OFFERED = frozenset({404, 405})  # an older server: one POST /start per job
# A batch is all or nothing: when the server refuses its content (a bad item, too big),
# the chunk is started job by job so the good specs start and the bad one says why.
BATCH_REFUSED = frozenset({413, 422})
BATCH_TOO_BIG = frozenset({503})  # answered: nothing was created, so splitting is safe


@dataclass(frozen=True, slots=True)
class StartSpec:
    """What to start: the optional ``POST /start`` body fields."""

    duration_s: float | None = None
    outcome: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.duration_s is not None:
            body["duration_s"] = self.duration_s
        if self.outcome is not None:
            body["outcome"] = self.outcome
        return body


@dataclass(frozen=True, slots=True)
class StartResult:
    """One spec's start: a job id, or the error that kept it from starting."""

    spec: StartSpec
    job_id: str | None
    error: VideoSimError | None = None
    duration_s: float | None = None  # the server's duration for the job, when it said

    @property
    def started(self) -> bool:
        return self.job_id is not None


class Starter:
    """Starts jobs on one channel; remembers whether the server offers batches."""

    def __init__(
        self,
        channel: Channel,
        *,
        default_deadline_s: float,
        on_started: Callable[[str, float | None], None] | None = None,
    ) -> None:
        self._channel = channel
        self.default_deadline_s = default_deadline_s
        # None until the server has told us; a profile's API has no batch start
        self.batch_offered: bool | None = False if channel.protocol is not None else None
        self._on_started = on_started  # told each job started (its id and duration)
        # Fields added to every start's body (e.g. a webhook's callback_url and secret).
        self.extra_fields: dict[str, Any] = {}

    async def start(
        self,
        spec: StartSpec,
        *,
        deadline_s: float | None = None,
        retry_policy: BackoffPolicy = START_RETRY_POLICY,
    ) -> str:
        """``POST /start``; the job id, or a ``VideoSimError`` once the deadline is spent."""
        deadline_at = self._deadline_at(deadline_s, retry_policy)
        result = await self._start_one(spec, deadline_at, retry_policy)
        if result.error is not None:
            raise result.error
        assert result.job_id is not None
        self._started(result.job_id, result.duration_s)
        return result.job_id

    async def start_many(
        self,
        specs: Iterable[StartSpec],
        *,
        deadline_s: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list[StartResult]:
        """Start every spec; results in order. Never raises for a job that failed to start."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        specs = list(specs)
        deadline_at = self._deadline_at(deadline_s, START_RETRY_POLICY)
        chunks = [specs[i : i + batch_size] for i in range(0, len(specs), batch_size)]
        done = await asyncio.gather(*(self._start_chunk(chunk, deadline_at) for chunk in chunks))
        results = [result for chunk_results in done for result in chunk_results]
        for result in results:
            if result.job_id is not None:
                self._started(result.job_id, result.duration_s)
        return results

    def _body(self, spec: StartSpec) -> dict[str, Any] | None:
        return {**spec.body(), **self.extra_fields} or None

    def _started(self, job_id: str, duration_s: float | None) -> None:
        if self._on_started is not None:
            self._on_started(job_id, duration_s)

    async def _start_chunk(self, chunk: list[StartSpec], deadline_at: float) -> list[StartResult]:
        if self.batch_offered is not False:
            body = {"jobs": [self._body(spec) or {} for spec in chunk]}
            # A batch is all or nothing: one that does not fit under the job cap (503) is
            # split in halves at once rather than retried whole, so what fits starts.
            split_on = BATCH_TOO_BIG if len(chunk) > 1 else frozenset()
            try:
                response = await self._post(
                    "/start/batch",
                    body,
                    deadline_at,
                    START_RETRY_POLICY,
                    "cannot start a job",
                    give_up_on=split_on,
                )
                started = read_batch_started(response, len(chunk))
            except RequestRejected as exc:
                if exc.http_status in split_on:
                    half = len(chunk) // 2
                    halves = await asyncio.gather(
                        self._start_chunk(chunk[:half], deadline_at),
                        self._start_chunk(chunk[half:], deadline_at),
                    )
                    return halves[0] + halves[1]
                if exc.http_status in BATCH_NOT_OFFERED:
                    self.batch_offered = False
                elif exc.http_status not in BATCH_REFUSED:
                    return [StartResult(spec, None, exc) for spec in chunk]
            except VideoSimError as exc:
                return [StartResult(spec, None, exc) for spec in chunk]
            else:
                self.batch_offered = True
                return [
                    StartResult(spec, job.job_id, None, job.duration_s)
                    for spec, job in zip(chunk, started, strict=True)
                ]
        return list(await asyncio.gather(*(self._start_one(spec, deadline_at) for spec in chunk)))

    async def _start_one(
        self, spec: StartSpec, deadline_at: float, retry_policy: BackoffPolicy = START_RETRY_POLICY
    ) -> StartResult:
        """One start: videosim's ``POST /start``, or the start request of the profile."""
        protocol = self._channel.protocol
        try:
            if protocol is None:
                response = await self._post(
                    "/start", self._body(spec), deadline_at, retry_policy, "cannot start a job"
                )
                job = read_started(json_object(response), "the answer")
            else:
                values: dict[str, object] = {**spec.body(), **self.extra_fields}
                method, path, body = protocol.start_request(values)
                accepted = frozenset(protocol.profile.start.accepted)
                response = await self._post(
                    path, body, deadline_at, retry_policy, "cannot start a job",
                    method=method, accepted=accepted,
                )  # fmt: skip
                job = protocol.read_started(response)
            return StartResult(spec, job.job_id, None, job.duration_s)
        except VideoSimError as exc:
            if protocol is not None and exc.http_status in (401, 403):
                exc = RequestRejected(
                    f"{exc}: {protocol.missing_key()}", http_status=exc.http_status
                )
            return StartResult(spec, None, exc)

    def _deadline_at(self, deadline_s: float | None, retry_policy: BackoffPolicy) -> float:
        if deadline_s is None:
            deadline_s = retry_policy.deadline_s or self.default_deadline_s
        if not deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0 (got {deadline_s})")
        return self._channel.clock.now() + deadline_s

    async def _post(
        self,
        path: str,
        body: dict[str, Any] | None,
        deadline_at: float,
        retry_policy: BackoffPolicy,
        what: str,
        give_up_on: frozenset[int] = frozenset(),
        *,
        method: str = "POST",
        accepted: frozenset[int] = frozenset({200}),
    ) -> httpx.Response:
        """POST until a 200, a refusal, or the deadline; the same key on every retry.

        An answer whose status is in ``give_up_on`` is raised at once, not retried.
        """
        channel = self._channel
        clock = channel.clock
        headers = {IDEMPOTENCY_HEADER: str(uuid.uuid4())}
        unreachable = f"server at {channel.base_url} is unreachable"
        rng = retry_policy.rng()
        previous: float | None = None
        failure: VideoSimError = ServerUnreachable(f"{unreachable}: no attempt made in time")
        attempt = 0
        while (time_left := deadline_at - clock.now()) > 0:
            attempt += 1
            if channel.breaker.is_open:
                # The probe is the only traffic while the circuit is open: wait for it.
                failure = ServerUnreachable(f"{unreachable}: {channel.breaker.describe()}")
                slept, _ = await run_unless(clock.sleep(time_left), channel.breaker.closed)
                if slept:
                    break
                continue
            retry_after: float | None = None
            timeout_s = time_left if time_left < channel.read_timeout_s else None
            try:
                response = await channel.send(
                    method,
                    path,
                    lane=Lane.INTERACTIVE,
                    json=body,
                    headers=headers,
                    timeout_s=timeout_s,
                )
            except httpx.RequestError as exc:
                failure = ServerUnreachable(f"{unreachable}: {describe_transport_error(exc)}")
            else:
                code = response.status_code
                if code in accepted:
                    return response
                retry_after = retry_after_s(response, channel.max_server_pause_s)
                if not is_retryable(code) or code in give_up_on:
                    raise RequestRejected(f"{what}: {detail(response)}", http_status=code,
                                          retry_after_s=retry_after)  # fmt: skip
                if code == 429 and retry_after is not None:
                    channel.admission.pause.pause_for(retry_after)  # per client: everyone waits
                failure = RequestRejected(
                    f"{what}: HTTP {code}: {detail(response)}",
                    http_status=code,
                    retry_after_s=retry_after,
                )
            if retry_policy.budget_spent(attempt):
                raise failure
            previous = retry_policy.delay(attempt, previous, rng)
            wait = max(previous, retry_after or 0.0)
            if retry_after is not None and retry_after >= previous:
                channel.stats.start_pauses_s += wait
            if clock.now() + wait >= deadline_at:
                break  # the next try would land past the deadline
            await clock.sleep(wait)
        raise _gave_up(failure, deadline_at - clock.now())


def _gave_up(failure: VideoSimError, time_left: float) -> VideoSimError:
    """The last failure, saying why the retries ended."""
    if isinstance(failure, RequestRejected):
        return RequestRejected(
            f"{failure}{gave_up_because(failure.retry_after_s, time_left)}",
            http_status=failure.http_status,
            retry_after_s=failure.retry_after_s,
        )
    return failure
