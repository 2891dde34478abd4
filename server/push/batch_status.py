"""POST /status/batch: the states of many jobs in one request, optionally held.

Without ``wait`` it answers every known job's state at once. With ``wait`` it is a
long-poll on the whole batch: held on the pending job that finishes first (one
:class:`~server.jobs.long_poll.LongPolls` wait, so one timer however large the batch), then
a few milliseconds more to collect jobs that finish together, and it lists only the final
jobs. Each job is counted in its record as one status request, so requests-per-job
figures stay honest whichever way a client asks.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from server.faults import Rejection
from server.jobs.job import Job
from server.models import list_too_long
from server.push.models import BatchStatusItem, BatchStatusRequest, BatchStatusResponse
from server.settings import ServerSettings
from server.stores.base import JobStore

# Once the first job of a held batch finishes, jobs finishing within this much more are
# answered with it, rather than each costing the client another round trip.
COLLECT_S = 0.005
# A job id is a uuid4 (36 characters); the body cap of this route lets max_batch_status of
# them through with room for quotes, commas and spacing.
BYTES_PER_ID = 64
CLIENT_CLOSED_REQUEST = 499

FaultDependency = Callable[..., Awaitable[Rejection | None]]


def id_list_body_cap(settings: ServerSettings) -> int:
    """The body cap of the routes that take up to max_batch_status job ids (this one and
    the subscription routes): never below the server's ordinary cap."""
    return max(settings.max_body_bytes, settings.max_batch_status * BYTES_PER_ID + 4096)


def push_body_caps(settings: ServerSettings) -> dict[str, int]:
    """Paths (a trailing ``/``: every path under it) whose body cap is larger than
    ``max_body_bytes``, for a cap enforced in front of the routes."""
    cap = id_list_body_cap(settings)
    return {"/status/batch": cap, "/subscriptions": cap, "/subscriptions/": cap}


def batch_status_router(
    settings: ServerSettings, injected_fault: FaultDependency, errors: dict[int | str, Any]
) -> APIRouter:
    """The route, with this server's own body cap (large enough for max_batch_status ids)."""
    router = APIRouter()
    body_cap = id_list_body_cap(settings)

    @router.post(
        "/status/batch",
        response_model=BatchStatusResponse,
        responses=errors,
        summary="Poll many jobs at once, optionally held until one of them is final",
        max_body_size=body_cap,
    )
    async def batch_status(
        request: Request,
        body: BatchStatusRequest,
        fault: Annotated[Rejection | None, Depends(injected_fault)],
    ) -> BatchStatusResponse | Response:
        """Known jobs in request order (with ``wait``: only the final ones); unknown or
        expired ids in ``unknown``. Faults and the API key apply once per request."""
        state = request.app.state.videosim
        settings = state.settings
        if len(body.job_ids) > settings.max_batch_status:
            raise list_too_long("job_ids", settings.max_batch_status, len(body.job_ids))
        if fault is not None:
            raise HTTPException(fault.code, fault.detail, headers=fault.headers)
        store: JobStore = state.store
        found = await store.get_many(body.job_ids)
        known = [job for job in found if job is not None]
        unknown = [job_id for job_id, job in zip(body.job_ids, found, strict=True) if job is None]
        if body.wait is not None:
            hold_s = min(body.wait, state.offers.long_poll_max_s)
            if not await _hold_until_one_is_final(store, known, hold_s, request):
                counted = list({job.job_id: job for job in known}.values())
                for job in counted:
                    await store.record_status_request(
                        job,
                        at=state.clock.now(),
                        code=CLIENT_CLOSED_REQUEST,
                        retry_after_s=None,
                        result=None,
                    )
                return Response(status_code=CLIENT_CLOSED_REQUEST)
        now = state.clock.now()
        hints = state.offers.hints
        await store.record_batch_poll(list({job.job_id: job for job in known}.values()), now,
                                      hints)  # fmt: skip
        items = [_item(job, now, hints) for job in known]
        if body.wait is not None:
            items = [item for item in items if item.result != "pending"]
        return BatchStatusResponse(jobs=items, unknown=unknown)

    return router


def _item(job: Job, now: float, hints: bool) -> BatchStatusItem:
    result = job.result_at(now)
    eta_s = None
    if hints and result == "pending" and job.fails is not None:
        eta_s = round(max(0.0, job.finishes_at - now), 3)
    return BatchStatusItem(job_id=job.job_id, result=result, eta_s=eta_s)


async def _hold_until_one_is_final(
    store: JobStore, jobs: Sequence[Job], hold_s: float, request: Request
) -> bool:
    """Wait until the first of ``jobs`` is final (plus :data:`COLLECT_S` for others that
    finish with it) or ``hold_s`` passes; False if the client hung up meanwhile."""
    now = store.clock.now()
    pending = sorted(
        (job for job in jobs if job.result_at(now) == "pending"), key=lambda job: job.finishes_at
    )
    if hold_s <= 0 or not pending or len(pending) < len(jobs):
        return True  # nothing to wait for, or something is final already
    settled = asyncio.ensure_future(store.wait_until_settled(pending[0], hold_s))
    hung_up = asyncio.ensure_future(_client_disconnected(request))
    try:
        await asyncio.wait((settled, hung_up), return_when=asyncio.FIRST_COMPLETED)
    finally:
        settled.cancel()
        hung_up.cancel()
        await asyncio.gather(settled, hung_up, return_exceptions=True)
    if not hung_up.cancelled():
        return False
    now = store.clock.now()
    if pending[0].result_at(now) != "pending":
        together = [job.finishes_at for job in pending[1:] if job.result_at(now) == "pending"]
        if together and together[0] - now <= COLLECT_S:
            await asyncio.sleep(max(0.0, max(t for t in together if t - now <= COLLECT_S) - now))
    return True


async def _client_disconnected(request: Request) -> None:
    """Returns once the ASGI server reports that the client closed the connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
