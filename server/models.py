"""The JSON shapes of the HTTP protocol, one pydantic model per request or response body.

They are the single source for validation (a bad body is a 422 naming the field) and for
the OpenAPI schema served at /docs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Result = Literal["pending", "completed", "error"]


def _number_not_bool_or_text(value: Any) -> Any:
    """JSON Schema's integer includes 3.0, but not true or "3"."""
    if isinstance(value, bool | str):
        raise ValueError("Input should be a valid integer")
    return value


WholeNumber = Annotated[int, BeforeValidator(_number_not_bool_or_text)]
# The shortest job: a millisecond. Without a floor, 5e-324 was a valid duration.
MIN_DURATION_S = 0.001
FinalOutcome = Literal["completed", "error"]
#: How a final state reached a client: a status answer (long-polls included), a batch
#: status answer, an event stream, or a webhook the receiver accepted.
DeliveryChannel = Literal["status", "batch", "stream", "webhook"]


class StartRequest(BaseModel):
    """Optional body of POST /start; an empty body means "defaults"."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float | None = Field(
        None,
        ge=MIN_DURATION_S,
        allow_inf_nan=False,
        strict=True,  # a JSON number only: true or "5" are not durations
        description="seconds the job stays pending (default: the server's delay); "
        "at most the server's max_duration_s",
    )
    outcome: Literal["completed", "error", "random"] = Field(
        "random", description="fated final state; random draws error with P = error_rate"
    )
    callback_url: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="POST the final state here when the job ends (loopback hosts only unless "
        "the server allows more)",
    )
    callback_secret: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="signs each callback as Standard Webhooks (webhook-id, "
        "webhook-timestamp, webhook-signature), keyed with the secret's UTF-8 bytes",
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
        description="when the final state first reached a client, by any channel"
    )
    first_final_channel: DeliveryChannel | None = Field(
        description="the channel that delivered it first: a status answer, a batch status "
        "answer, an event stream or an accepted webhook"
    )
    detection_lag_s: float | None = Field(description="first_final_seen_at - finishes_at")


class CallbackAttempt(BaseModel):
    """One webhook delivery attempt for a job."""

    at: float = Field(description="when the attempt was made (epoch seconds)")
    status_code: int | None = Field(description="the receiver's HTTP code; null if none came")
    error: str | None = Field(description="why the attempt failed, if it did")


class JobRecord(JobSummary):
    """GET /jobs/{job_id}: the summary plus the most recent status requests."""

    requests: list[StatusRequestRecord] = Field(
        description="the last status requests (200 unless the server's request_log_length "
        "says otherwise)"
    )
    callbacks: list[CallbackAttempt] = Field(
        default_factory=list, description="webhook delivery attempts, oldest first"
    )


class JobsPage(BaseModel):
    total: int
    offset: int
    limit: int
    jobs: list[JobSummary]


class Capabilities(BaseModel):
    """GET /capabilities: what a client may use on this server."""

    long_poll: bool
    long_poll_max_s: float | None
    hints: bool
    batch_start: bool
    max_batch: int
    batch_status: bool
    max_batch_status: int
    events: bool
    webhooks: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        "ok",
        description="degraded: POST /start answers 503, because the job cap is reached "
        "or the store cannot write (see problem)",
    )
    problem: str | None = Field(None, description="why the server is degraded, when it is")
    jobs: int
    uptime_s: float
    hints: bool
    long_poll_max_s: float
    capabilities: Capabilities | None = Field(
        None, description="what the server offers beyond polling (absent under --plain)"
    )


class Faults(BaseModel):
    """Injected misbehaviour of /start and /status; PUT replaces all of it at once."""

    model_config = ConfigDict(extra="forbid")

    # strict: a JSON number only (true, false or "5" are refused, not read as 1, 0 or 5)
    latency_ms: float = Field(0.0, ge=0, le=60_000, allow_inf_nan=False, strict=True)
    latency_jitter_ms: float = Field(
        0.0,
        ge=0,
        le=60_000,
        allow_inf_nan=False,
        strict=True,
        description="extra latency drawn in [0, this]",
    )
    unavailable_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        strict=True,
        description="share of requests answered 503",
    )
    retry_after_s: WholeNumber = Field(
        1, ge=1, le=3600, description="Retry-After sent with the 503"
    )
    rate_limit_rps: float = Field(
        0.0,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        strict=True,
        description="requests/s allowed per client (its API key, else its IP address); 0 = off",
    )


class ErrorMessage(BaseModel):
    """The body of every 4xx/5xx except 422."""

    detail: str


def list_too_long(field: str, limit: int, count: int) -> RequestValidationError:
    """The 422 for a body list longer than a setting allows, shaped as pydantic's own
    ``too_long`` error (the limit is a setting, so the model cannot declare it)."""
    return RequestValidationError(
        [
            {
                "type": "too_long",
                "loc": ("body", field),
                "msg": f"List should have at most {limit} items, not {count}",
                "input": None,
            }
        ]
    )
