"""Helpers for the dashboard's tests: fast settings, a frozen clock, synthetic poll events."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot

from client_core import (
    SPECIAL_JOB_ID,
    BackoffPolicy,
    DelayReason,
    HealthCheck,
    Jitter,
    Outcome,
    PollEvent,
    Strategy,
)
from client_core.comparison import PolicyRun
from tui.app import VideoSimApp, make_app
from tui.model import JobSpec, JobStarted, PoolBatch, WatchEvent
from tui.settings import DashboardSettings

# Polls every 0.05-0.2 s: jobs of 0.3 s finish in a couple of polls, tests stay short.
FAST_POLICY = BackoffPolicy(initial_s=0.05, multiplier=1.5, max_delay_s=0.2, jitter=Jitter.NONE)


@pytest.fixture(autouse=True)
def own_config_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Remembered settings and exports go to fresh directories, never the developer's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


def fast_settings(**changes: object) -> DashboardSettings:
    settings = DashboardSettings(
        strategy=Strategy.BACKOFF,
        policy=FAST_POLICY,
        health_interval_s=0.2,
        batch_interval_s=0.05,
        frame_interval_s=0.05,
        embedded=False,
        spawn_seed=1,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], what: str, timeout_s: float = 15.0
) -> None:
    """Let the app run until ``condition`` holds; fail with ``what`` after a generous bound."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await pilot.pause(0.05)


async def connected(pilot: Pilot[None]) -> VideoSimApp:
    app = pilot.app
    assert isinstance(app, VideoSimApp)
    await wait_until(pilot, lambda: app.connected, "the client to open")
    return app


class FrozenClock:
    """The app's clock for snapshots: elapsed times and countdowns never move."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def poll(
    job_id: str,
    attempt: int,
    status: str,
    *,
    outcome: Outcome | None = None,
    delay: float | None = 1.0,
    reason: DelayReason = DelayReason.SCHEDULE,
    strategy: Strategy = Strategy.BACKOFF,
    http_status: int | None = 200,
    error: str | None = None,
    eta_s: float | None = None,
    progress: float | None = None,
) -> PollEvent:
    return PollEvent(
        job_id=job_id,
        attempt=attempt,
        status=status,
        outcome=outcome,
        next_delay_s=None if outcome is not None else delay,
        reason=DelayReason.FINAL if outcome is not None else reason,
        elapsed_s=float(attempt),
        strategy=strategy,
        http_status=http_status,
        error=error,
        eta_s=eta_s,
        progress=progress,
    )


JOB_DONE = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
JOB_ERROR = "7b1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
JOB_WAITING = "c0ffee00-1111-4222-8333-444455556666"
JOB_HELD = "d15ea5e0-aaaa-4bbb-8ccc-dddd0000eeee"
JOB_LOST = "deadbeef-0000-4000-8000-000000000001"
JOB_CANCELLED = "0badf00d-2222-4333-8444-555566667777"


def synthetic_batch(start: float = 990.0) -> PoolBatch:
    """A fixed story of seven watches, every kind of row the table can show."""
    backoff = JobSpec(duration_s=3.0, outcome="completed", strategy=Strategy.BACKOFF)
    hinted = JobSpec(duration_s=2.0, outcome="error", strategy=Strategy.HINTED)
    long_poll = JobSpec(duration_s=30.0, strategy=Strategy.LONG_POLL)
    special = JobSpec(
        strategy=Strategy.BACKOFF, policy=BackoffPolicy(max_attempts=3), job_id=SPECIAL_JOB_ID
    )
    items: list[object] = [
        JobStarted(JOB_DONE, JOB_DONE, backoff, start),
        JobStarted(JOB_ERROR, JOB_ERROR, hinted, start + 0.5),
        JobStarted(JOB_WAITING, JOB_WAITING, backoff, start + 1.0),
        JobStarted(JOB_HELD, JOB_HELD, long_poll, start + 1.5),
        JobStarted(JOB_LOST, JOB_LOST, backoff, start + 2.0),
        JobStarted(JOB_CANCELLED, JOB_CANCELLED, backoff, start + 2.5),
        JobStarted(SPECIAL_JOB_ID, SPECIAL_JOB_ID, special, start + 3.0),
        WatchEvent(JOB_DONE, poll(JOB_DONE, 1, "pending", delay=1.0), start + 0.1),
        WatchEvent(JOB_DONE, poll(JOB_DONE, 2, "pending", delay=2.0), start + 1.1),
        WatchEvent(
            JOB_DONE, poll(JOB_DONE, 3, "completed", outcome=Outcome.COMPLETED), start + 3.1
        ),
        WatchEvent(
            JOB_ERROR,
            poll(
                JOB_ERROR,
                1,
                "pending",
                delay=1.6,
                reason=DelayReason.HINT,
                strategy=Strategy.HINTED,
                eta_s=1.5,
            ),
            start + 0.6,
        ),
        WatchEvent(
            JOB_ERROR,
            poll(JOB_ERROR, 2, "error", outcome=Outcome.ERROR, strategy=Strategy.HINTED),
            start + 2.2,
        ),
        WatchEvent(JOB_WAITING, poll(JOB_WAITING, 1, "pending", delay=2.0), start + 1.1),
        WatchEvent(
            JOB_WAITING, poll(JOB_WAITING, 2, "pending", delay=6.5, progress=0.4), start + 3.1
        ),
        WatchEvent(
            JOB_HELD,
            poll(
                JOB_HELD,
                1,
                "pending",
                delay=0.0,
                reason=DelayReason.LONG_POLL,
                strategy=Strategy.LONG_POLL,
            ),
            start + 1.6,
        ),
        WatchEvent(
            JOB_LOST,
            poll(
                JOB_LOST,
                1,
                "",
                delay=0.5,
                reason=DelayReason.TRANSPORT_ERROR,
                http_status=None,
                error="connection refused [errno 111]",
            ),
            start + 2.1,
        ),
        WatchEvent(
            JOB_LOST,
            poll(
                JOB_LOST,
                2,
                "",
                outcome=Outcome.UNREACHABLE,
                http_status=None,
                error="connection refused [errno 111]",
            ),
            start + 4.1,
        ),
        WatchEvent(JOB_CANCELLED, poll(JOB_CANCELLED, 1, "pending", delay=4.0), start + 2.6),
        WatchEvent(SPECIAL_JOB_ID, poll(SPECIAL_JOB_ID, 1, "pending", delay=1.0), start + 3.1),
        WatchEvent(SPECIAL_JOB_ID, poll(SPECIAL_JOB_ID, 2, "pending", delay=2.0), start + 4.1),
        WatchEvent(
            SPECIAL_JOB_ID,
            poll(SPECIAL_JOB_ID, 3, "pending", outcome=Outcome.TIMED_OUT),
            start + 6.1,
        ),
    ]
    return PoolBatch(items=items, starting=0)  # type: ignore[arg-type]


class FakeClient:
    """Stands in for VideoSimClient (through make_app's client_factory) with fixed answers."""

    circuit_open = False
    profile = None  # videosim's own protocol

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def push_wait(self, job_id: str) -> None:
        return None  # its watches poll

    async def health(self) -> HealthCheck:
        return HealthCheck(ok=True, latency_s=0.004)

    async def job_record(self, job_id: str) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "result": "completed",
            "outcome": "completed",
            "duration_s": 3.0,
            "created_at": 1000.0,
            "finishes_at": 1003.0,
            "status_requests": 3,
            "first_final_seen_at": 1003.1,
            "first_final_channel": "status",
            "detection_lag_s": 0.1,
            "requests": [
                {"at": 1000.1, "code": 200, "retry_after_s": None},
                {"at": 1001.1, "code": 200, "retry_after_s": None},
                {"at": 1003.1, "code": 200, "retry_after_s": None},
            ],
        }


def frozen_dashboard() -> VideoSimApp:
    """A dashboard on a fake client and a frozen clock: tests feed it synthetic events."""
    return make_app(
        client_factory=FakeClient,  # type: ignore[arg-type]
        server_url="http://127.0.0.1:7999",
        settings=fast_settings(health_interval_s=3600.0),
        clock=FrozenClock(),
    )


def compare_runs() -> list[PolicyRun]:
    """Three finished set-ups for the compare view's pictures and layout tests."""
    runs = [
        PolicyRun(
            "original",
            "backoff",
            [3, 3, 4, 2],
            [1.2, 0.8, 2.9, 0.4],
            [0.0, 1.0, 3.0, 0.1, 1.1, 3.1, 0.2, 1.2, 3.2, 7.2, 0.3, 1.3],
        ),
        PolicyRun(
            "fixed 1s",
            "backoff",
            [3, 4, 5, 2],
            [0.3, 0.6, 0.9, 0.2],
            [0.0, 1.0, 2.0, 0.1, 1.1, 2.1, 3.1, 0.2, 1.2, 2.2, 3.2, 4.2, 0.3, 1.3],
        ),
        PolicyRun(
            "long-poll",
            "long-poll",
            [1, 2, 2, 1],
            [0.01, 0.01, 0.02, 0.01],
            [0.0, 0.1, 2.0, 0.2, 3.1, 0.3],
        ),
        PolicyRun("stream", "stream", [0, 0, 0, 0], [0.002, 0.003, 0.002, 0.004], []),
    ]
    for run in runs:
        run.outcomes["completed"] = run.jobs
        run.used[run.strategy] = run.jobs
    return runs
