"""The watch loop: poll one job until it ends, one ``PollEvent`` per poll.

*When* to poll is decided by ``planner.plan_next_poll`` (pure, tested on its own);
this loop sends the polls (background lane), keeps the long-poll hold count, and
does the waiting on the injected clock. Every watch has a deadline: the policy's,
else the client's default, so no server answer (or silence) can hold it forever.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator

import httpx

from client_core.admission import Lane
from client_core.answers import JobStatus, describe_transport_error, gave_up_because, read_status
from client_core.channel import Channel, CircuitOpen
from client_core.events import DelayReason, Outcome, PollEvent, Strategy
from client_core.planner import AnswerKind, PollAnswer, PollTiming, plan_next_poll
from client_core.policy import BackoffPolicy
from client_core.racing import run_unless

MIN_REQUEST_TIMEOUT_S = 0.1  # a request near the deadline still gets this long


async def watch_job(
    channel: Channel,
    job_id: str,
    policy: BackoffPolicy,
    strategy: Strategy,
    *,
    cancel: asyncio.Event | None,
    timing: PollTiming,
    first_poll_after_s: float | None = None,
) -> AsyncGenerator[PollEvent, None]:
    """Poll ``job_id`` until it ends; the last event has ``outcome`` set.

    ``first_poll_after_s``: the job cannot end before this (its start answer said
    so), so the first poll waits for it (capped by the deadline) instead of asking
    at once to learn what is already known.
    Setting ``cancel`` ends the watch at once with a final CANCELLED event.
    Cancelling the consuming task just stops it (the CancelledError propagates).
    """
    path = channel.status_path(job_id)
    clock = channel.clock
    admission = channel.admission
    breaker = channel.breaker
    rng = policy.rng()
    started = clock.now()
    attempt = 0
    checks = 0  # polls that spent the attempt budget (answered with a job state)
    seen_pending = False  # an answer said "pending" before the current one
    previous_delay: float | None = None
    hold_s: float | None = None
    status = ""
    timed_by = strategy  # the strategy that timed the request in flight
    if first_poll_after_s is not None and first_poll_after_s > 0:
        wait = min(first_poll_after_s + timing.hint_margin_s, policy.time_left(0.0) or math.inf)
        await run_unless(clock.sleep(wait), cancel)
        if cancel is not None and cancel.is_set():
            yield cancelled_event(job_id, 0, status, clock.now() - started, timed_by)
            return
    try:
        while True:
            attempt += 1
            time_left = policy.time_left(clock.now() - started)
            request = poll_once(channel, job_id, path, hold_s, time_left)
            finished, polled = await run_unless(request, cancel)
            if not finished or polled is None:
                yield cancelled_event(job_id, attempt, status, clock.now() - started, timed_by)
                return
            answer = polled
            if hold_s is not None:
                hold_s = None
                admission.release_hold()
            answered_at = clock.now()
            status = answer.result
            checks += answer.is_check
            plan = plan_next_poll(
                answer,
                attempt=attempt,
                checks=checks,
                seen_pending=seen_pending,
                elapsed_s=answered_at - started,
                policy=policy,
                strategy=strategy,
                rng=rng,
                previous_delay_s=previous_delay,
                long_poll_max_s=channel.long_poll_max_s,
                hold_slot_free=admission.hold_slot_free,
                circuit_open=breaker.is_open,
                timing=timing,
            )
            previous_delay = plan.scheduled_s
            seen_pending = seen_pending or answer.kind is AnswerKind.PENDING
            if plan.hold_s is not None:
                hold_s = plan.hold_s
                admission.take_hold()
            yield PollEvent(
                job_id=job_id,
                attempt=attempt,
                status=answer.result,
                outcome=plan.outcome,
                next_delay_s=plan.delay_s,
                reason=plan.reason,
                elapsed_s=answered_at - started,
                strategy=plan.strategy if plan.outcome is None else timed_by,
                http_status=answer.http_status,
                error=_final_error(answer, plan.outcome, policy, answered_at - started),
                eta_s=answer.eta_s,
                progress=answer.progress,
                sent=answer.sent,
            )
            if plan.outcome is not None:
                return
            timed_by = plan.strategy
            wake_at = answered_at + (plan.delay_s or 0.0)
            # While the circuit is open, wake as soon as it closes, not at the schedule.
            wake_early = breaker.closed if plan.reason is DelayReason.CIRCUIT_OPEN else None
            await run_unless(clock.sleep(wake_at - clock.now()), cancel, wake_early)
            if cancel is not None and cancel.is_set():
                yield cancelled_event(job_id, attempt, status, clock.now() - started, timed_by)
                return
    finally:
        if hold_s is not None:
            admission.release_hold()


async def poll_once(
    channel: Channel, job_id: str, path: str, hold_s: float | None, time_left: float | None
) -> PollAnswer:
    """One status request, classified once; transport failures become answers too."""
    try:
        job = await fetch_status(channel, job_id, path, hold_s, time_left, gated=True)
    except CircuitOpen:
        return PollAnswer(AnswerKind.SHORT_CIRCUIT, error=channel.breaker.short_circuit())
    except httpx.RequestError as exc:
        return PollAnswer(AnswerKind.NO_ANSWER, error=describe_transport_error(exc))
    return PollAnswer(
        job.kind,
        http_status=job.http_status,
        result=job.result,
        eta_s=job.eta_s,
        progress=job.progress,
        retry_after_s=job.retry_after_s,
        error=job.error,
    )


async def fetch_status(
    channel: Channel,
    job_id: str,
    path: str,
    hold_s: float | None,
    time_left: float | None = None,
    *,
    gated: bool = False,
    lane: Lane = Lane.BACKGROUND,
) -> JobStatus:
    """``GET /status/{id}`` (``?wait=`` when holding); raises ``httpx.RequestError``.

    The read timeout runs on top of a hold (the server may keep the answer for all
    of it), and never past the watch's deadline by more than the hold.
    """
    params = headers = None
    protocol = channel.protocol
    read_timeout = channel.read_timeout_s
    if time_left is not None:
        read_timeout = max(MIN_REQUEST_TIMEOUT_S, min(read_timeout, time_left))
    if hold_s is not None:
        hold_s = max(0.0, hold_s)
        if protocol is None:
            params = {"wait": f"{hold_s:.3f}"}
        else:
            params, headers = protocol.hold(hold_s)
        read_timeout += hold_s
        channel.stats.long_polls_sent += 1
    timeout_s = None if read_timeout == channel.read_timeout_s else read_timeout
    response = await channel.send(
        "GET", path, lane=lane, params=params, headers=headers, timeout_s=timeout_s, gated=gated
    )
    if protocol is None:
        job = read_status(response, job_id, max_pause_s=channel.max_server_pause_s)
    else:
        job = protocol.read_status(response, job_id, channel.max_server_pause_s)
    if job.http_status == 429 and job.retry_after_s is not None:
        channel.admission.pause.pause_for(job.retry_after_s)  # per client: everyone waits
    if job.http_status == 200:
        channel.long_poll_max_s = job.long_poll_max_s
    return job


def _final_error(
    answer: PollAnswer, outcome: Outcome | None, policy: BackoffPolicy, elapsed_s: float
) -> str | None:
    """The event's error; a watch given up on a refusal says why it stopped."""
    if outcome is not None and answer.kind is AnswerKind.RETRY:
        time_left = policy.time_left(elapsed_s)
        return f"{answer.error}{gave_up_because(answer.retry_after_s, time_left)}"
    return answer.error


def cancelled_event(
    job_id: str, attempt: int, status: str, elapsed_s: float, strategy: Strategy
) -> PollEvent:
    """The last event of a watch its caller cancelled (polled or pushed)."""
    return PollEvent(
        job_id=job_id,
        attempt=attempt,
        status=status,
        outcome=Outcome.CANCELLED,
        next_delay_s=None,
        reason=DelayReason.FINAL,
        elapsed_s=elapsed_s,
        strategy=strategy,
        sent=False,
    )
