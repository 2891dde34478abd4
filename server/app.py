"""The FastAPI application: routes of the HTTP protocol on top of the store and faults.

``create_app(settings, clock)`` builds an independent app (own store, RNGs and metrics
registry), so tests can run many side by side. ``create_app_from_env`` is the import
string uvicorn's ``--reload`` needs: it reads the settings from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import (
    APIRouter,
    Body,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
)
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import Field, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

from server.emulation import emulation_router
from server.faults import FaultInjector, Offers, Rejection, retry_after_header
from server.http.edge import EdgeMiddleware, drop_connections
from server.http.identity import MISSING_OR_INVALID_KEY, api_key_accepted, caller_identity, identity
from server.http.metrics import CONTENT_TYPE, ServerMetrics
from server.jobs.clock import Clock, SystemClock
from server.jobs.idempotency import IdempotencyConflict, fingerprint
from server.jobs.job import Job, JobLimitReached, poll_retry_after
from server.models import (
    Capabilities,
    ErrorMessage,
    Faults,
    Health,
    JobRecord,
    JobsPage,
    JobSummary,
    PlainStartResponse,
    StartBatchRequest,
    StartBatchResponse,
    StartRequest,
    StartResponse,
    StatusRequestRecord,
    StatusResponse,
    list_too_long,
)
from server.push.batch_status import batch_status_router, push_body_caps
from server.push.capabilities import capabilities_of, capabilities_router, capability_header
from server.push.events import EventStreams, events_router
from server.push.models import CLIENT_ID_PATTERN
from server.push.subscriptions import subscriptions_router
from server.push.webhooks import (
    WebhookDeliveries,
    callback_url_pattern,
    refused_callback_message,
)
from server.scenario_player import ScenarioPlayer, ScenarioStatus
from server.settings import ServerSettings
from server.stores.base import (
    IdempotencyClaim,
    JobStore,
    StartedJobs,
    StoreUnavailable,
    SubscriptionQuotaExceeded,
)
from server.stores.factory import build_store

# HTTP has no code for "the client hung up first"; nginx's 499 is the customary one.
CLIENT_CLOSED_REQUEST = 499
JOB_NOT_FOUND = "Job not found"

logger = logging.getLogger(__name__)


@dataclass
class ServerState:
    """Everything one app instance owns; routes reach it through dependencies."""

    settings: ServerSettings
    clock: Clock
    store: JobStore
    faults: FaultInjector
    metrics: ServerMetrics
    started_at: float
    streams: EventStreams
    capabilities: Capabilities | None  # None under --plain
    capabilities_header: str | None  # X-Capabilities, computed once
    webhooks: WebhookDeliveries
    callback_url: re.Pattern[str]  # what a callback_url must match on this server
    offers: Offers  # hints, long-poll, push: the settings', unless a scenario's phase says
    scenario: ScenarioPlayer | None = None  # --scenario: its timeline and job durations


# --- dependencies ---------------------------------------------------------------------
# Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread. And each
# reads the app state itself rather than depending on get_state: every node of the
# dependency graph costs tens of microseconds on every request.


async def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.videosim
    return state


async def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.videosim.store
    return store


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.videosim.clock
    return clock


async def get_fault_injector(request: Request) -> FaultInjector:
    faults: FaultInjector = request.app.state.videosim.faults
    return faults


StateDep = Annotated[ServerState, Depends(get_state)]
StoreDep = Annotated[JobStore, Depends(get_store)]
ClockDep = Annotated[Clock, Depends(get_clock)]
FaultsDep = Annotated[FaultInjector, Depends(get_fault_injector)]

_api_key_header = APIKeyHeader(
    name="X-Api-Key", auto_error=False, description="needed when the server has an API key"
)


async def require_api_key(
    request: Request, api_key: Annotated[str | None, Depends(_api_key_header)]
) -> None:
    """401 unless the server has no key or the request carries the right one."""
    if not api_key_accepted(request.app.state.videosim.settings.api_key, api_key):
        raise HTTPException(401, MISSING_OR_INVALID_KEY)


async def injected_fault(request: Request) -> Rejection | None:
    """Apply the injected latency, then say whether the faults turn this request away."""
    faults: FaultInjector = request.app.state.videosim.faults
    return await faults.turn_away(caller_identity(request))


InjectedFault = Annotated[Rejection | None, Depends(injected_fault)]


# --- routes ---------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorMessage, "description": description}
    for code, description in [
        (429, "Rate limit exceeded (injected fault); see Retry-After"),
        (503, "Unavailable (injected fault, or the job cap is reached); see Retry-After"),
    ]
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": JOB_NOT_FOUND}
}
_START_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"model": ErrorMessage, "description": "Idempotency-Key reused with another body"},
    413: {"model": ErrorMessage, "description": "Body larger than max_body_bytes"},
}

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": MISSING_OR_INVALID_KEY}
}

# Each app includes the routers its settings call for; every one but health_router
# needs the API key when the server has one.
start_router = APIRouter()  # POST /start with its extensions, and POST /start/batch
plain_start_router = APIRouter()  # POST /start exactly as the original simulation
jobs_router = APIRouter()
status_router = APIRouter()  # GET /status/{job_id}, documented here, served at the edge
plain_status_router = APIRouter()  # the same under --plain: no query parameters
health_router = APIRouter()

ClientId = Annotated[
    str | None,
    Header(
        alias="X-Client-Id",
        pattern=CLIENT_ID_PATTERN,
        description="a label grouping this client's jobs, for GET /events?all=true",
    ),
]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="a fresh key per logical start (a uuid4), sent again on each retry of "
        "it: the same key and body within the retention window get the same jobs back",
    ),
]


def _rejected(rejection: Rejection) -> HTTPException:
    return HTTPException(rejection.code, rejection.detail, headers=rejection.headers)


def _over_the_maximum(
    loc: tuple[str | int, ...], value: float, limit: float
) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "less_than_equal",
                "loc": loc,
                "msg": f"Input should be less than or equal to {limit:g}",
                "input": value,
            }
        ]
    )


def _check_durations(bodies: Sequence[StartRequest], settings: ServerSettings, batch: bool) -> None:
    """duration_s against the server's own cap, which the static schema cannot know."""
    for index, body in enumerate(bodies):
        if body.duration_s is not None and body.duration_s > settings.max_duration_s:
            loc: tuple[str | int, ...] = (
                ("body", "jobs", index, "duration_s") if batch else ("body", "duration_s")
            )
            raise _over_the_maximum(loc, body.duration_s, settings.max_duration_s)


def _check_callbacks(bodies: Sequence[StartRequest], state: ServerState, batch: bool) -> None:
    """callback_url against the hosts this server may post to."""
    for index, body in enumerate(bodies):
        if body.callback_url is not None and not state.callback_url.fullmatch(body.callback_url):
            loc: tuple[str | int, ...] = (
                ("body", "jobs", index, "callback_url") if batch else ("body", "callback_url")
            )
            problem = {
                "type": "value_error",
                "loc": loc,
                "msg": refused_callback_message(state.settings, body.callback_url),
                "input": body.callback_url,
            }
            raise RequestValidationError([problem])


async def _create_once(
    state: ServerState,
    request: Request,
    response: Response,
    key: str | None,
    route: str,
    bodies: Sequence[StartRequest],
    client_id: str | None,
) -> Sequence[Job]:
    """Create the jobs, unless this key already did: then answer what it answered then.

    The store checks the key and creates the jobs in one atomic step, so two retries
    racing each other (even on two workers) cannot both create jobs."""
    claim = None
    if key is not None:
        canonical = "[" + ",".join(body.model_dump_json() for body in bodies) + "]"
        claim = IdempotencyClaim(caller_identity(request), key, fingerprint(route, canonical))
    try:
        started = await _create(state, bodies, claim, client_id)
    except IdempotencyConflict as error:
        raise HTTPException(409, str(error)) from error
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        if client_id is not None:
            state.streams.jobs_started(client_id, started.jobs)
        targets = [
            (job, body.callback_url, body.callback_secret)
            for job, body in zip(started.jobs, bodies, strict=True)
            if body.callback_url is not None
        ]
        if targets:
            await state.store.remember_callbacks(
                targets, takeover_s=state.settings.callback_takeover_s
            )
        for job, url, secret in targets:
            state.webhooks.schedule(job, url, secret)
    return started.jobs


async def _create(
    state: ServerState,
    bodies: Sequence[StartRequest],
    claim: IdempotencyClaim | None = None,
    client_id: str | None = None,
) -> StartedJobs:
    """The jobs of ``bodies``; one without a duration gets the scenario's next, if one is
    played (else the store's default)."""
    store, scenario = state.store, state.scenario
    try:
        specs = [
            (body.duration_s if body.duration_s is not None or scenario is None
             else scenario.next_duration(), body.outcome)
            for body in bodies
        ]  # fmt: skip
        return await store.create_many(specs, claim, client_id)
    except JobLimitReached as error:
        retry_after = retry_after_header(await store.seconds_until_room(len(bodies)))
        raise HTTPException(503, str(error), headers={"Retry-After": retry_after}) from error


def _started(job: Job) -> StartResponse:
    return StartResponse(job_id=job.job_id, duration_s=job.duration_s, created_at=job.created_at)


@start_router.post("/start", responses=_START_ERRORS, summary="Start a job")
async def start_job(
    request: Request,
    response: Response,
    state: StateDep,
    fault: InjectedFault,
    idempotency_key: IdempotencyKey = None,
    client_id: ClientId = None,
    body: Annotated[StartRequest | None, Body()] = None,
) -> StartResponse:
    """Create a job that stays pending for ``duration_s``, then shows its outcome."""
    body = body or StartRequest()
    _check_durations([body], state.settings, batch=False)
    _check_callbacks([body], state, batch=False)
    if fault is not None:
        raise _rejected(fault)
    jobs = await _create_once(
        state, request, response, idempotency_key, "/start", [body], client_id
    )
    return _started(jobs[0])


@start_router.post("/start/batch", responses=_START_ERRORS, summary="Start many jobs at once")
async def start_batch(
    request: Request,
    response: Response,
    state: StateDep,
    fault: InjectedFault,
    body: StartBatchRequest,
    idempotency_key: IdempotencyKey = None,
    client_id: ClientId = None,
) -> StartBatchResponse:
    """Create every job of the batch, or none: a batch that does not fit under the job cap
    is answered 503 with Retry-After. Faults apply once to the whole request."""
    settings = state.settings
    if len(body.jobs) > settings.max_batch:
        raise list_too_long("jobs", settings.max_batch, len(body.jobs))
    _check_durations(body.jobs, settings, batch=True)
    _check_callbacks(body.jobs, state, batch=True)
    if fault is not None:
        raise _rejected(fault)
    jobs = await _create_once(
        state, request, response, idempotency_key, "/start/batch", body.jobs, client_id
    )
    return StartBatchResponse(jobs=[_started(job) for job in jobs])


@plain_start_router.post(
    "/start",
    response_model=PlainStartResponse,
    responses=_ERRORS,
    summary="Start a job (the original simulation: any body is ignored)",
)
async def start_job_plain(state: StateDep, fault: InjectedFault) -> JSONResponse:
    """The original's answer, byte for byte: ``{"job_id": "..."}`` and nothing else."""
    if fault is not None:
        raise _rejected(fault)
    job = (await _create(state, [StartRequest()])).jobs[0]
    return JSONResponse({"job_id": job.job_id})


@status_router.get(
    "/status/{job_id}",
    response_model=StatusResponse,
    response_model_exclude_none=True,
    responses={**_ERRORS, **_NOT_FOUND},
    summary="Poll a job",
)
async def job_status(
    job_id: str,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            allow_inf_nan=False,
            description="hold the request up to this many seconds (capped by the server) "
            "until the job leaves pending",
        ),
    ] = None,
) -> StatusResponse:
    """The job's state; hints and long-poll depend on the server's settings.

    This operation documents the route for the OpenAPI schema; requests never reach it:
    :class:`server.http.edge.EdgeMiddleware` hands them to :func:`serve_status` first.
    """
    raise HTTPException(500, "GET /status is served by the edge middleware")


@plain_status_router.get(
    "/status/{job_id}",
    response_model=StatusResponse,
    response_model_exclude_none=True,
    responses={**_ERRORS, **_NOT_FOUND},
    summary="Poll a job (the original simulation: no query parameters)",
)
async def plain_job_status(job_id: str) -> StatusResponse:
    """The job's state, as the original answers it (no hints, no long-poll).

    Documentation only, as :func:`job_status`."""
    raise HTTPException(500, "GET /status is served by the edge middleware")


_WAIT = TypeAdapter(Annotated[float, Field(ge=0, allow_inf_nan=False)])
STORE_UNAVAILABLE = "Job store unavailable; retry shortly"


async def serve_status(
    state: ServerState, scope: Scope, receive: Receive, send: Send, job_id: str
) -> int:
    """GET /status/{job_id}, the hot path, as a bare ASGI handler; returns the status code.

    The same behaviour as a FastAPI route (API key, faults, ``wait`` validated with the
    same rules and 422 shape, hints, long-poll, request log), written out by hand and
    called by the edge middleware ahead of FastAPI's routing and middleware, which took
    most of the CPU of each poll. The FastAPI operation :func:`job_status` stays for the
    OpenAPI schema, and schemathesis checks this handler against it. The answer goes out
    in one go at the end (the edge middleware relies on that for its 500).
    """
    try:
        code, answer, headers = await _status(state, scope, receive, job_id)
    except StoreUnavailable as error:
        logger.warning("%s", error)
        code, answer = 503, {"detail": STORE_UNAVAILABLE}
        headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
    if code != CLIENT_CLOSED_REQUEST:  # nobody is listening for that one
        await _send_json(send, code, answer, headers)
    return code


async def _status(
    state: ServerState, scope: Scope, receive: Receive, job_id: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status code, JSON answer, headers) for GET /status/{job_id}."""
    settings, offers = state.settings, state.offers
    api_key = None
    if settings.api_key is not None:
        api_key = _header(scope, b"x-api-key")
        if not api_key_accepted(settings.api_key, api_key):
            return 401, {"detail": MISSING_OR_INVALID_KEY}, {}
    store, clock = state.store, state.clock
    # Before validation, as a dependency would be.
    fault = await state.faults.turn_away(identity(settings.api_key, api_key, scope))
    hold_s = 0.0
    raw_wait = None if settings.plain else _query_value(scope["query_string"], "wait")
    if raw_wait is not None:
        try:
            hold_s = min(_WAIT.validate_python(raw_wait), offers.long_poll_max_s)
        except ValidationError as error:
            problems = [{**item, "loc": ("query", "wait")} for item in error.errors()]
            return 422, {"detail": [_named_error(item) for item in problems]}, {}

    headers: dict[str, str] = {}
    if offers.long_poll_max_s > 0:
        headers["X-Long-Poll-Max"] = f"{offers.long_poll_max_s:g}"
    if state.capabilities_header is not None:
        headers["X-Capabilities"] = state.capabilities_header
    if fault is None and hold_s == 0:  # the common poll: one store call, one round trip
        now = clock.now()
        job = await store.get_and_record_poll(job_id, now, offers.hints)
        if job is None:
            return 404, {"detail": JOB_NOT_FOUND}, headers
        return 200, _status_answer(job, now, offers.hints, headers), headers

    job = await store.get(job_id)
    if fault is not None:
        if job is not None:
            await store.record_status_request(
                job, at=clock.now(), code=fault.code, retry_after_s=fault.retry_after_s, result=None
            )
        headers.update(fault.headers)
        return fault.code, {"detail": fault.detail}, headers
    if job is None:
        return 404, {"detail": JOB_NOT_FOUND}, headers

    if not await _hold(store, job, hold_s, receive):
        # Nobody is listening any more: count the request, but nobody saw an answer.
        await store.record_status_request(
            job, at=clock.now(), code=CLIENT_CLOSED_REQUEST, retry_after_s=None, result=None
        )
        return CLIENT_CLOSED_REQUEST, {}, headers

    now = clock.now()
    await store.record_poll(job, now, offers.hints)
    return 200, _status_answer(job, now, offers.hints, headers), headers


def _status_answer(job: Job, now: float, hints: bool, headers: dict[str, str]) -> dict[str, Any]:
    """The 200 answer to GET /status at ``now``: the state, and hints while pending."""
    result = job.result_at(now)
    answer: dict[str, Any] = {"job_id": job.job_id, "result": result}
    retry_after_s = poll_retry_after(job, now, hints)
    if retry_after_s is not None:
        answer["eta_s"] = round(max(0.0, job.finishes_at - now), 3)
        answer["progress"] = round(min(1.0, max(0.0, (now - job.created_at) / job.duration_s)), 4)
        headers["Retry-After"] = str(retry_after_s)
    return answer


async def _hold(store: JobStore, job: Job, hold_s: float, receive: Receive) -> bool:
    """Long-poll: park until the job leaves pending or the wait runs out; False if the
    client hung up meanwhile.

    The request waits in ``receive()``, which returns only when the client hangs up, so
    a held request is its own parked coroutine and a :class:`~server.jobs.long_poll.Hold`:
    no task, timer or event of its own. The long-polls wake it by cancelling its task,
    the way ``asyncio.timeout()`` interrupts a wait, and this takes the cancel back.
    """
    task = asyncio.current_task()
    assert task is not None, "ASGI requests run in a task"
    cancels_before = task.cancelling()
    hold = store.long_polls.park(job, hold_s, task.cancel)
    if hold is None:
        return True
    try:
        while (await receive())["type"] != "http.disconnect":
            pass  # the request's body, if any: ignored
    except asyncio.CancelledError:
        if not hold.woken or task.uncancel() > cancels_before:
            raise  # cancelled by someone else as well: the server is stopping
        return True
    finally:
        store.long_polls.unpark(hold)
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    """The value of request header ``name`` (lower case), as Starlette decodes it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _query_value(query: bytes, name: str) -> str | None:
    """The last value of ``name`` in the query string, as Starlette's query_params.get."""
    if not query:
        return None
    found = None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == name:
            found = value
    return found


async def _send_json(send: Send, code: int, answer: object, headers: dict[str, str]) -> None:
    body = json.dumps(answer, separators=(",", ":")).encode()
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    for name, value in headers.items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _summary_fields(job: Job, now: float) -> dict[str, Any]:
    finite = job.fails is not None
    lag = None
    if finite and job.first_final_seen_at is not None:
        lag = round(job.first_final_seen_at - job.finishes_at, 6)
    return {
        "job_id": job.job_id,
        "result": job.result_at(now),
        "outcome": job.outcome,
        "duration_s": job.duration_s if finite else None,
        "created_at": job.created_at,
        "finishes_at": job.finishes_at if finite else None,
        "status_requests": job.status_requests,
        "first_final_seen_at": job.first_final_seen_at,
        "first_final_channel": job.first_final_channel,
        "detection_lag_s": lag,
    }


@jobs_router.get("/jobs/{job_id}", responses=_NOT_FOUND, summary="The server's record of a job")
async def job_record(job_id: str, store: StoreDep, clock: ClockDep) -> JobRecord:
    """Counts and timings measured by the server, and the last status requests."""
    job = await store.get_record(job_id)
    if job is None:
        raise HTTPException(404, JOB_NOT_FOUND)
    requests = [
        StatusRequestRecord(at=r.at, code=r.code, retry_after_s=r.retry_after_s)
        for r in job.requests()
    ]
    callbacks = await store.callback_attempts(job_id)
    return JobRecord(**_summary_fields(job, clock.now()), requests=requests, callbacks=callbacks)


@jobs_router.get("/jobs", summary="List jobs in creation order")
async def list_jobs(
    store: StoreDep,
    clock: ClockDep,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobsPage:
    now = clock.now()
    page = await store.page(offset, limit)
    jobs = [JobSummary(**_summary_fields(job, now)) for job in page]
    return JobsPage(total=await store.count(), offset=offset, limit=limit, jobs=jobs)


@jobs_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics(state: StateDep) -> Response:
    return Response(await state.metrics.render(), media_type=CONTENT_TYPE)


@jobs_router.get("/admin/faults", summary="Current injected faults")
async def get_faults(faults: FaultsDep) -> Faults:
    return faults.faults


@jobs_router.put("/admin/faults", summary="Replace the injected faults")
async def put_faults(new_faults: Faults, faults: FaultsDep, store: StoreDep) -> Faults:
    """Fields left out go back to their defaults (off): PUT replaces, it does not merge.
    On a shared store every server process follows within FAULTS_FOLLOW_S."""
    faults.faults = new_faults
    await store.publish_faults(new_faults)
    return faults.faults


_NO_SCENARIO: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "the server plays no scenario (--scenario)"}
}


def _player(state: ServerState) -> ScenarioPlayer:
    if state.scenario is None:
        raise HTTPException(404, "this server plays no scenario (start it with --scenario)")
    return state.scenario


@jobs_router.get("/admin/scenario", responses=_NO_SCENARIO, summary="The scenario's timeline")
async def get_scenario(state: StateDep) -> ScenarioStatus:
    """Where the timeline is: the phases in force, the faults, and the next change."""
    return _player(state).status()


@jobs_router.post(
    "/admin/scenario/start", responses=_NO_SCENARIO, summary="Start the scenario's timeline again"
)
async def start_scenario(state: StateDep) -> ScenarioStatus:
    """From its first moment, with its durations from the top; jobs already made stay."""
    player = _player(state)
    player.start()
    return player.status()


@health_router.get(
    "/healthz",
    summary="Liveness; never needs the API key, never faulted",
    response_model_exclude_unset=True,  # no capabilities under --plain
)
async def healthz(state: StateDep) -> Health:
    jobs = await state.store.count()
    problem = state.store.write_problem
    if problem is None and jobs >= state.store.max_jobs:
        problem = f"job limit reached: {state.store.max_jobs} jobs"
    return Health(
        status="degraded" if problem is not None else "ok",
        **({"problem": problem} if problem is not None else {}),
        jobs=jobs,
        uptime_s=round(state.clock.now() - state.started_at, 3),
        hints=state.offers.hints,
        long_poll_max_s=state.offers.long_poll_max_s,
        **({"capabilities": state.capabilities} if state.capabilities is not None else {}),
    )


# --- errors ---------------------------------------------------------------------------


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 shape, with each message starting with the field it is about."""
    assert isinstance(error, RequestValidationError)
    content_type = request.headers.get("content-type")
    return JSONResponse(
        {"detail": [_named_error(item, content_type) for item in error.errors()]},
        status_code=422,
    )


def _named_error(item: dict[str, Any], content_type: str | None = None) -> dict[str, Any]:
    """One validation problem, its message naming the field. A body that is not a JSON
    object says what is expected and how to send it; an unknown field says why it is
    refused (a misspelt ``duraton_s`` would otherwise be dropped without a word: the
    original simulation ignores unknown fields, and ``--plain`` does as it does)."""
    loc: Sequence[str | int] = item.get("loc", ())
    where = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    message = str(item.get("msg", "invalid value"))
    kind = item.get("type")
    if kind == "json_invalid":
        where = [str(loc[0])] if loc else ["body"]
        error = item.get("ctx", {}).get("error", "")
        message = f"Invalid JSON at position {loc[-1] if loc else 0}: {error}".rstrip(": ")
    elif kind in ("model_attributes_type", "dict_type") and list(loc) == ["body"]:
        message = _not_a_json_object(item.get("input"), content_type)
    elif kind == "extra_forbidden":
        message = "unknown field; check its spelling (unknown fields are refused, not ignored)"
    return {
        "type": kind,
        "loc": list(loc),
        "msg": f"{'.'.join(where) or 'request'}: {message}",
    }


def _not_a_json_object(body: object, content_type: str | None) -> str:
    expected = "a JSON object is expected"
    media = (content_type or "").partition(";")[0].strip().lower()
    if media != "application/json":
        sent = f"Content-Type {media}" if media else "no Content-Type"
        return f"{expected}, sent as Content-Type: application/json (got {sent})"
    json_kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    got = json_kinds.get(type(body), "a number" if isinstance(body, int | float) else None)
    return f"{expected} (got {got})" if got else expected


# How long a client is asked to wait when the store (Redis) does not answer.
STORE_RETRY_AFTER_S = 1


async def _store_unavailable(request: Request, error: Exception) -> JSONResponse:
    """Redis is down or too slow: 503 with Retry-After, as for any passing outage."""
    logger.warning("%s", error)
    return JSONResponse(
        {"detail": STORE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


async def _over_quota(request: Request, error: Exception) -> JSONResponse:
    """A caller past its subscription quota: 429 naming the limit (no Retry-After: room
    comes back when the caller deletes a subscription, not with time)."""
    return JSONResponse({"detail": str(error)}, status_code=429)


# FastAPI answers a body it cannot even decode (not UTF-8) with this 400; every other
# malformed body is a 422, so this one becomes a 422 as well.
_UNDECODABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's HTTP errors, with two corrections so answers match the schema: an
    undecodable body is a 422 like any malformed one, and a 405 names every method the
    path allows (not just those of the first route that matched it)."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 and error.detail == _UNDECODABLE_BODY:
        problem = {
            "type": "json_invalid",
            "loc": ["body"],
            "msg": f"body: Invalid JSON: {_why_undecodable(error.__cause__)}",
        }
        return JSONResponse({"detail": [problem]}, status_code=422)
    if error.status_code == 405 and (allowed := _methods_for(request.app, request.url.path)):
        error = StarletteHTTPException(405, error.detail, {"Allow": ", ".join(allowed)})
    return await http_exception_handler(request, error)


def _why_undecodable(cause: BaseException | None) -> str:
    """What kept the JSON parser from reading a body, in words (FastAPI only says that
    it could not)."""
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not UTF-8 text"
    if isinstance(cause, RecursionError):
        return "nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "a number has too many digits (at most 4300)"
    return "the body could not be read as JSON"


def _methods_for(app: FastAPI, path: str) -> list[str]:
    """Every method some operation of the schema serves at ``path`` (HEAD comes with GET)."""
    methods: set[str] = set()
    paths = app.openapi()["paths"]
    if path in paths:  # a literal path wins over templates (/status/batch, /status/{job_id})
        paths = {path: paths[path]}
    for template, operations in paths.items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods and not app.state.videosim.settings.plain:
        methods.add("HEAD")
    return sorted(methods)


# --- the app --------------------------------------------------------------------------


# The most a /start/batch item can weigh as JSON: a 2,048-character callback_url whose
# every character is escaped (\" or \\), a 256-character secret of \uXXXX escapes, and
# the other fields.
_BYTES_PER_START_ITEM = 2 * 2048 + 6 * 256 + 512


def larger_body_caps(settings: ServerSettings) -> dict[str, int]:
    """Paths whose body cap is above ``max_body_bytes`` (a trailing ``/``: every path under
    it): each route that takes a list takes its longest valid list, so that one item too
    many is refused as invalid (422), not as too large (413)."""
    if settings.plain:
        return {}
    start_batch = (settings.max_batch + 1) * _BYTES_PER_START_ITEM + 4096
    return {**push_body_caps(settings), "/start/batch": max(settings.max_body_bytes, start_batch)}


def create_app(settings: ServerSettings, clock: Clock | None = None) -> FastAPI:
    """Build an app with its own store, RNGs and metrics registry.

    The store opens when the app starts (its lifespan) and writes what it still holds
    and disconnects when the app stops.
    """
    clock = clock or SystemClock()
    seed = settings.seed
    fault_rng = random.Random(None if seed is None else f"{seed}:faults")
    store = build_store(settings.store_url, clock, settings.store_options())
    faults = FaultInjector(settings.initial_faults(), clock, fault_rng, store.rate_limiter)
    capabilities = capabilities_of(settings)
    streams = EventStreams(
        store,
        clock,
        buffer=settings.events_buffer,
        heartbeat_s=settings.events_heartbeat_s,
        send_timeout_s=settings.events_send_timeout_s,
        retention_s=settings.retention_s,
    )
    state = ServerState(
        settings=settings,
        clock=clock,
        store=store,
        faults=faults,
        metrics=ServerMetrics(store, faults),
        started_at=clock.now(),
        streams=streams,
        capabilities=capabilities,
        capabilities_header=capability_header(capabilities),
        webhooks=WebhookDeliveries(
            store,
            clock,
            attempts=settings.callback_attempts,
            takeover_s=settings.callback_takeover_s,
            failure_details=settings.callback_failure_details,
            rng=random.Random(None if seed is None else f"{seed}:webhooks"),
        ),
        callback_url=re.compile(callback_url_pattern(settings)),
        offers=Offers(settings.hints, settings.long_poll_max_s, push=not settings.plain),
    )
    if (scenario := settings.played_scenario) is not None:

        def outage(began: bool) -> None:
            drop_connections(began)
            if began:
                streams.interrupt(f"outage (scenario {scenario.name})")

        state.scenario = ScenarioPlayer(
            scenario, clock, store.schedule, faults, state.offers, on_outage=outage,
            on_push_off=lambda: streams.interrupt(f"push switched off (scenario {scenario.name})"),
        )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        state.webhooks.start()
        if state.scenario is not None:
            state.scenario.start()
        for job, url, secret, attempts in await store.callbacks_to_resume():
            state.webhooks.resume(job, url, secret, attempts)
        following = None
        if store.shared:  # the faults this process starts with are everybody's now
            await store.publish_faults(faults.faults)
            following = asyncio.create_task(_follow_published_faults(store, faults))
        try:
            yield
        finally:
            if following is not None:
                following.cancel()
            store.close()
            await state.webhooks.aclose()
            await store.aclose()

    # FastAPI's native OpenTelemetry is off: this server is observed through /metrics, and
    # the check whether anybody traces cost ~10 % of a poll's CPU (docs/performance.md).
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="videosim server",
        summary="A simulated video-translation job API for testing polling clients.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.videosim = state

    def edge_built(edge: EdgeMiddleware) -> None:
        state.store.on_close(edge.stop)
        state.metrics.watch_bodies_arriving(lambda: edge.bodies_arriving)

    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        larger_bodies=larger_body_caps(settings),
        count=state.metrics.count_request,
        serve_status=functools.partial(serve_status, state),
        # The original answers HEAD with 405, as FastAPI does any GET route.
        status_methods=frozenset({"GET"} if settings.plain else {"GET", "HEAD"}),
        on_built=edge_built,
    )
    _publish_settings_in_schema(app, settings)
    guard = [Depends(require_api_key)] if settings.api_key is not None else []
    guarded = _UNAUTHORIZED if settings.api_key is not None else None
    profile = settings.api_profile
    if not profile.native:  # another API's routes, emulated (its own auth header)
        app.include_router(emulation_router(profile))
    starts = plain_start_router if settings.plain else start_router
    app.include_router(starts, dependencies=guard, responses=guarded)
    if not settings.plain:  # the push protocol (issue 11); --plain is the original API
        push_errors = {**_ERRORS, **(guarded or {})}
        app.include_router(batch_status_router(settings, injected_fault, push_errors),
                           dependencies=guard)  # fmt: skip
        app.include_router(subscriptions_router(settings), dependencies=guard, responses=guarded)
        app.include_router(events_router, dependencies=guard, responses=guarded)
        app.include_router(capabilities_router)
    status_docs = plain_status_router if settings.plain else status_router
    app.include_router(status_docs, dependencies=guard, responses=guarded)
    app.include_router(jobs_router, dependencies=guard, responses=guarded)
    app.include_router(health_router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(SubscriptionQuotaExceeded, _over_quota)
    return app


# How soon a PUT /admin/faults on one server process reaches the others of a shared store.
FAULTS_FOLLOW_S = 0.5


async def _follow_published_faults(store: JobStore, faults: FaultInjector) -> None:
    """Take up the faults another process published (PUT /admin/faults went to it)."""
    while True:
        await asyncio.sleep(FAULTS_FOLLOW_S)
        try:
            published = await store.published_faults()
        except StoreUnavailable:
            continue
        if published is not None and published != faults.faults:
            faults.faults = published


def _publish_settings_in_schema(app: FastAPI, settings: ServerSettings) -> None:
    """Put this server's own settings (the longest duration, the largest batch, the
    callback URLs it accepts) into its OpenAPI schema, so that what the schema calls valid
    is what the server accepts. The models are shared by every app of the process, so the
    limits go in when the schema is built, through FastAPI's documented way of extending
    it (replacing ``app.openapi``)."""
    build_schema = app.openapi
    callback_pattern = None if settings.plain else callback_url_pattern(settings)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build_schema()
        models = schema["components"]["schemas"]
        start = models.get("StartRequest")  # not under --plain; /start/batch items too
        if start is not None:
            _set_on_branch(start["properties"]["duration_s"], "number",
                           maximum=settings.max_duration_s)  # fmt: skip
            if callback_pattern is not None:
                _set_on_branch(start["properties"]["callback_url"], "string",
                               pattern=callback_pattern)  # fmt: skip
        if "StartBatchRequest" in models:
            models["StartBatchRequest"]["properties"]["jobs"]["maxItems"] = settings.max_batch
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _set_on_branch(field: dict[str, Any], json_type: str, **keywords: object) -> None:
    """Set ``keywords`` on the ``json_type`` branch of an optional field's ``anyOf``."""
    for branch in field["anyOf"]:
        if branch.get("type") == json_type:
            branch.update(keywords)


def create_app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (used by --reload and --workers): settings
    from env/.env. Also gives this process's connection guard its limits, which a worker
    process does not inherit from the command that started it, and releases held
    long-polls as soon as a stop begins, as :func:`server.http.serving.serve` does."""
    from server.http.edge import EdgeLimits, guarded_protocol
    from server.http.serving import release_on_exit_signals

    settings = ServerSettings()
    guarded_protocol(EdgeLimits.from_settings(settings))
    app = create_app(settings)
    with contextlib.suppress(RuntimeError):  # no running loop: not under uvicorn
        release_on_exit_signals(app.state.videosim.store.close)
    return app
