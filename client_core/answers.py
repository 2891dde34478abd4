"""Reading the server's answers: each HTTP response is parsed and classified once, here.

Everything downstream (the planner, the watch loop, ``start``) works on the values
built here, never on raw responses. Every pause the server advises (``Retry-After``,
``X-Long-Poll-Max``) is capped at the client's ``max_server_pause_s`` on the way in,
so a ``Retry-After: 999999999`` cannot stall anything.
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx

from client_core.errors import MalformedAnswer
from client_core.planner import AnswerKind
from client_core.protocol import FINAL_RESULTS, HEALTHY_STATUSES, KNOWN_RESULTS, LONG_POLL_HEADER

RETRYABLE_HTTP = frozenset({408, 425, 429})  # plus every 5xx: "come back later"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One answer to ``GET /status/{id}``, whatever its HTTP status, classified."""

    job_id: str
    result: str  # "pending" | "completed" | "error"; "" when the answer held no job state
    eta_s: float | None = None
    progress: float | None = None
    http_status: int = 200
    retry_after_s: float | None = None  # capped at the client's max_server_pause_s
    long_poll_max_s: float | None = None  # from X-Long-Poll-Max; None = not offered
    detail: str | None = None  # the server's message on a non-200 answer
    kind: AnswerKind = AnswerKind.PENDING  # what the answer means for the watch
    error: str | None = None  # one line for the event, when the answer is not a job state

    @property
    def final(self) -> bool:
        return self.kind is AnswerKind.FINISHED


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """``GET /healthz``, never raising: ``ok`` False carries the reason in ``error``."""

    ok: bool
    latency_s: float | None = None
    error: str | None = None
    long_poll_max_s: float | None = None
    hints: bool | None = None
    jobs: int | None = None
    degraded: bool = False  # answering, but at its job cap (starts get 503)
    key_refused: bool = False  # answered 401/403: no use going on without the right key
    health_route: bool = True  # False: an original-API server, probed via the special job


def read_status(response: httpx.Response, job_id: str, *, max_pause_s: float) -> JobStatus:
    """Classify one status answer: finished, pending, not found, retry, rejected, malformed."""
    code = response.status_code
    if code != 200:
        retry_after = retry_after_s(response, max_pause_s)
        message = detail(response)
        if code == 404:
            kind = AnswerKind.NOT_FOUND
        elif is_retryable(code):
            kind = AnswerKind.RETRY
        else:
            kind = AnswerKind.REJECTED
        return JobStatus(
            job_id=job_id,
            result="",
            http_status=code,
            retry_after_s=retry_after,
            detail=message,
            kind=kind,
            error=f"HTTP {code}: {message}",
        )
    long_poll = long_poll_max_s(response, max_pause_s)
    try:
        body = json_object(response)
    except MalformedAnswer as exc:
        return _malformed(job_id, str(exc), long_poll)
    result = body.get("result")
    if result not in KNOWN_RESULTS:
        return _malformed(job_id, f"unknown result {result!r}", long_poll)
    return JobStatus(
        job_id=job_id,
        result=str(result),
        eta_s=float_or_none(body.get("eta_s")),
        progress=float_or_none(body.get("progress")),
        long_poll_max_s=long_poll,
        kind=AnswerKind.FINISHED if result in FINAL_RESULTS else AnswerKind.PENDING,
    )


def read_health(response: httpx.Response, latency_s: float, max_pause_s: float) -> HealthCheck:
    if response.status_code != 200:
        return HealthCheck(
            ok=False,
            latency_s=latency_s,
            error=f"HTTP {response.status_code}: {detail(response)}",
        )
    try:
        body = json_object(response)
    except MalformedAnswer as exc:
        return HealthCheck(ok=False, latency_s=latency_s, error=str(exc))
    status = body.get("status")
    long_poll = float_or_none(body.get("long_poll_max_s"))
    hints = body.get("hints")
    jobs = body.get("jobs")
    return HealthCheck(
        ok=status in HEALTHY_STATUSES,
        latency_s=latency_s,
        error=None if status in HEALTHY_STATUSES else f"server status {status!r}",
        long_poll_max_s=min(long_poll, max_pause_s) if long_poll and long_poll > 0 else None,
        hints=hints if isinstance(hints, bool) else None,
        jobs=jobs if isinstance(jobs, int) and not isinstance(jobs, bool) else None,
        degraded=status == "degraded",
    )


@dataclass(frozen=True, slots=True)
class StartedJob:
    """What a start answer says: the id, and the duration when the server tells it."""

    job_id: str
    duration_s: float | None = None


def read_started(item: object, where: str) -> StartedJob:
    """One started job of a start answer; ``MalformedAnswer`` if it has no ``job_id``."""
    job_id = item.get("job_id") if isinstance(item, dict) else None
    if not isinstance(job_id, str) or not job_id:
        raise MalformedAnswer(f"cannot start a job: {where} had no job_id", http_status=200)
    assert isinstance(item, dict)
    duration = float_or_none(item.get("duration_s"))
    return StartedJob(job_id, duration if duration is not None and duration >= 0 else None)


def read_batch_started(response: httpx.Response, expected: int) -> list[StartedJob]:
    """The jobs of a ``POST /start/batch`` answer, in request order."""
    jobs = json_object(response).get("jobs")
    if not isinstance(jobs, list) or len(jobs) != expected:
        raise MalformedAnswer(
            f"cannot start jobs: the batch answer did not list {expected} jobs", http_status=200
        )
    return [read_started(item, "the batch answer") for item in jobs]


def is_retryable(code: int) -> bool:
    return code in RETRYABLE_HTTP or code >= 500


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise MalformedAnswer(
            f"malformed answer: HTTP {response.status_code} body is not JSON",
            http_status=response.status_code,
        ) from None
    if not isinstance(body, dict):
        raise MalformedAnswer(
            f"malformed answer: HTTP {response.status_code} body is not a JSON object",
            http_status=response.status_code,
        )
    return body


def detail(response: httpx.Response) -> str:
    """The server's message: FastAPI's ``detail`` (a string or a list of field errors),
    or the ``error`` object most other job APIs answer with (``{"message": ...}``)."""
    try:
        body = response.json()
        found = body.get("detail")
        error = body.get("error")
    except (ValueError, AttributeError):
        found = error = None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    if isinstance(found, str):
        return found
    if isinstance(found, list):
        parts = []
        for item in found:
            if isinstance(item, dict):
                where = [str(p) for p in item.get("loc", []) if p not in ("body", "query", "path")]
                field, message = ".".join(where), str(item.get("msg"))
                named = field and not message.startswith(f"{field}:")  # ours name it already
                parts.append(f"{field}: {message}" if named else message)
        if parts:
            return "; ".join(parts)
    return response.reason_phrase or f"HTTP {response.status_code}"


def float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def retry_after_s(response: httpx.Response, max_pause_s: float) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), capped."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    seconds = float_or_none(raw.strip())
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(0.0, seconds), max_pause_s)


def long_poll_max_s(response: httpx.Response, max_pause_s: float) -> float | None:
    """The server's advertised long-poll hold (capped); None when not offered."""
    value = float_or_none(response.headers.get(LONG_POLL_HEADER))
    return min(value, max_pause_s) if value is not None and value > 0 else None


def describe_transport_error(exc: httpx.RequestError) -> str:
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


def _malformed(job_id: str, why: str, long_poll: float | None) -> JobStatus:
    return JobStatus(
        job_id=job_id,
        result="",
        long_poll_max_s=long_poll,
        kind=AnswerKind.MALFORMED,
        error=why if why.startswith("malformed answer") else f"malformed answer: {why}",
    )


def gave_up_because(retry_after_s: float | None, time_left: float | None) -> str:
    """Why retrying stopped: the deadline came, or the server asked for a pause that would
    end past it (then the deadline has not come yet, and saying so would mislead)."""
    if retry_after_s and time_left is not None and 0 < time_left < retry_after_s:
        return (
            f", Retry-After {retry_after_s:g}s (gave up: the server asked to wait longer "
            f"than the {time_left:.3g}s left before the deadline)"
        )
    after = f", Retry-After {retry_after_s:g}s" if retry_after_s else ""
    return f"{after} (gave up at the deadline)"
