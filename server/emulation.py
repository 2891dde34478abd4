"""The server playing another job API, from the same profile file the client reads.

``videosim-server --profile replicate`` adds that API's start and status routes to the
app. Jobs are today's jobs (the same store, clock, seed, faults and record); only the
shape differs: the profile's routes and answer shapes, its state names (each pending
state takes an equal share of the job's duration), its auth header (401 without it),
``Retry-After`` on pending answers where the API sends one, and its way of handing over
the status URL (a field, or ``Operation-Location``). The documented example answers of
each API (tests/fixtures/profiles/) are what keeps this emulation and the client honest.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api_profiles import Phase, Profile, write_pointer
from server.faults import FaultInjector, retry_after_header
from server.http.identity import api_key_accepted, identity
from server.jobs.clock import Clock
from server.jobs.job import Job, JobLimitReached
from server.settings import ServerSettings
from server.stores.base import JobStore, StoreUnavailable

NOT_FOUND = "job not found"


class Emulated(Protocol):
    """What the emulated routes use of the app's state."""

    settings: ServerSettings
    clock: Clock
    store: JobStore
    faults: FaultInjector


def state_name(profile: Profile, job: Job, now: float) -> str:
    """The profile's name for ``job``'s state at ``now``."""
    result = job.result_at(now)
    states = profile.status.states
    if result == "completed":
        return states[Phase.COMPLETED][0]
    if result == "error":
        return (states.get(Phase.ERROR) or states[Phase.COMPLETED])[0]
    pending = profile.emulation.pending or states[Phase.PENDING][:1]
    if not math.isfinite(job.finishes_at) or job.duration_s <= 0:
        return pending[-1]
    share = (now - job.created_at) / job.duration_s
    return pending[min(len(pending) - 1, max(0, int(share * len(pending))))]


def answer(profile: Profile, job: Job, now: float, status_url: str) -> dict[str, Any]:
    """The job as this API shows it: the profile's fields, its id, state and status URL."""
    body = copy.deepcopy(profile.emulation.answer)
    start, status = profile.start, profile.status
    if start.id is not None:
        write_pointer(body, start.id, job.job_id)
    if start.status_url is not None:
        write_pointer(body, start.status_url, status_url)
    state = state_name(profile, job, now)
    write_pointer(body, status.state, state)
    if status.progress is not None and math.isfinite(job.finishes_at) and job.duration_s > 0:
        done = min(1.0, max(0.0, (now - job.created_at) / job.duration_s))
        write_pointer(body, status.progress, round(done * status.progress_scale, 2))
    if status.error is not None and status.phase_of(state) is Phase.ERROR:
        write_pointer(body, status.error, "the emulated job failed")
    return body


def emulation_router(profile: Profile) -> APIRouter:
    """The start and status routes of ``profile``'s API."""
    router = APIRouter(tags=[f"{profile.name} (emulated)"])
    start, status = profile.start, profile.status

    def refused(request: Request, server: Emulated) -> JSONResponse | None:
        auth = profile.auth
        if auth is None:
            return None
        given = request.headers.get(auth.header, "")
        key = given.removeprefix(f"{auth.scheme} ") if auth.scheme else given
        if not key or (auth.scheme and not given.startswith(f"{auth.scheme} ")):
            return _error(401, f"missing {auth.header} header")
        if not api_key_accepted(server.settings.api_key, key):
            return _error(401, f"invalid key in {auth.header}")
        return None

    async def turned_away(request: Request, server: Emulated) -> JSONResponse | None:
        fault = await server.faults.turn_away(identity(None, None, request.scope))
        return None if fault is None else _error(fault.code, fault.detail, fault.headers)

    def status_url(request: Request, job_id: str) -> str:
        return str(request.base_url).rstrip("/") + profile.status_path(job_id)

    async def start_job(request: Request) -> JSONResponse:
        server: Emulated = request.app.state.videosim
        if (early := refused(request, server) or await turned_away(request, server)) is not None:
            return early
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        try:
            started = await server.store.create_many([(None, "random")])
        except JobLimitReached as error:
            wait = await server.store.seconds_until_room(1)
            return _error(503, str(error), {"Retry-After": retry_after_header(wait)})
        except StoreUnavailable:
            return _error(503, "job store unavailable", {"Retry-After": "1"})
        job = started.jobs[0]
        url = status_url(request, job.job_id)
        headers = {}
        if start.status_url_header is not None:
            headers[start.status_url_header] = url
        if profile.emulation.retry_after_s is not None:
            headers["Retry-After"] = str(profile.emulation.retry_after_s)
        content = answer(profile, job, server.clock.now(), url)
        return JSONResponse(content, status_code=start.accepted[0], headers=headers)

    async def job_status(request: Request, job_id: str) -> JSONResponse:
        server: Emulated = request.app.state.videosim
        if (early := refused(request, server) or await turned_away(request, server)) is not None:
            return early
        store, clock = server.store, server.clock
        try:
            job = await store.get(job_id)
            if job is None:
                return _error(404, NOT_FOUND)
            hold_s = _hold_asked(profile, request)
            if hold_s > 0:
                await store.wait_until_settled(job, min(hold_s, server.settings.long_poll_max_s))
            now = clock.now()
            # the record notes a Retry-After only where this API sends one
            hints = server.settings.hints and profile.emulation.retry_after_s is not None
            await store.record_poll(job, now, hints)
        except StoreUnavailable:
            return _error(503, "job store unavailable", {"Retry-After": "1"})
        headers = {}
        retry_after = profile.emulation.retry_after_s
        pending = job.result_at(now) == "pending"
        if pending and retry_after is not None and server.settings.hints:
            left = job.finishes_at - now
            headers["Retry-After"] = str(max(1, min(retry_after, math.ceil(left))))
        return JSONResponse(answer(profile, job, now, status_url(request, job_id)), headers=headers)

    router.add_api_route(start.path, start_job, methods=[start.method],
                         summary=f"Start a job ({profile.title})")  # fmt: skip
    router.add_api_route(status.path.replace("{id}", "{job_id}"), job_status, methods=["GET"],
                         summary=f"A job's state ({profile.title})")  # fmt: skip
    return router


def _hold_asked(profile: Profile, request: Request) -> float:
    """The seconds a status request asks to be held, by the profile's long-poll."""
    long_poll = profile.long_poll
    if long_poll is None:
        return 0.0
    raw = (
        request.query_params.get(long_poll.query)
        if long_poll.query is not None
        else request.headers.get(long_poll.header or "")
    )
    if not raw:
        return 0.0
    prefix, _, suffix = long_poll.value.partition("{seconds}")
    raw = raw.strip().removeprefix(prefix).removesuffix(suffix)
    try:
        seconds = float(raw)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _error(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": detail}}, code, headers=headers)
