"""The JSON shapes of the push protocol: batch status and subscriptions.

Kept apart from :mod:`server.models` (the polling protocol) so that a reader of one sees
only what that protocol needs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from server.models import Result

JobId = str


class BatchStatusRequest(BaseModel):
    """Body of POST /status/batch: up to the server's max_batch_status ids."""

    model_config = ConfigDict(extra="forbid")

    job_ids: list[JobId] = Field(min_length=1, description="the jobs to report, in this order")
    wait: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        strict=True,
        description="hold the request up to this many seconds (capped by the server's "
        "long_poll_max_s) until one of the jobs is final; then only final jobs are listed",
    )


class BatchStatusItem(BaseModel):
    job_id: str
    result: Result
    eta_s: float | None = Field(description="seconds until the job should finish; null once final")


class BatchStatusResponse(BaseModel):
    jobs: list[BatchStatusItem] = Field(description="known jobs, in request order")
    unknown: list[str] = Field(description="ids the server does not know (or that expired)")


class SubscriptionRequest(BaseModel):
    """Body of POST /subscriptions and POST /subscriptions/{id}/jobs."""

    model_config = ConfigDict(extra="forbid")

    job_ids: list[JobId] = Field(min_length=1, description="the jobs a stream should carry")


class SubscriptionCreated(BaseModel):
    subscription_id: str
    unknown: list[str] = Field(description="ids the server does not know; they were not added")


class SubscriptionExtended(BaseModel):
    unknown: list[str] = Field(description="ids the server does not know; they were not added")


# X-Client-Id: a grouping label for GET /events?all=true, never an identity.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
