"""A job's final state as the server pushed it (SSE event, batch answer or webhook)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from client_core.answers import float_or_none
from client_core.protocol import FINAL_RESULTS

NOT_FOUND = "not_found"  # the server does not know the job (an SSE "unknown", a batch's unknown)


class Route(StrEnum):
    """How a pushed state reached the client."""

    STREAM = "stream"
    BATCH = "batch"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class PushedState:
    """One job's final state: ``completed``, ``error`` or ``not_found``."""

    job_id: str
    result: str
    route: Route
    finished_at: float | None = None  # the server's clock (epoch seconds), when it said
    carried_by: int = 1  # requests that named the job before it came (batch answers)


@dataclass(frozen=True, slots=True)
class PushWait:
    """How a watch waits for its job's pushed end, for a UI to show that it is alive.

    Times are the client's clock. For ``stream``: when the open connection began (None
    while reconnecting) and when its bytes last arrived, heartbeats included."""

    route: Route
    connected_since: float | None = None
    last_heard_at: float | None = None


def read_pushed(body: object, route: Route) -> PushedState | None:
    """A final state from a pushed JSON object; None if it is not one (pending, malformed)."""
    if not isinstance(body, dict):
        return None
    job_id = body.get("job_id")
    result = body.get("result")
    if not isinstance(job_id, str) or not job_id or result not in FINAL_RESULTS:
        return None
    return PushedState(job_id, str(result), route, float_or_none(body.get("finished_at")))
