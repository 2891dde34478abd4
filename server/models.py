"""The JSON shapes of the HTTP protocol, one pydantic model per request or response body.

They are the single source for validation (a bad body is a 422 naming the field) and for
the OpenAPI schema served at /docs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Result = Literal["pending", "completed", "error"]
FinalOutcome = Literal["completed", "error"]


class StartRequest(BaseModel):
    """Optional body of POST /start; an empty body means "defaults"."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="seconds the job stays pending (default: the server's delay); "
        "at most the server's max_duration_s",
    )
    outcome: Literal["completed", "error", "random"] = Field(
        "random", description="fated final state; random draws error with P = error_rate"
    )


class StartResponse(BaseModel):
    job_id: str
    result: Literal["pending"] = "pending"
    duration_s: float
    created_at: float = Field(description="epoch seconds on the server's clock")


class PlainStartResponse(BaseModel):
    """POST /start under --plain: the original simulation answered the id alone."""

    job_id: str


class StartBatchRequest(BaseModel):
    """Body of POST /start/batch: up to the server's max_batch starts, created all or none."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[StartRequest] = Field(
        min_length=1, description="one item per job, each like the body of POST /start"
    )


class StartBatchResponse(BaseModel):
    jobs: list[StartResponse] = Field(description="the created jobs, in request order")


class StatusResponse(BaseModel):
    """eta_s and progress are present only while pending and only when hints are on."""

    job_id: str
    result: Result
    eta_s: float | None = Field(None, description="seconds until the job should finish")
    progress: float | None = Field(None, ge=0, le=1, description="share of the duration gone")


class StatusRequestRecord(BaseModel):
    """One GET /status the server answered for a job."""

    at: float = Field(description="when the server settled the answer (epoch seconds)")
    code: int = Field(description="HTTP status code of the answer")
    retry_after_s: float | None = Field(None, description="Retry-After sent, if any")


class JobSummary(BaseModel):
    """The server's own account of a job, as listed by GET /jobs."""

    job_id: str
    result: Result = Field(description="state right now")
    outcome: FinalOutcome | None = Field(description="fated final state; null for the special job")
    duration_s: float | None
    created_at: float
    finishes_at: float | None
    status_requests: int = Field(description="GET /status calls for this job, faulted included")
    first_final_seen_at: float | None = Field(
        description="when the first status answer showing the final state was given"
    )
    detection_lag_s: float | None = Field(description="first_final_seen_at - finishes_at")


class JobRecord(JobSummary):
    """GET /jobs/{job_id}: the summary plus the most recent status requests."""

    requests: list[StatusRequestRecord] = Field(
        description="the last status requests (200 unless the server's request_log_length "
        "says otherwise)"
    )


class JobsPage(BaseModel):
    total: int
    offset: int
    limit: int
    jobs: list[JobSummary]


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        "ok", description="degraded: the job cap is reached and POST /start answers 503"
    )
    jobs: int
    uptime_s: float
    hints: bool
    long_poll_max_s: float


class Faults(BaseModel):
    """Injected misbehaviour of /start and /status; PUT replaces all of it at once."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0.0, ge=0, le=60_000, allow_inf_nan=False)
    latency_jitter_ms: float = Field(
        0.0, ge=0, le=60_000, allow_inf_nan=False, description="extra latency drawn in [0, this]"
    )
    unavailable_rate: float = Field(
        0.0, ge=0, le=1, allow_inf_nan=False, description="share of requests answered 503"
    )
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After sent with the 503")
    rate_limit_rps: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="requests/s allowed per client (its API key, else its IP address); 0 = off",
    )


class ErrorMessage(BaseModel):
    """The body of every 4xx/5xx except 422."""

    detail: str
