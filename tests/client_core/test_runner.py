"""videosim-client: exit codes, --json output, and messages a user sees."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from client_core import BackoffPolicy
from client_core.runner import (
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    main,
    special_job_policy,
)
from tests.support.live_server import LiveServer, free_port
from tests.support.raw_http import RawHttpServer, http_answer

QUICK = ["--initial", "0.05"]  # the original shape (x2, 5 checks), scaled down: 0.75 s total
SHORT_HOLD_S = 0.15  # the server's long-poll cap for these runs (the default is 30 s)


@pytest.fixture(scope="module")
def short_hold_server() -> Iterator[LiveServer]:
    """The default run long-polls (auto), and each hold lasts the server's whole cap.

    With the default 30 s cap the special job's 5-poll budget would take 4 x 30 s, so
    these runs use a server with a short cap, as QUICK shortens the schedule.
    """
    args = ["--delay", "0.5", "--seed", "7", "--long-poll-max", str(SHORT_HOLD_S)]
    with LiveServer(args=args) as server:
        yield server


@pytest.fixture(autouse=True)
def no_user_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in list(os.environ):
        if name.startswith("VIDEOSIM_") or name in ("RETRIES", "BACKOFF_FACTOR"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    return subprocess.run(
        [sys.executable, "-m", "client_core", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def test_default_run_reproduces_the_seed_client_in_json(
    short_hold_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--server-url", short_hold_server.url, *QUICK, "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events, summary = lines[:-1], lines[-1]
    assert code == EXIT_OK
    assert {line["type"] for line in events} == {"event"} and summary["type"] == "summary"
    assert summary["exit_code"] == EXIT_OK
    jobs = {job["job_id"]: job for job in summary["jobs"]}
    assert len(jobs) == 4  # 3 started jobs plus the special one
    special = jobs.pop("special-pending-job")
    assert special["outcome"] == "timed_out" and special["attempts"] == 5
    # auto long-polls: after the first plain poll, each poll is held for the server's cap.
    special_reasons = [e["reason"] for e in events if e["job_id"] == "special-pending-job"]
    assert special_reasons == ["long-poll"] * 4 + ["final"]
    assert special["elapsed_s"] >= 4 * SHORT_HOLD_S * 0.9
    assert {job["outcome"] for job in jobs.values()} <= {"completed", "error"}
    # What was asked, and what each watch used: auto with an attempt budget long-polls.
    assert summary["strategy"] == {"asked": "auto", "used": {"long-poll": 4}}
    assert {job["strategy"] for job in summary["jobs"]} == {"long-poll"}
    finals = [e for e in events if e["outcome"] is not None]
    assert len(finals) == 4
    assert sum(len([e for e in events if e["job_id"] == j]) for j in jobs) == sum(
        job["attempts"] for job in jobs.values()
    )


def test_human_summary_lists_every_job(
    short_hold_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--server-url", short_hold_server.url, *QUICK, "--jobs", "2", "--outcome", "error"]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert out.count("error") >= 2 and "timed_out" in out and "special" in out
    assert "attempts" in out and "requests" in out


def test_a_job_that_does_not_finish_fails_the_run(
    short_hold_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--server-url", short_hold_server.url, "--no-special", "--jobs", "1", "--duration", "30",
         "--retries", "2", *QUICK, "--json", "--quiet"]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == EXIT_JOB_FAILED
    assert len(lines) == 1  # --quiet: the summary only
    assert json.loads(lines[0])["jobs"][0]["outcome"] == "timed_out"


def test_api_key_is_sent(
    live_server_factory: Callable[..., LiveServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = live_server_factory("--api-key", "s3cret", env={"VIDEOSIM_API_KEY": "s3cret"})
    base = ["--server-url", server.url, "--no-special", "--jobs", "1", "--duration", "0.3"]
    assert main([*base, "--api-key", "s3cret", "--quiet"]) == EXIT_OK
    assert main(base) == EXIT_JOB_FAILED
    assert "cannot start a job: Missing or invalid API key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--multiplier", "0.5"], {}, "invalid setting multiplier: Input should be greater"),
        (["--initial", "0"], {}, "invalid setting initial_s: Input should be greater than 0"),
        (["--read-timeout", "inf"], {}, "invalid setting read_timeout_s: Input should be a finite"),
        (["--initial", "5", "--max-delay", "1"], {}, "max_delay_s (1.0) must be >= initial_s"),
        ([], {"VIDEOSIM_MAX_RPS": "abc"}, "invalid setting max_rps: Input should be a valid"),
        ([], {"RETRIES": "lots"}, "invalid setting max_attempts: Input should be a valid integer"),
        (["--server-url", "localhost"], {}, "server URL must look like http://host:port"),
        (["--server-url", "http://host:99999"], {}, "server URL has no valid port"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("videosim-client: ")
    assert message in err


def test_a_port_nobody_listens_on_is_said_at_once_and_exits_3() -> None:
    """Nothing ever answered: no 60 s of retries, no "stopped answering"; one line within
    the connect timeout, whatever else was asked (jobs, the special job, --json)."""
    url = f"http://127.0.0.1:{free_port()}"
    for extra in ([], ["--jobs", "0", "--json"]):
        result = run_cli("--server-url", url, "--connect-timeout", "0.5", *QUICK, *extra,
                         timeout=15)  # fmt: skip
        assert result.returncode == EXIT_UNREACHABLE
        assert result.stderr == (
            f"videosim-client: nothing answers at {url} (connection refused) within the "
            "0.5 s connect timeout; is the server running? (start one with videosim-server)\n"
        )
    assert result.stdout.count("\n") == 1  # --json: the summary alone, nothing watched
    (special,) = json.loads(result.stdout)["jobs"]
    assert special["outcome"] == "unreachable" and special["requests"] == 0


def test_refused_starts_are_counted_without_the_special_job(
    short_hold_server: LiveServer,
) -> None:
    result = run_cli("--server-url", short_hold_server.url, *QUICK, "--jobs", "2",
                     "--duration", "1e9", "--json")  # fmt: skip
    assert result.returncode == EXIT_JOB_FAILED
    assert result.stderr.splitlines()[-1] == (
        "videosim-client: 2 of 2 jobs did not start: cannot start a job: "
        "duration_s: Input should be less than or equal to 3600"
    )


def test_ctrl_c_exits_130_without_a_traceback(short_hold_server: LiveServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "client_core", "--server-url", short_hold_server.url,
         "--preset", "fixed", "--initial", "10", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # A suite started with & or nohup runs with SIGINT ignored, and a child inherits
        # that: give it the default back, so Python turns SIGINT into KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.readline()  # the first event: watches are running
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == EXIT_INTERRUPTED
    assert stderr == "videosim-client: interrupted\n"


def test_the_special_job_is_bounded_in_time_as_the_seed_client_was() -> None:
    # The original preset: 5 polls whose schedule spans 1 + 2 + 4 + 8 s.
    assert special_job_policy(BackoffPolicy.original()).deadline_s == 15
    # No budget and no deadline: 5 polls, and the time those 5 polls would take.
    bounded = special_job_policy(BackoffPolicy.fixed(2.0))
    assert (bounded.max_attempts, bounded.deadline_s) == (5, 8.0)
    # A deadline the user gave is kept as it is.
    assert special_job_policy(BackoffPolicy(deadline_s=3.0)).deadline_s == 3.0


async def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    """run_cli without blocking the loop (for servers that live in the test's loop)."""
    return await asyncio.to_thread(run_cli, *args)


async def test_answers_with_an_unknown_result_are_rejected_not_unreachable() -> None:
    weird = http_answer("200 OK", b'{"job_id": "job-1", "result": "sideways"}')
    async with RawHttpServer(weird) as server:
        result = await run_child("--server-url", server.url, *QUICK, "--json", "--quiet")
    summary = json.loads(result.stdout.splitlines()[-1])
    assert result.returncode == EXIT_JOB_FAILED  # the server answered: not exit 3
    assert {job["outcome"] for job in summary["jobs"]} == {"rejected"}
    assert "malformed answer: unknown result 'sideways'" in summary["jobs"][0]["last_error"]


async def test_exit_0_needs_the_special_job_to_time_out() -> None:
    # A server on which every job, the special one too, is already completed.
    done = http_answer("200 OK", b'{"job_id": "job-1", "result": "completed"}')
    async with RawHttpServer(done) as server:
        result = await run_child("--server-url", server.url, *QUICK, "--json", "--quiet")
    jobs = {job["special"]: job for job in json.loads(result.stdout.splitlines()[-1])["jobs"]}
    assert jobs[True]["outcome"] == "completed" and jobs[False]["outcome"] == "completed"
    assert result.returncode == EXIT_JOB_FAILED  # the special job must end timed_out


def test_max_attempts_and_retries_are_the_same_flag(
    short_hold_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag in ("--retries", "--max-attempts"):
        code = main(["--server-url", short_hold_server.url, "--jobs", "0", flag, "2",
                     "--preset", "fixed", "--initial", "0.05", "--json", "--quiet"])  # fmt: skip
        special = json.loads(capsys.readouterr().out.splitlines()[-1])["jobs"][0]
        assert code == EXIT_OK and special["attempts"] == 2, flag


def test_each_job_is_watched_as_soon_as_it_started(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--server-url", live_server.url, "--jobs", "300", "--duration", "0.5",
                 "--start-rate", "150", "--no-special", "--preset", "default", "--json",
                 "--quiet", "--strategy", "long-poll"])  # fmt: skip
    ids = {job["job_id"] for job in json.loads(capsys.readouterr().out)["jobs"]}
    assert code == EXIT_OK and len(ids) == 300
    records = []
    with httpx.Client(base_url=live_server.url) as http:
        for offset in range(0, 10_000, 1000):
            page = http.get("/jobs", params={"offset": offset, "limit": 1000}).json()["jobs"]
            records += [record for record in page if record["job_id"] in ids]
    first_poll = min(record["first_final_seen_at"] for record in records)
    last_created = max(record["created_at"] for record in records)
    assert first_poll < last_created  # watching began while later jobs were still starting
    # The start answer told each job's duration: one poll just after it is enough.
    assert sum(record["status_requests"] for record in records) == 300
    assert max(record["detection_lag_s"] for record in records) < 3.0


async def test_a_pause_longer_than_the_deadline_is_named_as_such() -> None:
    """A Retry-After of a billion seconds was reported as "gave up at the deadline" 1.8 s
    into a 60 s deadline; it now says that the server asked to wait past it."""
    busy = http_answer("503 Service Unavailable", b'{"detail": "busy"}', Retry_After="999999999")
    async with RawHttpServer(busy) as server:
        result = await run_child("--server-url", server.url, *QUICK, "--json", "--quiet")
    summary = json.loads(result.stdout.splitlines()[-1])
    errors = [str(job["last_error"]) for job in summary["jobs"]]
    assert errors, summary
    for error in errors:
        assert "gave up at the deadline" not in error, error
        assert "the server asked to wait longer than the" in error, error
