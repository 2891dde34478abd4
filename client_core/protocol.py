"""The fixed names of the videosim HTTP API, and building request paths from them."""

from __future__ import annotations

from urllib.parse import quote

import httpx

DEFAULT_SERVER_URL = "http://127.0.0.1:7999"
SPECIAL_JOB_ID = "special-pending-job"  # always pending, on every server of this API

FINAL_RESULTS = frozenset({"completed", "error"})
KNOWN_RESULTS = FINAL_RESULTS | {"pending"}
HEALTHY_STATUSES = frozenset({"ok", "degraded"})  # degraded: at the job cap, still answering

IDEMPOTENCY_HEADER = "Idempotency-Key"
LONG_POLL_HEADER = "X-Long-Poll-Max"
CLIENT_ID_HEADER = "X-Client-Id"  # groups the jobs a client started, for GET /events?all=true

# Push (absent from an original-API or --plain server: each answers 404 there)
CAPABILITIES_PATH = "/capabilities"
EVENTS_PATH = "/events"
BATCH_STATUS_PATH = "/status/batch"


def check_url(base_url: str) -> str:
    """The server URL, normalised; ``ValueError`` with a one-line reason if unusable."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"server URL is not valid: {base_url!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"server URL must look like http://host:port (got {base_url!r})")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"server URL has no valid port (got {base_url!r})")
    return str(url).rstrip("/")


def status_path(job_id: str) -> str:
    return f"/status/{path_id(job_id)}"


def job_record_path(job_id: str) -> str:
    return f"/jobs/{path_id(job_id)}"


def path_id(job_id: str) -> str:
    """A job id made safe for a URL path; ``ValueError`` if it is empty or not a string."""
    if not isinstance(job_id, str) or not job_id.strip():
        raise ValueError(f"job_id must be a non-empty string (got {job_id!r})")
    return quote(job_id, safe="")
