"""Real processes on real stores: an answered start survives kill -9 (SQLite), two
servers on one Redis are one server to a client, and a Redis outage is a 503 with
Retry-After, never a 500 or a hang, until Redis is back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tests.server.conftest import RedisServer, Server
from tests.support.live_server import LiveServer, free_port
from tests.support.long_polls import HeldLongPolls

OpenServer = Callable[..., Awaitable[Server]]


async def _start_until_stopped(url: str, answered: list[str], stop: threading.Event) -> None:
    """Many concurrent starts in a loop; every job id that was answered goes in ``answered``."""

    async def one_client(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await http.post("/start", json={"duration_s": 600})
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 200:
                answered.append(response.json()["job_id"])

    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=5, limits=limits) as http:
        await asyncio.gather(*(one_client(http) for _ in range(32)))


def test_no_answered_start_is_lost_to_kill_9_with_sqlite(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    server = LiveServer(args=["--store", store, "--seed", "1"])
    answered: list[str] = []
    stop = threading.Event()
    try:
        server.start()
        killer = threading.Timer(0.8, server.kill)  # SIGKILL in the middle of the load
        killer.start()
        asyncio.run(_start_until_stopped(server.url, answered, stop))
        killer.join()
        assert len(answered) > 20, "the load never got going"
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            total = http.get("/jobs").json()["total"]
            missing = [
                job_id for job_id in answered if http.get(f"/jobs/{job_id}").status_code != 200
            ]
    finally:
        stop.set()
        server.stop()
    print(f"kill -9: {len(missing)} of {len(answered)} answered starts lost")
    assert missing == [], f"{len(missing)} of {len(answered)} answered starts lost"
    assert total >= len(answered)  # plus any committed whose answer never arrived


def test_sqlite_counters_reach_the_file_within_about_100_ms(tmp_path: Path) -> None:
    server = LiveServer(args=["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--delay", "60"])
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            job_id = http.post("/start").json()["job_id"]
            for _ in range(3):
                http.get(f"/status/{job_id}")
        time.sleep(0.3)  # the documented bound is ~100 ms
        server.kill()
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            record = http.get(f"/jobs/{job_id}").json()
    finally:
        server.stop()
    assert record["status_requests"] == 3 and len(record["requests"]) == 3


def test_two_servers_on_one_redis_show_one_job(
    redis_url: str, live_server_factory: Callable[..., LiveServer]
) -> None:
    first = live_server_factory("--store", redis_url, "--delay", "0.6")
    second = live_server_factory("--store", redis_url, "--delay", "0.6")
    with httpx.Client(timeout=10) as http:
        job_id = http.post(f"{first.url}/start").json()["job_id"]
        results, polls, first_final_at = [], 0, None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            server = (first, second)[polls % 2]
            answer = http.get(f"{server.url}/status/{job_id}")
            polls += 1
            assert answer.status_code == 200, answer.text
            results.append(answer.json()["result"])
            if results[-1] != "pending" and first_final_at is None:
                first_final_at = time.time()
            if len(results) >= 2 and results[-2] != "pending":
                break
            time.sleep(0.1)
        records = [http.get(f"{server.url}/jobs/{job_id}").json() for server in (first, second)]
        listings = [http.get(f"{server.url}/jobs").json() for server in (first, second)]
    assert results[0] == "pending" and results[-1] == results[-2] != "pending"
    assert records[0] == records[1]
    record = records[0]
    assert record["status_requests"] == polls == len(record["requests"])
    assert record["result"] == results[-1]
    assert first_final_at is not None
    assert record["first_final_seen_at"] <= first_final_at  # the first final one, not later
    assert record["first_final_seen_at"] >= record["finishes_at"]
    assert listings[0] == listings[1] and listings[0]["total"] == 1


def test_workers_share_jobs_and_metrics(
    redis_url: str, live_server_factory: Callable[..., LiveServer]
) -> None:
    server = live_server_factory("--store", redis_url, "--workers", "2", "--delay", "30")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        job_ids = [http.post("/start").json()["job_id"] for _ in range(20)]
        # New connections land on either worker; every one sees every job.
        for job_id in job_ids:
            with httpx.Client(base_url=server.url, timeout=10) as fresh:
                assert fresh.get(f"/status/{job_id}").status_code == 200
        metrics = http.get("/metrics").text
    assert 'videosim_jobs{state="pending"} 20.0' in metrics
    started = [line for line in metrics.splitlines() if 'route="/start"' in line]
    assert started and float(started[0].split()[-1]) == 20  # summed over both workers


def test_the_memory_store_refuses_workers_in_one_line(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    result = subprocess.run(
        [sys.executable, "-m", "server", "--workers", "2", "--port", str(free_port())],
        env=clean, capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "videosim-server: --workers 2 needs a shared store (--store redis://host:port/db); "
        "memory lives in one process"
    ]


def test_a_store_that_cannot_open_stops_start_up_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, not JSON either")
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    for store, message in [
        (unreachable, f"cannot reach Redis at {unreachable}: "),
        (f"sqlite:///{garbage}", f"cannot open store file {garbage}: file is not a database"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "server", "--store", store, "--port", str(free_port())],
            env=clean, capture_output=True, text=True, timeout=30, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 2
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"videosim-server: {message}")


async def test_redis_down_is_503_with_retry_after_then_recovers(
    open_server: OpenServer, redis_server: RedisServer, redis_url: str
) -> None:
    server = await open_server(store=redis_url)
    job_id = (await server.start(duration_s=60))["job_id"]
    redis_server.stop()
    try:
        for method, path in [
            ("POST", "/start"),
            ("GET", f"/status/{job_id}"),
            ("GET", f"/jobs/{job_id}"),
            ("GET", "/jobs"),
            ("GET", "/healthz"),
            ("GET", "/metrics"),
        ]:
            started = time.monotonic()
            answer = await server.http.request(method, path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["Retry-After"] == "1"
            assert answer.json() == {"detail": "Job store unavailable; retry shortly"}
            assert time.monotonic() - started < 3, f"{path} hung"
    finally:
        redis_server.start()
    assert (await server.http.get("/healthz")).status_code == 200
    # A restarted Redis has lost its scripts (and, without persistence, its jobs).
    job_id = (await server.start(duration_s=60))["job_id"]
    assert (await server.http.get(f"/status/{job_id}")).json()["result"] == "pending"
    assert (await server.http.get(f"/jobs/{job_id}")).json()["status_requests"] == 1


def test_two_servers_on_one_redis_share_faults_and_the_rate_limit(
    redis_url: str, live_server_factory: Callable[..., LiveServer]
) -> None:
    first = live_server_factory("--store", redis_url, "--delay", "30")
    second = live_server_factory("--store", redis_url, "--delay", "30")
    with httpx.Client(timeout=10) as http:
        job_id = http.post(f"{first.url}/start").json()["job_id"]
        put = http.put(f"{first.url}/admin/faults", json={"rate_limit_rps": 2})
        assert put.status_code == 200
        deadline = time.monotonic() + 5
        while http.get(f"{second.url}/admin/faults").json()["rate_limit_rps"] != 2:
            assert time.monotonic() < deadline, "the second server never took up the faults"
            time.sleep(0.1)
        time.sleep(1.1)  # both buckets full again
        codes = [
            http.get(f"{server.url}/status/{job_id}").status_code
            for server in (first, second, first, second)
        ]
        http.put(f"{second.url}/admin/faults", json={})
    assert codes[:2] == [200, 200] and 429 in codes[2:]  # one bucket of 2, not two


def test_sigterm_with_workers_answers_held_long_polls_and_is_quiet(
    redis_url: str, live_server_factory: Callable[..., LiveServer]
) -> None:
    """uvicorn builds the worker servers itself; held long-polls used to hold the stop for
    the 2 s grace, then get a 500 and an ERROR with a traceback."""
    server = live_server_factory("--store", redis_url, "--workers", "2")
    job_id = httpx.post(f"{server.url}/start", json={"duration_s": 60}).json()["job_id"]
    polls = HeldLongPolls(server.url, job_id, 2)
    time.sleep(1.0)  # held by then, even on a busy machine: the job has 60 s to go
    assert server.process is not None
    stopped_at = time.monotonic()
    server.process.terminate()
    server.process.wait(timeout=10)
    assert time.monotonic() - stopped_at < 10  # not held for good; the log shows the rest
    answers = polls.join()
    assert [
        isinstance(answer, httpx.Response) and answer.json()["result"] for answer in answers
    ] == ["pending", "pending"]
    log = server.stderr_text()
    assert "ERROR" not in log and "Traceback" not in log, log


async def test_a_start_sqlite_cannot_commit_is_503_not_500(
    open_server: OpenServer, tmp_path: Path
) -> None:
    server = await open_server(store=f"sqlite:///{tmp_path / 'jobs.db'}")
    await server.start()
    connection = server.state.store._connection  # type: ignore[attr-defined]
    connection.execute("PRAGMA query_only = ON")  # every write now fails, as on a full disk
    answer = await server.http.post("/start")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"


async def test_a_redis_that_stops_answering_is_503_within_about_a_second(
    open_server: OpenServer, redis_server: RedisServer, redis_url: str
) -> None:
    server = await open_server(store=redis_url)
    job_id = (await server.start(duration_s=60))["job_id"]
    redis_server.process.send_signal(signal.SIGSTOP)  # alive, connected, silent
    try:
        started = time.monotonic()
        answer = await server.http.get(f"/status/{job_id}")
        waited = time.monotonic() - started
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert waited < 3, f"held {waited:.1f} s"
    assert (await server.http.get(f"/status/{job_id}")).json()["result"] == "pending"
