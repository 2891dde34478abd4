"""A watch that waits for its job's final state to be pushed, instead of polling for it.

``stream`` and ``batch`` watches (and ``auto`` when the server offers them, or when the
job was started with this client's webhook) register with the client's ``PushHub`` and
wait. The watch keeps every promise of a polling watch:

- it ends by its deadline: then one last ``GET /status`` says how (``timed_out`` while
  pending, or the final state if it came after all);
- setting ``cancel`` ends it at once with a ``cancelled`` event;
- a stream or webhook watch that has heard nothing ``safety_s`` after the job's earliest
  end is moved to the batch loop (the safety net against a lost push);
- when the hub cannot push at all (no batch route), it goes on as a per-job polling
  watch (``auto``: long-poll, hinted or backoff), the events of which it passes on.

The pushed state becomes one final ``PollEvent`` with reason ``pushed``. Its ``sent`` is
False for a stream or webhook state (no request was made for this job) and True for a
batch answer (``attempt`` then counts the batch requests that named the job).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Callable
from typing import Literal

from client_core.alarms import Alarms
from client_core.capabilities import CapabilityCache
from client_core.channel import Channel
from client_core.events import DelayReason, Outcome, PollEvent, Strategy
from client_core.planner import PollTiming, plan_next_poll
from client_core.policy import BackoffPolicy
from client_core.push_hub import NoState, PushHub, Waiter
from client_core.pushed import NOT_FOUND, PushedState, Route
from client_core.watching import cancelled_event, poll_once, watch_job

PUSH_STRATEGIES = frozenset({Strategy.STREAM, Strategy.BATCH})
DEFAULT_SAFETY_S = 30.0  # a push not come this long after the job's earliest end: ask in batch
OUTCOMES = {"completed": Outcome.COMPLETED, "error": Outcome.ERROR, NOT_FOUND: Outcome.NOT_FOUND}


def known_route(
    hub: PushHub,
    capabilities: CapabilityCache,
    job_id: str,
    strategy: Strategy,
    policy: BackoffPolicy,
) -> Route | Literal["ask"] | None:
    """How a watch of ``strategy`` learns the end of ``job_id``: a push route, None for
    polling it, or ``"ask"`` when only ``GET /capabilities`` can say (``auto``, first time).

    ``auto`` with an attempt budget polls: a budget is a number of status checks (the
    seed client's ``RETRIES``), which only polling has. ``stream`` and ``batch`` have none.
    """
    if strategy is Strategy.AUTO:
        if policy.max_attempts is not None:
            return None
        if hub.has_callback(job_id):
            return Route.WEBHOOK
        offered = capabilities.known
        if offered is None:
            return "ask"
        if offered.events:
            return Route.STREAM
        return Route.BATCH if offered.batch_status else None
    if strategy not in PUSH_STRATEGIES:
        return None
    known = capabilities.known  # asked for explicitly: try it even before we know
    if strategy is Strategy.STREAM and (known is None or known.events):
        return Route.STREAM
    if known is None or known.batch_status:
        return Route.BATCH
    return None


async def choose_route(
    hub: PushHub,
    capabilities: CapabilityCache,
    job_id: str,
    strategy: Strategy,
    policy: BackoffPolicy,
) -> Route | None:
    """``known_route``, asking the server what it offers when that is still unknown."""
    route = known_route(hub, capabilities, job_id, strategy, policy)
    if route != "ask":
        return route
    offered = await capabilities.get()
    if offered.events:
        return Route.STREAM
    return Route.BATCH if offered.batch_status else None


async def watch_pushed(
    channel: Channel,
    hub: PushHub,
    capabilities: CapabilityCache,
    job_id: str,
    policy: BackoffPolicy,
    strategy: Strategy,
    *,
    cancel: asyncio.Event | None,
    timing: PollTiming,
    first_poll_after_s: float | None = None,
    safety_s: float = DEFAULT_SAFETY_S,
) -> AsyncGenerator[PollEvent, None]:
    """Wait for ``job_id``'s pushed final state; poll only when pushing is not possible."""
    clock = channel.clock
    started = clock.now()
    route = known_route(hub, capabilities, job_id, strategy, policy)
    if route == "ask":
        route = await choose_route(hub, capabilities, job_id, strategy, policy)
    asked_for_s = clock.now() - started  # GET /capabilities, once per client
    if route is None:
        if asked_for_s > 0 and policy.deadline_s is not None:
            policy = policy.replace(deadline_s=max(policy.deadline_s - asked_for_s, 0.001))
        polling = watch_job(
            channel, job_id, policy, _polling(strategy), cancel=cancel, timing=timing,
            first_poll_after_s=first_poll_after_s,
        )  # fmt: skip
        async for event in polling:
            yield _later(event, asked_for_s)
        return

    deadline_at = started + (policy.deadline_s or float("inf"))
    due_at = hub.earliest_end(job_id)
    if due_at is None and first_poll_after_s is not None:
        due_at = started + first_poll_after_s
    waiter = hub.follow(job_id, route, due_at=due_at)
    safety_at = (due_at or started) + safety_s if route is not Route.BATCH else None
    stop = _on_cancel(cancel, lambda: waiter)
    try:
        while True:
            wake_at = deadline_at if safety_at is None else min(deadline_at, safety_at)
            got = await _state_or_alarm(hub.alarms, waiter, wake_at)
            if got is NoState.CANCEL or (cancel is not None and cancel.is_set()):
                yield cancelled_event(job_id, 0, "", clock.now() - started, strategy)
                return
            if isinstance(got, PushedState):
                yield _pushed(got, clock.now() - started, strategy)
                return
            if got is NoState.POLL:
                break  # no push route left for this job
            if safety_at is not None and clock.now() < deadline_at:
                # The safety net: nothing pushed long after the job could end; ask in batch.
                safety_at = None
                hub.unfollow(job_id, waiter)
                waiter = hub.follow(job_id, Route.BATCH, due_at=clock.now())
                continue
            yield await _last_look(channel, job_id, policy, started, strategy, timing)
            return
    finally:
        hub.unfollow(job_id, waiter)
        if stop is not None:
            stop.cancel()
    # Per-job polling for the time left; its events keep counting from this watch's start.
    offset = clock.now() - started
    left = max(deadline_at - clock.now(), 0.001)
    polling = watch_job(
        channel, job_id, policy.replace(deadline_s=left), Strategy.AUTO, cancel=cancel,
        timing=timing,
    )  # fmt: skip
    async for event in polling:
        yield _later(event, offset)


def _later(event: PollEvent, offset_s: float) -> PollEvent:
    """A delegated watch's event, its elapsed time counted from this watch's start."""
    return dataclasses.replace(event, elapsed_s=event.elapsed_s + offset_s) if offset_s else event


def _polling(strategy: Strategy) -> Strategy:
    return Strategy.AUTO if strategy in PUSH_STRATEGIES else strategy


async def _state_or_alarm(alarms: Alarms, waiter: Waiter, wake_at: float) -> PushedState | NoState:
    """The pushed state, or ``NoState.TIME`` at ``wake_at``: no task per watch, one alarm."""
    if not waiter.done():
        alarm = alarms.call_at(wake_at, lambda: _settle(waiter, NoState.TIME))
        try:
            await waiter
        finally:
            alarm.cancel()
    return waiter.result()


def _on_cancel(
    cancel: asyncio.Event | None, current: Callable[[], Waiter]
) -> asyncio.Task[Literal[True]] | None:
    """Settle the watch's current waiter with ``NoState.CANCEL`` when ``cancel`` is set."""
    if cancel is None:
        return None
    stop = asyncio.ensure_future(cancel.wait())

    def cancelled(_: object) -> None:
        if cancel.is_set():
            _settle(current(), NoState.CANCEL)

    stop.add_done_callback(cancelled)
    return stop


def _settle(waiter: Waiter, why: NoState) -> None:
    if not waiter.done():
        waiter.set_result(why)


async def _last_look(
    channel: Channel,
    job_id: str,
    policy: BackoffPolicy,
    started: float,
    strategy: Strategy,
    timing: PollTiming,
) -> PollEvent:
    """At the deadline: one status request decides how the watch ends."""
    answer = await poll_once(channel, job_id, channel.status_path(job_id), None, None)
    elapsed = channel.clock.now() - started
    plan = plan_next_poll(
        answer,
        attempt=1,
        elapsed_s=max(elapsed, policy.deadline_s or elapsed),
        policy=policy,
        strategy=Strategy.AUTO,
        rng=policy.rng(),
        timing=timing,
    )
    return PollEvent(
        job_id=job_id,
        attempt=1,
        status=answer.result,
        outcome=plan.outcome or Outcome.TIMED_OUT,
        next_delay_s=None,
        reason=DelayReason.FINAL,
        elapsed_s=elapsed,
        strategy=strategy,
        http_status=answer.http_status,
        error=answer.error,
        eta_s=answer.eta_s,
        progress=answer.progress,
        sent=answer.sent,
    )


def _pushed(state: PushedState, elapsed_s: float, strategy: Strategy) -> PollEvent:
    by = {Route.STREAM: Strategy.STREAM, Route.BATCH: Strategy.BATCH}.get(state.route, strategy)
    not_found = state.result == NOT_FOUND
    return PollEvent(
        job_id=state.job_id,
        attempt=state.carried_by if state.route is Route.BATCH else 1,
        status="" if not_found else state.result,
        outcome=OUTCOMES[state.result],
        next_delay_s=None,
        reason=DelayReason.PUSHED,
        elapsed_s=elapsed_s,
        strategy=by,
        http_status=404 if not_found else 200,
        error="Job not found" if not_found else None,
        sent=state.route is Route.BATCH,
    )
