"""POST /subscriptions and friends: a named set of jobs for GET /events?subscription=.

A subscription lives in the job store, so any worker of a shared store (or a durable
server after a restart) can serve its stream. It expires ``retention_s`` after the last
stream let go of it. Ids the server does not know are reported and not added. A caller
past its quota gets 429 (the app turns :class:`SubscriptionQuotaExceeded` into it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from server.http.identity import caller_identity
from server.models import ErrorMessage, list_too_long
from server.push.batch_status import id_list_body_cap
from server.push.models import SubscriptionCreated, SubscriptionExtended, SubscriptionRequest
from server.settings import ServerSettings
from server.stores.base import JobStore, SubscriptionQuota

SUBSCRIPTION_NOT_FOUND = "Subscription not found"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": SUBSCRIPTION_NOT_FOUND}
}
_OVER_QUOTA: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorMessage,
        "description": "The caller holds as many subscriptions or subscribed ids as allowed",
    }
}


def subscriptions_router(settings: ServerSettings) -> APIRouter:
    router = APIRouter()
    body_cap = id_list_body_cap(settings)

    @router.post(
        "/subscriptions",
        status_code=201,
        responses=_OVER_QUOTA,
        summary="Name a set of jobs for GET /events?subscription=",
        max_body_size=body_cap,
    )
    async def create_subscription(
        request: Request, body: SubscriptionRequest
    ) -> SubscriptionCreated:
        store, known, unknown = await _split(request, body)
        subscription_id = await store.create_subscription(known, _quota(request))
        return SubscriptionCreated(subscription_id=subscription_id, unknown=unknown)

    @router.post(
        "/subscriptions/{subscription_id}/jobs",
        responses={**_NOT_FOUND, **_OVER_QUOTA},
        summary="Add jobs to a subscription (open streams pick them up)",
        max_body_size=body_cap,
    )
    async def extend_subscription(
        subscription_id: str, request: Request, body: SubscriptionRequest
    ) -> SubscriptionExtended:
        store, known, unknown = await _split(request, body)
        if not await store.extend_subscription(subscription_id, known, _quota(request)):
            raise HTTPException(404, SUBSCRIPTION_NOT_FOUND)
        await request.app.state.videosim.streams.subscription_extended(subscription_id, known)
        return SubscriptionExtended(unknown=unknown)

    @router.delete(
        "/subscriptions/{subscription_id}",
        status_code=204,
        response_class=Response,
        responses=_NOT_FOUND,
        summary="Forget a subscription (its streams get an error event and close)",
    )
    async def delete_subscription(subscription_id: str, request: Request) -> Response:
        store: JobStore = request.app.state.videosim.store
        if not await store.delete_subscription(subscription_id):
            raise HTTPException(404, SUBSCRIPTION_NOT_FOUND)
        request.app.state.videosim.streams.subscription_deleted(subscription_id)
        return Response(status_code=204)

    return router


def _quota(request: Request) -> SubscriptionQuota:
    settings: ServerSettings = request.app.state.videosim.settings
    return SubscriptionQuota(
        owner=caller_identity(request),
        max_subscriptions=settings.max_subscriptions_per_client,
        max_ids=settings.max_subscribed_ids_per_client,
    )


async def _split(
    request: Request, body: SubscriptionRequest
) -> tuple[JobStore, list[str], list[str]]:
    """The store, and the body's ids split into known and unknown (or a 422 if too many)."""
    state = request.app.state.videosim
    limit = state.settings.max_batch_status
    if len(body.job_ids) > limit:
        raise list_too_long("job_ids", limit, len(body.job_ids))
    store: JobStore = state.store
    ids = list(dict.fromkeys(body.job_ids))
    found = await store.get_many(ids)
    known = [job_id for job_id, job in zip(ids, found, strict=True) if job is not None]
    unknown = [job_id for job_id, job in zip(ids, found, strict=True) if job is None]
    return store, known, unknown
