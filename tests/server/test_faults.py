"""The fault injector on its own: Retry-After rounding, token buckets, seeded draws."""

from __future__ import annotations

import random

import pytest

from server.clock import FakeClock
from server.faults import FaultInjector, retry_after_header
from server.models import Faults


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.0, "1"), (0.001, "1"), (1.0, "1"), (1.01, "2"), (9.5, "10"), (-3.0, "1")],
)
def test_retry_after_is_whole_seconds_at_least_one(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


def test_token_bucket_allows_bursts_of_one_second_then_refills() -> None:
    clock = FakeClock()
    injector = FaultInjector(Faults(rate_limit_rps=5), clock, random.Random(1))
    assert [injector.check("a") for _ in range(5)] == [None] * 5
    rejected = injector.check("a")
    assert rejected is not None
    assert (rejected.code, rejected.retry_after_s) == (429, 1)
    clock.advance(0.2)  # one token at 5/s
    assert injector.check("a") is None
    assert injector.check("a") is not None


def test_idle_clients_are_forgotten_when_many_are_tracked() -> None:
    clock = FakeClock()
    injector = FaultInjector(Faults(rate_limit_rps=1), clock, random.Random(1))
    for client in range(10_000):
        injector.check(f"client-{client}")
    clock.advance(5)  # every bucket is full again
    assert injector.check("newcomer") is None
    assert len(injector._buckets) == 1


def test_new_faults_refill_every_bucket() -> None:
    injector = FaultInjector(Faults(rate_limit_rps=1), FakeClock(), random.Random(1))
    assert injector.check("a") is None
    assert injector.check("a") is not None
    injector.faults = Faults(rate_limit_rps=1)
    assert injector.check("a") is None


def test_unavailable_draws_repeat_with_the_seed() -> None:
    def draws(seed: int) -> list[bool]:
        injector = FaultInjector(Faults(unavailable_rate=0.5), FakeClock(), random.Random(seed))
        return [injector.check("a") is None for _ in range(50)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_injected_faults_are_counted() -> None:
    injector = FaultInjector(Faults(unavailable_rate=1.0), FakeClock(), random.Random(1))
    rejected = injector.check("a")
    assert rejected is not None and rejected.code == 503
    assert injector.injected["unavailable"] == 1
