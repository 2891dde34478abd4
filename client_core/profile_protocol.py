"""Speaking a job API described by a profile (api_profiles) instead of videosim's own.

The client's strategies, policies, admission and Retry-After handling stay the same; only
the shape of four things changes, and this module is where: the auth header, the start
request and how its answer names the job, the status request (with a hold, when the
profile offers one), and how a status answer maps onto pending / completed / error /
cancelled. A state the profile does not name ends the watch ``rejected`` with the pointer
and the value; so does an answer without a state.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from api_profiles import Phase, Profile, read_pointer
from client_core.answers import (
    JobStatus,
    StartedJob,
    detail,
    float_or_none,
    is_retryable,
    json_object,
    retry_after_s,
)
from client_core.errors import MalformedAnswer
from client_core.planner import AnswerKind

HEALTH_PROBE_ID = "videosim-health-probe"  # a job no API has: any answer means "up"
MAX_REMEMBERED_URLS = 100_000  # status URLs given by start answers, oldest dropped first


class ProfileProtocol:
    """One profile, ready to build requests and read answers."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._status_urls: dict[str, str] = {}  # job id -> the URL its start answer gave

    @property
    def name(self) -> str:
        return self.profile.name

    def auth_headers(self) -> dict[str, str]:
        """The key from the profile's environment variable; none when it is not set (the
        API then answers 401, and the message names the variable)."""
        auth = self.profile.auth
        if auth is None or not (key := os.environ.get(auth.env)):
            return {}
        return {auth.header: f"{auth.scheme} {key}" if auth.scheme else key}

    def missing_key(self) -> str:
        """Why a 401/403 happened, naming the variable (never its value)."""
        auth = self.profile.auth
        if auth is None:
            return f"the API refused the request (profile {self.name} sends no key)"
        state = "is not set" if not os.environ.get(auth.env) else "was refused"
        return f"the API key in ${auth.env} {state} (profile {self.name}, header {auth.header})"

    # -- starting --------------------------------------------------------------------------

    def start_request(self, values: dict[str, object]) -> tuple[str, str, dict[str, Any]]:
        start = self.profile.start
        return start.method, start.path, self.profile.start_body(values)

    def read_started(self, response: httpx.Response) -> StartedJob:
        """The new job's id (and where to poll it); ``MalformedAnswer`` naming the pointer."""
        start = self.profile.start
        body = json_object(response) if response.content else {}
        header_url = response.headers.get(start.status_url_header or "") or None
        if start.id is not None:
            job_id = read_pointer(body, start.id)
            if isinstance(job_id, int) and not isinstance(job_id, bool):
                job_id = str(job_id)
            if not isinstance(job_id, str) or not job_id:
                raise MalformedAnswer(
                    f"cannot start a job: the answer had no id at {start.id} "
                    f"(got {job_id!r}; profile {self.name})",
                    http_status=response.status_code,
                )
        elif header_url:
            job_id = urlsplit(header_url).path.rstrip("/").rsplit("/", 1)[-1]
        else:
            raise MalformedAnswer(
                f"cannot start a job: the answer had no {start.status_url_header} header "
                f"(profile {self.name})",
                http_status=response.status_code,
            )
        url = header_url
        if start.status_url is not None:
            given = read_pointer(body, start.status_url)
            url = given if isinstance(given, str) and given else url
        if url:
            if len(self._status_urls) >= MAX_REMEMBERED_URLS:
                self._status_urls.pop(next(iter(self._status_urls)))
            self._status_urls[job_id] = url
        return StartedJob(job_id)

    # -- watching --------------------------------------------------------------------------

    def status_target(self, job_id: str) -> str:
        """The path (or the absolute URL a start answer gave) to poll ``job_id`` at."""
        return self._status_urls.get(job_id) or self.profile.status_path(job_id)

    def hold(self, hold_s: float) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """The query parameters and headers that ask the API to hold a status request."""
        long_poll = self.profile.long_poll
        if long_poll is None:
            return None, None
        value = long_poll.value.replace("{seconds}", f"{max(0, round(hold_s))}")
        if long_poll.query is not None:
            return {long_poll.query: value}, None
        assert long_poll.header is not None
        return None, {long_poll.header: value}

    @property
    def long_poll_max_s(self) -> float | None:
        return self.profile.long_poll.max_s if self.profile.long_poll else None

    def read_status(self, response: httpx.Response, job_id: str, max_pause_s: float) -> JobStatus:
        """Classify one status answer by the profile: its state's phase, hints, refusals."""
        code = response.status_code
        retry_after = retry_after_s(response, max_pause_s)
        if code >= 300:
            message = detail(response)
            if code in (401, 403):
                kind, message = AnswerKind.REJECTED, f"{message}: {self.missing_key()}"
            elif code == 404:
                kind = AnswerKind.NOT_FOUND
            elif is_retryable(code):
                kind = AnswerKind.RETRY
            else:
                kind = AnswerKind.REJECTED
            return JobStatus(job_id=job_id, result="", http_status=code,
                             retry_after_s=retry_after, detail=message, kind=kind,
                             error=f"HTTP {code}: {message}")  # fmt: skip
        status = self.profile.status
        try:
            body = json_object(response)
        except MalformedAnswer as exc:
            return self._rejected(job_id, code, str(exc))
        state = read_pointer(body, status.state)
        phase = status.phase_of(state)
        if phase is None:
            what = "no state" if state is None else f"state {state!r}"
            return self._rejected(
                job_id, code, f"{what} at {status.state} is not in profile {self.name}"
            )
        progress = float_or_none(read_pointer(body, status.progress)) if status.progress else None
        eta = float_or_none(read_pointer(body, status.eta)) if status.eta else None
        if eta is None and phase is Phase.PENDING and status.retry_after and retry_after:
            eta = retry_after  # "ask again in N s": the hinted strategy's estimate
        error = None
        if phase is Phase.ERROR and status.error:
            found = read_pointer(body, status.error)
            if isinstance(found, dict):  # {"code": ..., "message": ...}
                found = found.get("message", found)
            error = None if found is None else str(found)[:200]
        return JobStatus(
            job_id=job_id,
            result="pending" if phase is Phase.PENDING else str(phase),
            eta_s=eta,
            progress=None if progress is None else progress / status.progress_scale,
            http_status=code,
            long_poll_max_s=min(self.long_poll_max_s, max_pause_s)
            if self.long_poll_max_s
            else None,
            kind=AnswerKind.PENDING if phase is Phase.PENDING else AnswerKind.FINISHED,
            error=error,
        )

    def _rejected(self, job_id: str, code: int, why: str) -> JobStatus:
        return JobStatus(job_id=job_id, result="", http_status=code, detail=why,
                         kind=AnswerKind.REJECTED, error=why)  # fmt: skip
