"""BackoffPolicy: presets, jitter bounds, budgets and validation, all without sleeping."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client_core import BackoffPolicy, Jitter


def test_original_preset_is_the_seed_schedule() -> None:
    policy = BackoffPolicy.original()
    assert policy.schedule(5) == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert policy.max_attempts == 5
    assert policy.jitter is Jitter.NONE


def test_original_preset_scales_with_backoff_factor() -> None:
    # delay = BACKOFF_FACTOR * 2**attempt, attempt counted from 0 as in the seed client
    policy = BackoffPolicy.original(retries=7, backoff_factor=0.5)
    assert policy.schedule(7) == [0.5 * 2**i for i in range(7)]
    assert policy.max_attempts == 7


def test_fixed_preset_never_changes() -> None:
    assert BackoffPolicy.fixed(0.3).schedule(6) == [0.3] * 6


def test_library_default_is_documented_shape() -> None:
    policy = BackoffPolicy()
    assert (policy.initial_s, policy.multiplier, policy.max_delay_s) == (0.25, 1.6, 10.0)
    assert policy.jitter is Jitter.PROPORTIONAL
    assert policy.max_attempts is None and policy.deadline_s is None
    bases = [policy.base_delay(n) for n in range(1, 13)]
    assert bases[:3] == pytest.approx([0.25, 0.4, 0.64])
    assert bases[-1] == 10.0  # capped


def test_seeded_policies_replay_the_same_jitter() -> None:
    policy = BackoffPolicy(seed=42)
    assert policy.schedule(20) == policy.schedule(20)
    assert BackoffPolicy(seed=43).schedule(20) != policy.schedule(20)


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert BackoffPolicy(jitter=Jitter.NONE).base_delay(100_000) == 10.0


def test_budget_and_deadline_cut_offs() -> None:
    policy = BackoffPolicy(max_attempts=3, deadline_s=2.0)
    assert [policy.budget_spent(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert policy.time_left(0.5) == 1.5
    assert policy.time_left(2.5) == -0.5
    unbounded = BackoffPolicy()
    assert not unbounded.budget_spent(10**9)
    assert unbounded.time_left(10**9) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"initial_s": -1}, "initial_s must be > 0"),
        ({"initial_s": 0}, "initial_s must be > 0"),
        ({"initial_s": float("nan")}, "initial_s must be a finite number"),
        ({"multiplier": 0.5}, "multiplier must be >= 1"),
        ({"max_delay_s": -3}, "max_delay_s must be > 0"),
        ({"initial_s": 5, "max_delay_s": 1}, "max_delay_s (1) must be >= initial_s (5)"),
        ({"jitter_ratio": 1.5}, "jitter_ratio must be between 0 and 1"),
        ({"jitter_ratio": -0.1}, "jitter_ratio must be between 0 and 1"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"max_attempts": 2.5}, "max_attempts must be an integer >= 1"),
        ({"deadline_s": -1}, "deadline_s must be > 0"),
        ({"jitter": "sideways"}, "jitter must be one of none, full, equal"),
        ({"seed": "abc"}, "seed must be an integer"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BackoffPolicy(**changes)  # type: ignore[arg-type]


def test_presets_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="retries must be an integer >= 1"):
        BackoffPolicy.original(retries=0)
    with pytest.raises(ValueError, match="backoff_factor must be > 0"):
        BackoffPolicy.original(backoff_factor=-1)
    with pytest.raises(ValueError, match="initial_s must be > 0"):
        BackoffPolicy.fixed(0)


def test_policy_is_immutable_and_replace_validates() -> None:
    policy = BackoffPolicy()
    with pytest.raises(AttributeError):
        policy.initial_s = 3  # type: ignore[misc]
    assert policy.replace(max_attempts=4).max_attempts == 4
    with pytest.raises(ValueError, match="multiplier"):
        policy.replace(multiplier=0.1)


def test_jitter_given_as_text_is_accepted() -> None:
    assert BackoffPolicy(jitter="FULL").jitter is Jitter.FULL  # type: ignore[arg-type]


policies = st.builds(
    BackoffPolicy,
    initial_s=st.floats(0.001, 5),
    multiplier=st.floats(1, 4),
    max_delay_s=st.floats(5, 60),
    jitter=st.sampled_from(list(Jitter)),
    jitter_ratio=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)


@given(policy=policies, n=st.integers(1, 40))
def test_every_delay_stays_within_zero_and_the_cap(policy: BackoffPolicy, n: int) -> None:
    for delay in policy.schedule(n):
        assert 0 <= delay <= policy.max_delay_s


@given(policy=policies, attempt=st.integers(1, 60), seed=st.integers(0, 1000))
def test_each_jitter_kind_keeps_its_range(policy: BackoffPolicy, attempt: int, seed: int) -> None:
    base = policy.base_delay(attempt)
    delay = policy.delay(attempt, previous=base, rng=random.Random(seed))
    match policy.jitter:
        case Jitter.NONE:
            assert delay == base
        case Jitter.FULL:
            assert 0 <= delay <= base
        case Jitter.EQUAL:
            assert base / 2 <= delay <= base
        case Jitter.PROPORTIONAL:
            low = base * (1 - policy.jitter_ratio)
            high = min(policy.max_delay_s, base * (1 + policy.jitter_ratio))
            assert low - 1e-9 <= delay <= high + 1e-9
        case Jitter.DECORRELATED:
            assert policy.initial_s <= delay <= min(policy.max_delay_s, 3 * base) + 1e-9


@given(policy=policies.filter(lambda p: p.jitter is Jitter.NONE), n=st.integers(2, 40))
def test_unjittered_schedules_never_shrink(policy: BackoffPolicy, n: int) -> None:
    delays = policy.schedule(n)
    assert delays == sorted(delays)
