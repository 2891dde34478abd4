"""Deciding what follows one poll: stop with an outcome, or wait how long.

This is the whole polling strategy as one pure function, ``plan_next_poll``:
no I/O, no clock, only the answer just received, the policy and an RNG. The
client does the requests and the sleeping; everything a reviewer may want to
check about *when* we poll is here and unit-tested without a server.

Rules, in order:

1. A final answer ends the watch: completed, error, not found, rejected.
2. The attempt budget counts *checks*: polls the server answered with a job
   state (or with something malformed). Once spent, a pending job ends
   ``timed_out`` and a malformed one ``rejected``. Failures (no answer, 429,
   5xx, open circuit) do not spend it: an outage is retried until the
   deadline, not for a few attempts.
3. The deadline, once passed, ends every watch, named by the last answer:
   ``timed_out`` (pending, or refused after the job was seen pending),
   ``rejected`` (the server answered but refused or garbled: 429, 5xx,
   malformed), ``unreachable`` (no answer at all).
4. After a failure (transport error, 5xx, 429, open circuit) the backoff
   schedule applies, but never less than the server's ``Retry-After``.
5. While pending, the strategy decides:
   - ``backoff``: the schedule;
   - ``hinted``: the server's ``eta_s`` plus a small positive margin (never
     more than ``max_delay_s``), else the schedule;
   - ``long-poll``/``auto``: when the server advertised ``X-Long-Poll-Max``
     and a hold slot is free, re-ask at once with ``?wait=`` set to the whole
     cap. A held request costs the client only a connection slot and the
     server answers the moment the job ends, so neither ``max_delay_s`` nor
     the schedule bounds it; the attempt budget still counts requests, so
     ``deadline_s`` is what bounds time;
   - ``auto`` without long-poll is ``hinted``, which itself falls back to the
     schedule when the server gives no ``eta_s``.
6. A deadline shortens the last wait (or hold) so the final poll lands on it.

The small fixed margins around ``eta_s`` and ``Retry-After`` are a
``PollTiming`` value passed in, not module globals, so a caller running on a
scaled clock (the benchmarks) scales them along with everything else.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields, replace
from enum import StrEnum

from client_core.events import DelayReason, Outcome, Strategy
from client_core.policy import BackoffPolicy


@dataclass(frozen=True, slots=True)
class PollTiming:
    """The planner's fixed margins: small extras added to the server's own timing.

    The defaults suit real time. Fields ending in ``_s`` are seconds; the
    ratios are shares of ``eta_s`` or ``Retry-After``. A caller whose clock runs
    faster than real time (a benchmark at 1/10) uses ``scaled(10)`` so a 20 ms
    margin does not count as 200 ms of lag.
    """

    hint_margin_s: float = 0.02  # land just after the server's eta, not just before it
    hint_spread_ratio: float = 0.05  # up to +5% of eta, so jobs due together spread out...
    hint_spread_max_s: float = 0.2  # ...but never more than this much extra lag
    retry_after_spread_ratio: float = 0.1  # after a 429/503: up to +10% of Retry-After...
    retry_after_spread_max_s: float = 0.5  # ...capped, always added (never earlier)

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < 0:
                raise ValueError(f"{field.name} must be a finite number >= 0 (got {value!r})")
            if field.name.endswith("_ratio") and value > 1:
                raise ValueError(f"{field.name} must be between 0 and 1 (got {value!r})")

    def scaled(self, factor: float) -> PollTiming:
        """The same margins on a clock ``factor`` times faster: seconds divided, ratios kept."""
        if not factor > 0:
            raise ValueError(f"factor must be > 0 (got {factor!r})")
        return replace(
            self,
            hint_margin_s=self.hint_margin_s / factor,
            hint_spread_max_s=self.hint_spread_max_s / factor,
            retry_after_spread_max_s=self.retry_after_spread_max_s / factor,
        )


DEFAULT_TIMING = PollTiming()


class AnswerKind(StrEnum):
    """What one poll produced, as far as planning is concerned."""

    FINISHED = "finished"  # 200 with completed/error
    PENDING = "pending"  # 200 with pending
    NOT_FOUND = "not_found"  # 404
    REJECTED = "rejected"  # another 4xx: asking again will not help
    RETRY = "retry"  # answered "come back later": 5xx, 429, 408
    MALFORMED = "malformed"  # answered 200, but not a job state: not JSON, unknown result
    NO_ANSWER = "no_answer"  # transport failure: refused, reset, timed out
    SHORT_CIRCUIT = "short_circuit"  # not sent: the health gate is open


@dataclass(frozen=True, slots=True)
class PollAnswer:
    kind: AnswerKind
    http_status: int | None = None
    result: str = ""  # the job state on a 200, else ""
    eta_s: float | None = None
    progress: float | None = None
    retry_after_s: float | None = None
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.kind is not AnswerKind.SHORT_CIRCUIT

    @property
    def is_check(self) -> bool:
        """Does this answer spend the attempt budget? Only answers that tell a job state."""
        return self.kind in (AnswerKind.PENDING, AnswerKind.MALFORMED)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do next. ``outcome`` set means stop."""

    outcome: Outcome | None
    delay_s: float | None  # wait before the next request; None when stopping
    reason: DelayReason
    strategy: Strategy  # what timed the next request
    hold_s: float | None = None  # long-poll: ask with ?wait=hold_s
    scheduled_s: float | None = None  # the backoff draw, for DECORRELATED's "previous"


def plan_next_poll(
    answer: PollAnswer,
    *,
    attempt: int,
    elapsed_s: float,
    policy: BackoffPolicy,
    strategy: Strategy,
    rng: random.Random,
    previous_delay_s: float | None = None,
    long_poll_max_s: float | None = None,
    hold_slot_free: bool = True,
    circuit_open: bool = False,
    timing: PollTiming = DEFAULT_TIMING,
    checks: int | None = None,
    seen_pending: bool = False,
) -> Plan:
    """Decide what follows poll number ``attempt`` (1-based).

    ``checks`` is how many polls so far spent the budget (see rule 2); it defaults
    to ``attempt`` for callers that count every poll. ``seen_pending``: an earlier
    answer of this watch said "pending" (rule 3).
    """
    final = _final_outcome(answer)
    if final is not None:
        return _stop(final, strategy)

    given_up = _given_up_outcome(answer, seen_pending)
    time_left = policy.time_left(elapsed_s)
    budget_spent = answer.is_check and policy.budget_spent(attempt if checks is None else checks)
    if budget_spent or (time_left is not None and time_left <= 0):
        return _stop(given_up, strategy)

    if answer.kind is AnswerKind.PENDING:
        plan = _plan_pending(
            answer, attempt, policy, strategy, rng, previous_delay_s, long_poll_max_s,
            hold_slot_free, timing,
        )  # fmt: skip
    else:
        plan = _plan_retry(answer, attempt, policy, rng, previous_delay_s, circuit_open, timing)

    if time_left is None:
        return plan
    if plan.reason is DelayReason.RETRY_AFTER and (plan.delay_s or 0) > time_left:
        # We may not ask before Retry-After, and the deadline comes first.
        return _stop(given_up, strategy)
    return Plan(
        outcome=None,
        delay_s=min(plan.delay_s or 0.0, time_left),
        reason=plan.reason,
        strategy=plan.strategy,
        hold_s=None if plan.hold_s is None else min(plan.hold_s, time_left),
        scheduled_s=plan.scheduled_s,
    )


def hint_delay(
    eta_s: float, policy: BackoffPolicy, rng: random.Random, timing: PollTiming = DEFAULT_TIMING
) -> float:
    """Sleep until just after the server's estimate, bounded by ``max_delay_s``."""
    eta_s = max(0.0, eta_s)
    spread = rng.uniform(0.0, min(eta_s * timing.hint_spread_ratio, timing.hint_spread_max_s))
    return min(policy.max_delay_s, eta_s + timing.hint_margin_s + spread)


def retry_after_delay(
    retry_after_s: float, rng: random.Random, timing: PollTiming = DEFAULT_TIMING
) -> float:
    """At least ``Retry-After``, plus a little so a crowd told the same does not return at once."""
    retry_after_s = max(0.0, retry_after_s)
    spread = min(retry_after_s * timing.retry_after_spread_ratio, timing.retry_after_spread_max_s)
    return retry_after_s + rng.uniform(0.0, spread)


def _final_outcome(answer: PollAnswer) -> Outcome | None:
    match answer.kind:
        case AnswerKind.FINISHED:
            if answer.result == "cancelled":  # the API cancelled it (a profile's state)
                return Outcome.CANCELLED
            return Outcome.COMPLETED if answer.result == "completed" else Outcome.ERROR
        case AnswerKind.NOT_FOUND:
            return Outcome.NOT_FOUND
        case AnswerKind.REJECTED:
            return Outcome.REJECTED
    return None


def _given_up_outcome(answer: PollAnswer, seen_pending: bool) -> Outcome:
    """How a watch that gives up ends, named by what the server said last."""
    match answer.kind:
        case AnswerKind.PENDING:
            return Outcome.TIMED_OUT
        case AnswerKind.RETRY if seen_pending:  # still pending, the last poll refused
            return Outcome.TIMED_OUT
        case AnswerKind.RETRY | AnswerKind.MALFORMED:
            return Outcome.REJECTED
    return Outcome.UNREACHABLE


def _stop(outcome: Outcome, strategy: Strategy) -> Plan:
    return Plan(outcome=outcome, delay_s=None, reason=DelayReason.FINAL, strategy=strategy)


def _plan_pending(
    answer: PollAnswer,
    attempt: int,
    policy: BackoffPolicy,
    strategy: Strategy,
    rng: random.Random,
    previous_delay_s: float | None,
    long_poll_max_s: float | None,
    hold_slot_free: bool,
    timing: PollTiming,
) -> Plan:
    scheduled = policy.delay(attempt, previous_delay_s, rng)
    long_poll_offered = long_poll_max_s is not None and long_poll_max_s > 0
    if strategy in (Strategy.AUTO, Strategy.LONG_POLL) and long_poll_offered and hold_slot_free:
        assert long_poll_max_s is not None
        # Hold as long as the server allows (the deadline is applied by the caller).
        return Plan(
            outcome=None,
            delay_s=0.0,
            reason=DelayReason.LONG_POLL,
            strategy=Strategy.LONG_POLL,
            hold_s=long_poll_max_s,
            scheduled_s=scheduled,
        )
    if strategy is not Strategy.BACKOFF and answer.eta_s is not None:
        wait = hint_delay(answer.eta_s, policy, rng, timing)
        return Plan(
            outcome=None,
            delay_s=wait,
            reason=DelayReason.HINT,
            strategy=Strategy.HINTED,
            scheduled_s=scheduled,
        )
    return Plan(
        outcome=None,
        delay_s=scheduled,
        reason=DelayReason.SCHEDULE,
        strategy=Strategy.BACKOFF,
        scheduled_s=scheduled,
    )


def _plan_retry(
    answer: PollAnswer,
    attempt: int,
    policy: BackoffPolicy,
    rng: random.Random,
    previous_delay_s: float | None,
    circuit_open: bool,
    timing: PollTiming,
) -> Plan:
    scheduled = policy.delay(attempt, previous_delay_s, rng)
    if answer.retry_after_s is not None:
        wait = max(retry_after_delay(answer.retry_after_s, rng, timing), scheduled)
        reason = DelayReason.RETRY_AFTER
    elif circuit_open or answer.kind is AnswerKind.SHORT_CIRCUIT:
        wait, reason = scheduled, DelayReason.CIRCUIT_OPEN
    elif answer.kind is AnswerKind.NO_ANSWER:
        wait, reason = scheduled, DelayReason.TRANSPORT_ERROR
    else:
        wait, reason = scheduled, DelayReason.SCHEDULE
    return Plan(
        outcome=None, delay_s=wait, reason=reason, strategy=Strategy.BACKOFF, scheduled_s=scheduled
    )
