"""The polling rules as a pure function: what follows each kind of answer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client_core import BackoffPolicy, DelayReason, Jitter, Outcome, PollTiming, Strategy
from client_core.planner import (
    AnswerKind,
    Plan,
    PollAnswer,
    hint_delay,
    plan_next_poll,
    retry_after_delay,
)

STEADY = BackoffPolicy(initial_s=1.0, multiplier=2.0, max_delay_s=8.0, jitter=Jitter.NONE)
PENDING = PollAnswer(AnswerKind.PENDING, http_status=200, result="pending")
PENDING_WITH_ETA = PollAnswer(AnswerKind.PENDING, http_status=200, result="pending", eta_s=3.0)


def plan(answer: PollAnswer, **overrides: object) -> Plan:
    options: dict[str, object] = {
        "attempt": 1,
        "elapsed_s": 0.0,
        "policy": STEADY,
        "strategy": Strategy.AUTO,
        "rng": random.Random(1),
        "long_poll_max_s": None,
    }
    options.update(overrides)
    return plan_next_poll(answer, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (PollAnswer(AnswerKind.FINISHED, 200, "completed"), Outcome.COMPLETED),
        (PollAnswer(AnswerKind.FINISHED, 200, "error"), Outcome.ERROR),
        (PollAnswer(AnswerKind.NOT_FOUND, 404), Outcome.NOT_FOUND),
        (
            PollAnswer(AnswerKind.REJECTED, 401, error="Missing or invalid API key"),
            Outcome.REJECTED,
        ),
    ],
)
def test_final_answers_end_the_watch(answer: PollAnswer, outcome: Outcome) -> None:
    decided = plan(answer)
    assert decided.outcome is outcome
    assert decided.delay_s is None and decided.reason is DelayReason.FINAL


def test_backoff_follows_the_schedule_and_ignores_hints() -> None:
    delays = [
        plan(PENDING_WITH_ETA, attempt=n, strategy=Strategy.BACKOFF).delay_s
        for n in (1, 2, 3, 4, 5)
    ]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_hinted_sleeps_just_past_the_eta() -> None:
    decided = plan(PENDING_WITH_ETA, strategy=Strategy.HINTED)
    assert decided.reason is DelayReason.HINT and decided.strategy is Strategy.HINTED
    assert 3.0 < decided.delay_s <= 3.0 + 0.02 + 0.15  # margin + at most 5% of eta


def test_hinted_is_bounded_by_the_policy_max_delay() -> None:
    far = PollAnswer(AnswerKind.PENDING, 200, "pending", eta_s=500.0)
    assert plan(far, strategy=Strategy.HINTED).delay_s == STEADY.max_delay_s


def test_hinted_without_an_eta_falls_back_to_the_schedule() -> None:
    decided = plan(PENDING, attempt=2, strategy=Strategy.HINTED)
    assert decided.delay_s == 2.0
    assert decided.reason is DelayReason.SCHEDULE and decided.strategy is Strategy.BACKOFF


@pytest.mark.parametrize("strategy", [Strategy.LONG_POLL, Strategy.AUTO])
def test_long_poll_holds_as_long_as_the_server_allows(strategy: Strategy) -> None:
    # Not the eta (3 s), not the schedule (1 s), not max_delay_s (8 s): the server's cap.
    decided = plan(PENDING_WITH_ETA, strategy=strategy, long_poll_max_s=30.0)
    assert decided.delay_s == 0.0 and decided.reason is DelayReason.LONG_POLL
    assert decided.strategy is Strategy.LONG_POLL and decided.hold_s == 30.0
    no_eta = plan(PENDING, attempt=3, strategy=strategy, long_poll_max_s=30.0)
    assert no_eta.hold_s == 30.0
    short_cap = plan(PENDING, attempt=4, strategy=strategy, long_poll_max_s=2.5)
    assert short_cap.hold_s == 2.5  # shorter than the schedule's 8 s: the server decides


@given(
    cap=st.floats(0.01, 120),
    attempt=st.integers(1, 30),
    elapsed=st.floats(0, 100),
    deadline=st.one_of(st.none(), st.floats(1, 200)),
    eta=st.one_of(st.none(), st.floats(0, 1000)),
)
def test_a_hold_is_the_server_cap_or_the_time_left_whichever_is_less(
    cap: float, attempt: int, elapsed: float, deadline: float | None, eta: float | None
) -> None:
    policy = STEADY.replace(deadline_s=deadline)
    answer = PollAnswer(AnswerKind.PENDING, 200, "pending", eta_s=eta)
    decided = plan(answer, attempt=attempt, elapsed_s=elapsed, policy=policy, long_poll_max_s=cap)
    time_left = policy.time_left(elapsed)
    if time_left is not None and time_left <= 0:
        assert decided.outcome is Outcome.TIMED_OUT
        return
    expected = cap if time_left is None else min(cap, time_left)
    assert decided.hold_s == pytest.approx(expected)
    assert decided.delay_s == 0.0


@pytest.mark.parametrize("strategy", [Strategy.LONG_POLL, Strategy.AUTO])
def test_long_poll_falls_back_when_not_advertised(strategy: Strategy) -> None:
    with_eta = plan(PENDING_WITH_ETA, strategy=strategy, long_poll_max_s=None)
    assert with_eta.hold_s is None and with_eta.strategy is Strategy.HINTED
    without = plan(PENDING, strategy=strategy, long_poll_max_s=None)
    assert without.hold_s is None and without.strategy is Strategy.BACKOFF


def test_long_poll_falls_back_when_no_hold_slot_is_free() -> None:
    decided = plan(PENDING_WITH_ETA, long_poll_max_s=30.0, hold_slot_free=False)
    assert decided.hold_s is None and decided.strategy is Strategy.HINTED


def test_auto_prefers_long_poll_then_hints_then_schedule() -> None:
    assert plan(PENDING_WITH_ETA, long_poll_max_s=30.0).strategy is Strategy.LONG_POLL
    assert plan(PENDING_WITH_ETA).strategy is Strategy.HINTED
    assert plan(PENDING).strategy is Strategy.BACKOFF


@given(
    retry_after=st.floats(0, 120),
    attempt=st.integers(1, 30),
    code=st.sampled_from([429, 503]),
    seed=st.integers(0, 10_000),
    strategy=st.sampled_from(list(Strategy)),
)
def test_never_earlier_than_retry_after(
    retry_after: float, attempt: int, code: int, seed: int, strategy: Strategy
) -> None:
    answer = PollAnswer(AnswerKind.RETRY, code, retry_after_s=retry_after)
    decided = plan(answer, attempt=attempt, strategy=strategy, rng=random.Random(seed))
    assert decided.reason is DelayReason.RETRY_AFTER
    assert decided.delay_s >= retry_after
    assert decided.hold_s is None


def test_transport_errors_back_off_on_the_schedule() -> None:
    refused = PollAnswer(AnswerKind.NO_ANSWER, error="connection refused")
    decided = plan(refused, attempt=3)
    assert decided.delay_s == 4.0 and decided.reason is DelayReason.TRANSPORT_ERROR


def test_open_circuit_is_reported_as_the_reason() -> None:
    refused = PollAnswer(AnswerKind.NO_ANSWER, error="connection refused")
    assert plan(refused, circuit_open=True).reason is DelayReason.CIRCUIT_OPEN
    local = PollAnswer(AnswerKind.SHORT_CIRCUIT, error="circuit open")
    assert plan(local).reason is DelayReason.CIRCUIT_OPEN


def test_the_budget_counts_checks_and_failures_are_retried_until_the_deadline() -> None:
    budget = STEADY.replace(max_attempts=3)
    assert plan(PENDING, attempt=2, policy=budget).outcome is None
    assert plan(PENDING, attempt=3, policy=budget).outcome is Outcome.TIMED_OUT
    assert plan(PENDING, attempt=9, checks=2, policy=budget).outcome is None
    malformed = PollAnswer(AnswerKind.MALFORMED, 200, error="malformed answer: unknown result")
    assert plan(malformed, attempt=3, policy=budget).outcome is Outcome.REJECTED
    # An outage or a refusal does not spend the budget of checks...
    refused = PollAnswer(AnswerKind.NO_ANSWER, error="connection refused")
    assert plan(refused, attempt=3, policy=budget).outcome is None
    unavailable = PollAnswer(AnswerKind.RETRY, 503, retry_after_s=1.0)
    assert plan(unavailable, attempt=3, policy=budget).outcome is None
    # ...the deadline ends it, named by what the server said last.
    late = budget.replace(deadline_s=10.0)
    assert plan(refused, attempt=3, elapsed_s=10, policy=late).outcome is Outcome.UNREACHABLE
    assert plan(unavailable, attempt=3, elapsed_s=10, policy=late).outcome is Outcome.REJECTED
    assert plan(malformed, attempt=1, elapsed_s=10, policy=late).outcome is Outcome.REJECTED
    # A job seen pending, refused at the deadline, is still a pending job: timed out.
    refused_late = plan(unavailable, attempt=3, elapsed_s=10, policy=late, seen_pending=True)
    assert refused_late.outcome is Outcome.TIMED_OUT


def test_deadline_shortens_the_last_wait_then_ends_the_watch() -> None:
    deadline = STEADY.replace(deadline_s=5.0)
    last = plan(PENDING, attempt=4, elapsed_s=4.0, policy=deadline)
    assert last.outcome is None and last.delay_s == pytest.approx(1.0)
    assert plan(PENDING, attempt=5, elapsed_s=5.0, policy=deadline).outcome is Outcome.TIMED_OUT
    held = plan(PENDING, attempt=4, elapsed_s=4.5, policy=deadline, long_poll_max_s=30.0)
    assert held.hold_s == pytest.approx(0.5)
    early = plan(PENDING, attempt=1, elapsed_s=1.0, policy=deadline, long_poll_max_s=30.0)
    assert early.hold_s == pytest.approx(4.0)  # all the time left, not the schedule's 1 s


def test_the_budget_counts_held_requests_like_any_other() -> None:
    budget = STEADY.replace(max_attempts=3)
    held = plan(PENDING, attempt=2, elapsed_s=30.0, policy=budget, long_poll_max_s=30.0)
    assert held.hold_s == 30.0
    spent = plan(PENDING, attempt=3, elapsed_s=60.0, policy=budget, long_poll_max_s=30.0)
    assert spent.outcome is Outcome.TIMED_OUT


def test_retry_after_past_the_deadline_gives_up_instead_of_asking_early() -> None:
    deadline = STEADY.replace(deadline_s=5.0)
    answer = PollAnswer(AnswerKind.RETRY, 503, retry_after_s=3.0)
    assert plan(answer, elapsed_s=4.0, policy=deadline).outcome is Outcome.REJECTED


@given(eta=st.floats(0, 1000), seed=st.integers(0, 10_000))
def test_hint_delay_is_after_the_eta_and_within_the_cap(eta: float, seed: int) -> None:
    delay = hint_delay(eta, STEADY, random.Random(seed))
    assert delay <= STEADY.max_delay_s
    assert delay > eta or delay == STEADY.max_delay_s


def test_the_margins_come_from_the_timing_passed_in() -> None:
    exact = PollTiming(hint_margin_s=0.5, hint_spread_ratio=0.0, retry_after_spread_ratio=0.0)
    hinted = plan(PENDING_WITH_ETA, strategy=Strategy.HINTED, timing=exact)
    assert hinted.delay_s == pytest.approx(3.5)
    refused = PollAnswer(AnswerKind.RETRY, 503, retry_after_s=3.0)
    assert plan(refused, timing=exact).delay_s == pytest.approx(3.0)
    spread = PollTiming(retry_after_spread_ratio=1.0, retry_after_spread_max_s=0.05)
    for seed in range(20):
        delay = retry_after_delay(3.0, random.Random(seed), spread)
        assert 3.0 <= delay <= 3.05


def test_timing_scales_durations_and_keeps_ratios() -> None:
    scaled = PollTiming().scaled(10)
    assert scaled.hint_margin_s == pytest.approx(0.002)
    assert scaled.hint_spread_max_s == pytest.approx(0.02)
    assert scaled.retry_after_spread_max_s == pytest.approx(0.05)
    assert scaled.hint_spread_ratio == PollTiming().hint_spread_ratio


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hint_margin_s": -0.01}, "hint_margin_s must be a finite number >= 0"),
        ({"hint_spread_max_s": float("inf")}, "hint_spread_max_s must be a finite number"),
        ({"retry_after_spread_ratio": 1.5}, "retry_after_spread_ratio must be between 0 and 1"),
        ({"hint_spread_ratio": "a lot"}, "hint_spread_ratio must be a finite number"),
    ],
)
def test_bad_timing_is_a_value_error_naming_the_field(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PollTiming(**changes)  # type: ignore[arg-type]
