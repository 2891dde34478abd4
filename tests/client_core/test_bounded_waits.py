"""Bounded waits under faults (issue 10): every pause capped, every watch and start
bounded by a deadline, a silent server noticed in seconds, a failed start not fatal.

Each test runs against the real server (tests/support/live_server.py) or a real TCP
server that misbehaves at the HTTP level (tests/support/raw_http.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from client_core import (
    SPECIAL_JOB_ID,
    BackoffPolicy,
    ClientSettings,
    Jitter,
    Outcome,
    Strategy,
    VideoSimClient,
)
from client_core.answers import retry_after_s
from client_core.runner import EXIT_JOB_FAILED, EXIT_OK, EXIT_UNREACHABLE
from tests.support.live_server import LiveServer
from tests.support.raw_http import RawHttpServer, http_answer

Factory = Callable[..., LiveServer]
QUICK = BackoffPolicy(initial_s=0.05, multiplier=2.0, max_delay_s=0.2, jitter=Jitter.NONE)
FAST_PROBES = BackoffPolicy(initial_s=0.05, multiplier=2.0, max_delay_s=0.2, jitter=Jitter.EQUAL)


async def run_cli(*args: str, limit_s: float = 60) -> tuple[int, str, str, float]:
    """The runner as a user runs it, in a child process; (code, stdout, stderr, seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    began = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_core", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), limit_s)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode(), time.monotonic() - began


def summary_of(stdout: str) -> dict[str, object]:
    summary: dict[str, object] = json.loads(stdout.splitlines()[-1])
    assert summary["type"] == "summary"
    return summary


# -- 1. every server-advised pause is capped; a refusal is reported as one ------------


def test_a_retry_after_of_a_billion_seconds_or_a_date_in_2100_is_capped() -> None:
    huge = httpx.Response(503, headers={"Retry-After": "999999999"})
    far = httpx.Response(503, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert retry_after_s(huge, 60.0) == 60.0
    assert retry_after_s(far, 60.0) == 60.0
    assert ClientSettings().max_server_pause_s == 60.0


async def test_a_watch_refused_until_its_deadline_ends_rejected_with_the_reason(
    live_server_factory: Factory,
) -> None:
    server = live_server_factory("--delay", "0.5")
    async with VideoSimClient(server.url, max_server_pause_s=0.2) as client:
        job_id = await client.start(0.3)
        # Every status request is now answered 503 with Retry-After: 3600.
        faults = {"unavailable_rate": 1.0, "retry_after_s": 3600}
        async with httpx.AsyncClient(base_url=server.url) as admin:
            (await admin.put("/admin/faults", json=faults)).raise_for_status()
        # Polled (auto would take the pushed state from the event stream, which no fault
        # touches): what a polling watch does when every poll is refused.
        policy = QUICK.replace(deadline_s=1.5)
        events = [e async for e in client.watch(job_id, policy, Strategy.LONG_POLL)]
    assert all(e.next_delay_s is None or e.next_delay_s <= 0.2 * 1.1 for e in events)
    assert len(events) > 3  # it kept asking, every 0.2 s, not once an hour
    last = events[-1]
    assert last.outcome is Outcome.REJECTED  # the server answered: not "unreachable"
    assert last.error is not None and "HTTP 503" in last.error and "deadline" in last.error


async def test_a_retry_after_of_a_billion_seconds_from_a_raw_server_does_not_stall() -> None:
    answer = http_answer("429 Too Many Requests", b'{"detail": "slow down"}',
                         Retry_After="999999999")  # fmt: skip
    async with (
        RawHttpServer(answer) as server,
        VideoSimClient(server.url, max_server_pause_s=0.1) as client,
    ):
        result = await asyncio.wait_for(client.wait("job", QUICK.replace(deadline_s=1.0)), 10)
    assert result.outcome is Outcome.REJECTED and result.requests >= 3
    assert result.last_error is not None and "HTTP 429" in result.last_error


async def test_every_watch_has_a_default_deadline() -> None:
    pending = http_answer("200 OK", b'{"result": "pending"}')
    async with (
        RawHttpServer(pending) as server,
        VideoSimClient(server.url, default_deadline_s=0.5) as client,
    ):
        # The library default policy: no budget and no deadline of its own.
        result = await asyncio.wait_for(client.wait(SPECIAL_JOB_ID, BackoffPolicy()), 10)
    assert result.outcome is Outcome.TIMED_OUT
    assert 0.5 <= result.elapsed_s < 1.5


# -- 2. a failed start is that job's outcome; starts obey the shared limits -------------


async def test_starts_that_fail_do_not_end_the_run(live_server_factory: Factory) -> None:
    server = live_server_factory("--delay", "0.3", "--max-jobs", "3")  # the 4th start gets 503
    code, out, err, _ = await run_cli(
        "--server-url", server.url, "--jobs", "5", "--duration", "0.3", "--no-special",
        "--deadline", "2", "--json", "--quiet",
    )  # fmt: skip
    summary = summary_of(out)
    jobs = summary["jobs"]
    assert isinstance(jobs, list) and len(jobs) == 5
    started = [job for job in jobs if job["started"]]
    refused = [job for job in jobs if not job["started"]]
    assert len(started) == 3 and {job["outcome"] for job in started} <= {"completed", "error"}
    assert len(refused) == 2 and {job["outcome"] for job in refused} == {"rejected"}
    assert "HTTP 503" in refused[0]["last_error"] and refused[0]["job_id"] is None
    assert code == summary["exit_code"] == EXIT_JOB_FAILED
    assert "2 of 5 jobs did not start" in err and "Traceback" not in err


async def test_starts_ride_out_503s_and_a_rate_limit(live_server_factory: Factory) -> None:
    server = live_server_factory(
        "--delay", "0.3", "--seed", "5", "--fault-unavailable-rate", "0.5",
        "--fault-retry-after", "1", "--fault-rate-limit", "20",
    )  # fmt: skip
    code, out, err, _ = await run_cli(
        "--server-url", server.url, "--jobs", "20", "--duration", "0.3", "--no-special",
        "--preset", "default", "--max-delay", "0.5", "--json", "--quiet",
    )  # fmt: skip
    jobs = summary_of(out)["jobs"]
    assert isinstance(jobs, list) and len(jobs) == 20
    assert {job["outcome"] for job in jobs} <= {"completed", "error"}, err
    assert code == EXIT_OK


# -- 3. an outage is retried until the deadline, not for a few attempts -----------------


async def test_a_watch_rides_out_an_outage_longer_than_its_budget(
    live_server_factory: Factory, tmp_path: Path
) -> None:
    server = live_server_factory("--state-file", str(tmp_path / "jobs.jsonl"), "--delay", "0.5")
    # The seed's shape: 5 checks, 0.05-0.1-0.2-0.4 s apart: all spent within 1 s of down time.
    policy = BackoffPolicy.original(retries=5, backoff_factor=0.05).replace(deadline_s=20)
    async with VideoSimClient(server.url, circuit_threshold=3, probe_policy=FAST_PROBES) as client:
        job_id = await client.start(2.0)
        watch = asyncio.create_task(client.wait(job_id, policy, Strategy.BACKOFF))
        await asyncio.to_thread(server.stop)  # SIGTERM: the server keeps its jobs
        await asyncio.sleep(2.5)
        await asyncio.to_thread(server.start)
        result = await asyncio.wait_for(watch, 20)
    assert result.outcome in (Outcome.COMPLETED, Outcome.ERROR)


# -- 4. a server that accepts and never answers is noticed in seconds -------------------


async def test_a_silent_server_is_noticed_in_seconds_whatever_the_job_count() -> None:
    async with (
        RawHttpServer(answer=None) as server,
        VideoSimClient(server.url, probe_policy=FAST_PROBES) as client,
    ):
        opened_at: list[float] = []
        client.health_gate.add_listener(lambda state: opened_at.append(time.monotonic()))
        began = time.monotonic()
        policy = QUICK.replace(deadline_s=2.0)
        results = await asyncio.wait_for(
            asyncio.gather(*(client.wait(f"job-{n}", policy) for n in range(500))), 30
        )
        took = time.monotonic() - began
    assert {r.outcome for r in results} == {Outcome.UNREACHABLE}
    assert "read timeout" in (results[0].last_error or "")
    assert opened_at and opened_at[0] - began < 6.0  # the breaker: one read timeout
    assert took < 6.0  # 500 jobs, not 500 / 64 rounds of read timeouts


async def test_the_runner_gives_up_on_a_silent_server_within_its_deadline() -> None:
    async with RawHttpServer(answer=None) as server:
        code, out, _, took = await run_cli(
            "--server-url", server.url, "--jobs", "500", "--deadline", "2", "--json", "--quiet"
        )  # fmt: skip
    assert code == EXIT_UNREACHABLE
    assert took < 8.0  # was 11.7 s with --deadline 2 (10 s read timeouts), 322 s without
    jobs = summary_of(out)["jobs"]
    assert isinstance(jobs, list) and len(jobs) == 501


async def test_the_runner_says_at_once_that_a_silent_server_never_answered() -> None:
    """A server that takes connections and never answers is not one that "stopped
    answering": one line within the connect timeout, exit 3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    async with RawHttpServer(answer=None) as server:
        url = server.url
        began = time.monotonic()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "client_core", "--server-url", url, "--jobs", "500",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert child.stderr is not None
        try:
            said = (await asyncio.wait_for(child.stderr.read(), 20)).decode()
            code = await asyncio.wait_for(child.wait(), 20)
            said_after = time.monotonic() - began
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert code == EXIT_UNREACHABLE
    assert said == (
        f"videosim-client: nothing answers at {url} (no answer in time (read "
        "timeout)) within the 2 s connect timeout; is the server running? (start one with "
        "videosim-server)\n"
    )
    assert said_after < 12.0  # start-up and one health check, whatever the job count


# -- 5. max_delay applies to every preset -----------------------------------------------


@pytest.mark.parametrize("preset", ["original", "default", "fixed"])
def test_no_preset_waits_longer_than_its_cap(preset: str) -> None:
    policy = ClientSettings(preset=preset, max_attempts=20).policy()
    assert max(policy.schedule(20)) <= 60.0  # the original preset reached 524,288 s
    capped = ClientSettings(preset=preset, max_attempts=20, max_delay_s=5).policy()
    assert max(capped.schedule(20)) <= 5.0
