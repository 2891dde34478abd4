"""The shared limits (rate pacer, 429 pause) and the health gate, on virtual time."""

from __future__ import annotations

import asyncio

import pytest

from client_core import BackoffPolicy, Jitter, SteppingClock
from client_core.health_gate import GateState, HealthGate
from client_core.pacing import PauseGate, TokenBucket


def test_token_bucket_spaces_requests_at_the_rate() -> None:
    clock = SteppingClock()
    bucket = TokenBucket(rate=10, clock=clock)
    waits = [bucket.reserve() for _ in range(5)]  # five callers at the same instant
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_token_bucket_allows_a_burst_then_paces() -> None:
    clock = SteppingClock()
    bucket = TokenBucket(rate=10, clock=clock, burst=3)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_token_bucket_refills_while_idle() -> None:
    clock = SteppingClock()
    bucket = TokenBucket(rate=2, clock=clock)
    assert bucket.reserve() == 0.0
    clock.advance(10)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.5)


async def test_token_bucket_caps_the_real_rate_of_concurrent_callers() -> None:
    clock = SteppingClock()
    bucket = TokenBucket(rate=50, clock=clock)
    stamps: list[float] = []

    async def caller() -> None:
        await bucket.acquire()
        stamps.append(clock.now())

    await asyncio.gather(*(caller() for _ in range(100)))
    # 100 requests at 50/s: the last may not go before 99 intervals have passed.
    assert max(stamps) >= 99 / 50 - 1e-9


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(rate=0, clock=SteppingClock())


async def test_pause_gate_holds_until_retry_after_and_never_shortens() -> None:
    clock = SteppingClock()
    pause = PauseGate(clock)
    pause.pause_for(2.0)
    pause.pause_for(1.0)  # a shorter Retry-After does not cut the pause
    assert pause.remaining() == 2.0
    await pause.wait()
    assert clock.now() == 2.0 and pause.remaining() == 0.0


FAST_PROBES = BackoffPolicy(initial_s=0.5, multiplier=2.0, max_delay_s=4.0, jitter=Jitter.NONE)


async def test_gate_opens_after_threshold_probes_with_backoff_and_closes() -> None:
    clock = SteppingClock()
    answers = iter([False, False, True])
    probes: list[float] = []

    async def probe() -> bool:
        probes.append(clock.now())
        return next(answers)

    gate = HealthGate(probe, clock, threshold=3, probe_policy=FAST_PROBES)
    gate.record_failure("connection refused")
    gate.record_failure("connection refused")
    assert gate.state is GateState.CLOSED
    gate.record_failure("connection refused")
    assert gate.is_open and gate.times_opened == 1
    assert "circuit open after 3 transport failures: connection refused" in gate.describe()

    await asyncio.wait_for(gate.wait_closed(), timeout=5)
    assert gate.state is GateState.CLOSED
    assert gate.probes_sent == 3
    assert probes == [0.5, 1.5, 3.5]  # one probe at a time, on the probe schedule
    await gate.aclose()


async def test_a_success_resets_the_failure_count() -> None:
    gate = HealthGate(_never_healthy, SteppingClock(), threshold=2)
    gate.record_failure("x")
    gate.record_success()
    gate.record_failure("x")
    assert not gate.is_open


async def test_a_late_success_closes_an_open_gate_and_the_probe_stops() -> None:
    clock = SteppingClock()
    gate = HealthGate(_never_healthy, clock, threshold=1, probe_policy=FAST_PROBES)
    gate.record_failure("refused")
    assert gate.is_open
    gate.record_success()
    assert not gate.is_open
    await asyncio.sleep(0.01)
    await gate.aclose()


async def test_closing_the_gate_cancels_its_probe() -> None:
    gate = HealthGate(_never_healthy, SteppingClock(), threshold=1, probe_policy=FAST_PROBES)
    gate.record_failure("refused")
    for _ in range(20):
        await asyncio.sleep(0)
    assert gate.probes_sent > 0
    await gate.aclose()
    probes = gate.probes_sent
    await asyncio.sleep(0.01)
    assert gate.probes_sent == probes
    assert gate.is_open  # still open: nobody proved the server is back


async def test_a_crashing_probe_counts_as_unhealthy() -> None:
    calls = 0

    async def probe() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return True

    gate = HealthGate(probe, SteppingClock(), threshold=1, probe_policy=FAST_PROBES)
    gate.record_failure("refused")
    await asyncio.wait_for(gate.wait_closed(), timeout=5)
    assert calls == 2
    await gate.aclose()


async def _never_healthy() -> bool:
    return False
