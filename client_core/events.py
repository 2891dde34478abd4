"""What a watch reports: one frozen event per poll, and the final outcome.

The dashboard and the headless runner consume exactly these values; nothing in
``client_core`` prints, so every observable fact about a poll must live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Strategy(StrEnum):
    """How a watch learns that its job ended: polls timed some way, or a pushed state."""

    AUTO = "auto"  # the best the server offers: stream > batch > long-poll > hinted > backoff
    BACKOFF = "backoff"  # the policy's schedule only
    HINTED = "hinted"  # sleep until the server's eta_s (bounded, small jitter)
    LONG_POLL = "long-poll"  # GET /status/{id}?wait=S
    STREAM = "stream"  # one SSE connection (GET /events) per client pushes every final state
    BATCH = "batch"  # one held POST /status/batch per client for all its batch watches


def strategies_used_text(used: Mapping[str, int]) -> str:
    """Watches per strategy that ended them, most first: ``backoff 7, stream 3``."""
    ranked = sorted(used.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ranked)


class Outcome(StrEnum):
    """How a watch ended. ``None`` on an event means the watch goes on."""

    COMPLETED = "completed"
    ERROR = "error"
    NOT_FOUND = "not_found"
    TIMED_OUT = "timed_out"  # attempt budget or deadline spent while still pending
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"  # transport failures until the budget ran out
    REJECTED = "rejected"  # another 4xx: the server refused the request


class DelayReason(StrEnum):
    """Why the next delay is what it is."""

    SCHEDULE = "schedule"  # the backoff policy
    HINT = "hint"  # the server's eta_s
    RETRY_AFTER = "retry-after"  # a 429/503 told us when to come back
    TRANSPORT_ERROR = "transport-error"  # connect/read failure, backoff applies
    LONG_POLL = "long-poll"  # we re-issue a held request at once
    CIRCUIT_OPEN = "circuit-open"  # the shared health gate is holding all watchers
    PUSHED = "pushed"  # the final state came pushed: an SSE event, a batch answer, a webhook
    FINAL = "final"  # no next poll: the watch ended


@dataclass(frozen=True, slots=True)
class PollEvent:
    """One poll of one job, as seen by the client."""

    job_id: str
    attempt: int  # 1-based count of polls for this job (the budget unit; see ``sent``)
    status: str  # "pending", "completed", "error", or "" when no answer arrived
    outcome: Outcome | None  # set on the last event of a watch only
    next_delay_s: float | None  # None once the watch has ended
    reason: DelayReason
    elapsed_s: float  # since the watch began
    strategy: Strategy  # the strategy that timed the next poll (final event: this poll)
    http_status: int | None = None  # None when the request never got an answer
    error: str | None = None  # transport error text or the server's message
    eta_s: float | None = None  # the server's hint, when it gave one
    progress: float | None = None  # the server's hint, 0..1, when it gave one
    sent: bool = True  # False when the open health gate answered locally (no request)

    @property
    def final(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True, slots=True)
class WatchResult:
    """The end of a watch: what ``wait()`` returns."""

    job_id: str
    outcome: Outcome
    attempts: int
    elapsed_s: float
    last_error: str | None = None
    requests: int = 0  # status requests actually sent (attempts minus short-circuited ones)
