"""The fault injector on its own: Retry-After rounding, token buckets, seeded draws."""

from __future__ import annotations

import random

import pytest

from server.faults import MAX_TRACKED_CLIENTS, FaultInjector, retry_after_header
from server.jobs.clock import FakeClock
from server.models import Faults


def buckets_of(injector: FaultInjector) -> dict[str, object]:
    """The memory token buckets the injector keeps by default."""
    return injector._rate_limiter._buckets  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.0, "1"), (0.001, "1"), (1.0, "1"), (1.01, "2"), (9.5, "10"), (-3.0, "1")],
)
def test_retry_after_is_whole_seconds_at_least_one(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


async def test_token_bucket_allows_bursts_of_one_second_then_refills() -> None:
    clock = FakeClock()
    injector = FaultInjector(Faults(rate_limit_rps=5), clock, random.Random(1))
    assert [await injector.check("a") for _ in range(5)] == [None] * 5
    rejected = await injector.check("a")
    assert rejected is not None
    assert (rejected.code, rejected.retry_after_s) == (429, 1)
    clock.advance(0.2)  # one token at 5/s
    assert await injector.check("a") is None
    assert await injector.check("a") is not None


async def test_the_client_table_is_bounded_least_recently_seen_first() -> None:
    clock = FakeClock()
    injector = FaultInjector(Faults(rate_limit_rps=1), clock, random.Random(1))
    assert await injector.check("regular") is None
    for client in range(MAX_TRACKED_CLIENTS - 1):
        await injector.check(f"client-{client}")
    assert await injector.check("regular") is not None  # seen recently: still tracked, empty
    await injector.check("newcomer")  # pushes out client-0, the least recently seen
    assert len(buckets_of(injector)) == MAX_TRACKED_CLIENTS
    assert "client-0" not in buckets_of(injector)
    assert await injector.check("regular") is not None


async def test_rotating_clients_cost_constant_work_per_request() -> None:
    """A full table once meant rebuilding it on every new client (-92 % throughput). Each
    new client past the bound evicts exactly one bucket and never walks the table (counted
    on the table itself, so no clock or machine load can make this flaky)."""
    from collections import OrderedDict

    class CountingTable(OrderedDict[str, object]):
        walks = 0
        evictions = 0

        def __iter__(self):  # type: ignore[no-untyped-def]
            CountingTable.walks += 1
            return super().__iter__()

        def popitem(self, last: bool = True) -> tuple[str, object]:
            CountingTable.evictions += 1
            return super().popitem(last)

    injector = FaultInjector(Faults(rate_limit_rps=0.001), FakeClock(), random.Random(1))
    injector._rate_limiter._buckets = CountingTable()  # type: ignore[attr-defined]
    for client in range(MAX_TRACKED_CLIENTS + 5_000):
        await injector.check(f"c-{client}")
    assert len(buckets_of(injector)) == MAX_TRACKED_CLIENTS
    assert CountingTable.evictions == 5_000
    assert CountingTable.walks == 0


async def test_new_faults_refill_every_bucket() -> None:
    injector = FaultInjector(Faults(rate_limit_rps=1), FakeClock(), random.Random(1))
    assert await injector.check("a") is None
    assert await injector.check("a") is not None
    injector.faults = Faults(rate_limit_rps=1)
    assert await injector.check("a") is None


async def test_unavailable_draws_repeat_with_the_seed() -> None:
    async def draws(seed: int) -> list[bool]:
        injector = FaultInjector(Faults(unavailable_rate=0.5), FakeClock(), random.Random(seed))
        return [await injector.check("a") is None for _ in range(50)]

    assert await draws(1) == await draws(1)
    assert await draws(1) != await draws(2)


async def test_injected_faults_are_counted() -> None:
    injector = FaultInjector(Faults(unavailable_rate=1.0), FakeClock(), random.Random(1))
    rejected = await injector.check("a")
    assert rejected is not None and rejected.code == 503
    assert injector.injected["unavailable"] == 1
