"""Server: how fast GET /status is, what a job costs in memory, what a held long-poll costs.

Each figure is measured in ``rounds`` rounds and printed as their median with its spread
((max - min) / median), or as a range when the rounds moved more than 25 % (bench.report).

1. Throughput. ``GET /status/{id}`` (a pending job, hints on) on ``python -m server``
   against a bare FastAPI app with one constant route (:mod:`bench.bare_app`) in a process
   of its own with the same uvicorn options, loaded by the same generator from a third
   process, alternately A, B, A, B..., at 32 and 256 connections. The ratio (one per
   round, A over the B next to it) is what the real route costs over FastAPI's floor.
2. Memory per job, the store alone in a fresh process (:mod:`bench.store_memory`): never
   polled, polled 10 times, and polled until its request log is full.
3. Per round, a fresh server: RSS before and after N jobs made through ``POST /start``;
   then its CPU and memory while idle and while holding thousands of ``?wait=30``
   requests on pending jobs (one connection each, from another process).
4. Long-poll wake-up lag: the store on the real clock, one waiter per job
   (:mod:`bench.long_poll_lag`): how late a held request learns its job finished.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import psutil

from bench.bare_app import CONSTANT_PATH as BARE_PATH
from bench.load_generator import LongPollHolders, default_tool, generate_load
from bench.report import Column, SectionResult, Table, over_rounds, ratio, spread_column
from bench.server_process import (
    ServerProcess,
    raise_open_file_limit,
    run_bench_child,
)
from server.jobs.job import DEFAULT_REQUEST_LOG_LENGTH

MIB = 2**20
LONG_JOB_S = 3600.0  # every job stays pending for the whole section
STATUS_ROUTE = "GET /status/{id}"
BARE_ROUTE = "GET (bare FastAPI app)"
POLLED_OFTEN = 10  # "a job polled 10 times": the typical job


@dataclass(frozen=True, slots=True)
class ServerSizes:
    rounds: int  # rounds of every measurement (A/B alternating for throughput)
    round_s: int  # seconds of load per route per round
    connections: tuple[int, ...]  # the throughput comparison runs at each
    starts: int  # jobs created through POST /start, per round
    starts_time_cap_s: float
    store_jobs: int  # jobs created straight in the store (never / 10 times polled)
    store_jobs_full_log: int  # jobs polled until their request log is full
    held: int  # long-poll requests held at once
    cpu_window_s: float
    lag_jobs: int  # waiters in the long-poll lag measurement


FULL = ServerSizes(
    rounds=3,
    round_s=2,
    connections=(32, 256),
    starts=20_000,
    starts_time_cap_s=30.0,
    store_jobs=200_000,
    store_jobs_full_log=20_000,
    held=5_000,
    cpu_window_s=2.0,
    lag_jobs=2_000,
)
QUICK = ServerSizes(
    rounds=2,
    round_s=1,
    connections=(16,),
    starts=1_000,
    starts_time_cap_s=10.0,
    store_jobs=20_000,
    store_jobs_full_log=1_000,
    held=200,
    cpu_window_s=0.5,
    lag_jobs=200,
)


def run(quick: bool = False) -> SectionResult:
    sizes = QUICK if quick else FULL
    tool = default_tool()
    result = SectionResult(
        name="server",
        title="Server: GET /status vs a bare app, memory per job, held long-polls",
        parameters={"load_generator": tool, **asdict(sizes)},
    )
    result.notes.append(
        f"load generator: {tool}"
        + (" (C, wrk -t1)" if tool == "wrk" else " (asyncio raw sockets, separate process)")
    )
    throughput = status_vs_bare_route(sizes, tool)
    result.tables.append(throughput_table(throughput, sizes, tool))
    result.details["throughput_rounds"] = throughput

    store = [store_memory(sizes) for _ in range(sizes.rounds)]
    result.tables.append(store_memory_table(store, sizes))
    result.details["store_memory_rounds"] = store

    raise_open_file_limit(sizes.held + 2048)  # the server children inherit it
    served = []
    for _ in range(sizes.rounds):
        server = ServerProcess.videosim("--delay", str(LONG_JOB_S), "--seed", "1")
        with server:
            served.append(
                {"post_start": memory_after_starts(server, sizes, tool),
                 "long_poll": long_poll_cost(server, sizes)}
            )  # fmt: skip
    result.tables.append(server_memory_table(served, sizes))
    result.details["server_rounds"] = served

    lags = [long_poll_lag(sizes.lag_jobs) for _ in range(sizes.rounds)]
    result.tables.append(long_poll_lag_table(lags, sizes))
    result.details["long_poll_lag_rounds"] = lags
    short = [r["post_start"]["jobs"] for r in served if r["post_start"]["jobs"] < sizes.starts]
    if short:
        result.notes.append(
            f"POST /start stopped at the {sizes.starts_time_cap_s:g} s cap after "
            f"{min(short):,} jobs (not {sizes.starts:,}); bytes/job is still per job stored"
        )
    return result


# --- 1. throughput ------------------------------------------------------------------------


def status_vs_bare_route(
    sizes: ServerSizes, tool: str
) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """Alternate the two servers at each connection count; returns every round of each."""
    rounds: dict[int, dict[str, list[dict[str, Any]]]] = {}
    videosim = ServerProcess.videosim("--delay", str(LONG_JOB_S), "--seed", "1")
    bare = ServerProcess.app_factory("bench.bare_app:create_app")
    with videosim, bare:
        job_id = httpx.post(f"{videosim.url}/start", timeout=5).json()["job_id"]
        urls = {
            STATUS_ROUTE: f"{videosim.url}/status/{job_id}",
            BARE_ROUTE: f"{bare.url}{BARE_PATH}",
        }
        for connections in sizes.connections:
            # Warm-up: connections, code paths and allocator for both; not reported.
            for url in urls.values():
                generate_load(tool, url, connections=connections, seconds=1)
            rounds[connections] = {STATUS_ROUTE: [], BARE_ROUTE: []}
            for _ in range(sizes.rounds):
                for route, url in urls.items():
                    load = generate_load(tool, url, connections=connections, seconds=sizes.round_s)
                    rounds[connections][route].append(load.as_json())
    return rounds


def throughput_table(
    rounds: dict[int, dict[str, list[dict[str, Any]]]], sizes: ServerSizes, tool: str
) -> Table:
    table = Table(
        title=f"Throughput, each app in its own uvicorn process, {tool}, "
        f"{sizes.rounds} alternating rounds x {sizes.round_s} s per route",
        columns=[
            Column("connections", "conns", "{:,}"),
            Column("route", "route"),
            Column("per_second", "req/s (median)", "{:,.0f}"),
            spread_column("per_second"),
            Column("p50_ms", "p50 ms", "{:.1f}"),
            Column("p99_ms", "p99 ms", "{:.1f}"),
            Column("relative", "vs bare (median of rounds)", "{:.2f}x"),
            spread_column("relative", "ratio spread"),
            Column("failed", "errors", "{:,}"),
        ],
        caption="bare = a FastAPI app with one constant route and nothing else "
        "(bench/bare_app.py), same uvicorn options; each round's ratio is GET /status "
        "over the bare run right after it; spread = (max - min) / median",
    )
    for connections, by_route in rounds.items():
        bare_runs = by_route[BARE_ROUTE]
        for route, runs in by_route.items():
            ratios = [
                ratio(run["per_second"], bare["per_second"])
                for run, bare in zip(runs, bare_runs, strict=True)
            ]
            table.add(
                connections=connections,
                route=route,
                **over_rounds("per_second", [r["per_second"] for r in runs]),
                p50_ms=_median_of(runs, "p50_ms"),
                p99_ms=_median_of(runs, "p99_ms"),
                **over_rounds("relative", ratios),
                failed=sum(r["failed"] for r in runs),
            )
    return table


def _median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


# --- 2. memory ------------------------------------------------------------------------------


def memory_after_starts(server: ServerProcess, sizes: ServerSizes, tool: str) -> dict[str, Any]:
    """RSS of the server before and after ``sizes.starts`` POST /start (no body)."""
    process = server.ps()

    def jobs_stored() -> int:
        return int(httpx.get(f"{server.url}/healthz", timeout=5).json()["jobs"])

    before = process.memory_info().rss
    load = generate_load(
        tool,
        f"{server.url}/start",
        connections=sizes.connections[0],
        seconds=sizes.starts_time_cap_s,
        method="POST",
        stop_after=sizes.starts,
        count_so_far=jobs_stored,
    )
    jobs = jobs_stored()
    after = process.memory_info().rss
    return {
        "jobs": jobs,
        "rss_before_mib": before / MIB,
        "rss_after_mib": after / MIB,
        "bytes_per_job": (after - before) / max(jobs, 1),
        "per_second": load.per_second,
        "load": load.as_json(),
    }


def store_memory(sizes: ServerSizes) -> dict[str, Any]:
    """Bytes per job never polled, polled 10 times, and with a full request log."""
    often = _store_memory_child(sizes.store_jobs, POLLED_OFTEN)
    full = _store_memory_child(sizes.store_jobs_full_log, DEFAULT_REQUEST_LOG_LENGTH)
    return {
        "never_polled": often["bytes_per_job"],
        "polled_often": often["bytes_per_job_polled"],
        "full_log": full["bytes_per_job_polled"],
        "runs": [often, full],
    }


def _store_memory_child(jobs: int, polls: int) -> dict[str, Any]:
    """``python -m bench.store_memory`` in a fresh process: nothing else allocates there."""
    arguments = ["--jobs", str(jobs), "--polls", str(polls)]
    return run_bench_child("bench.store_memory", *arguments, timeout_s=120)


def store_memory_table(rounds: list[dict[str, Any]], sizes: ServerSizes) -> Table:
    table = Table(
        title=f"Memory per job in the store (RSS, fresh process), {len(rounds)} rounds",
        columns=[
            Column("job", "job"),
            Column("jobs", "jobs", "{:,}"),
            Column("bytes_per_job", "bytes/job (median)", "{:,.0f}"),
            spread_column("bytes_per_job"),
        ],
        caption="JobTable.create then record_status_request as GET /status does; "
        f"the request log keeps the last {DEFAULT_REQUEST_LOG_LENGTH} requests",
    )
    rows = (
        ("never polled", sizes.store_jobs, "never_polled"),
        (f"polled {POLLED_OFTEN} times", sizes.store_jobs, "polled_often"),
        (f"full log ({DEFAULT_REQUEST_LOG_LENGTH} polls)", sizes.store_jobs_full_log, "full_log"),
    )
    for label, jobs, key in rows:
        table.add(job=label, jobs=jobs, **over_rounds("bytes_per_job", [r[key] for r in rounds]))
    return table


def server_memory_table(rounds: list[dict[str, Any]], sizes: ServerSizes) -> Table:
    table = Table(
        title=f"The running server, {len(rounds)} rounds (a fresh server each): memory per "
        f"job made by POST /start, and CPU and memory holding {sizes.held:,} ?wait=30 requests",
        columns=[
            Column("figure", "figure"),
            Column("value", "median", "{:,.1f}"),
            spread_column("value"),
        ],
        caption="held: one connection each, from another process; per held request = "
        "(RSS holding - RSS idle) / requests held (per /metrics); open connections "
        "without a request alone cost the 'per open connection' row; CPU ticks are 10 ms",
    )
    starts = [r["post_start"] for r in rounds]
    polls = [r["long_poll"] for r in rounds]

    def per_request(row: dict[str, Any], state: str, count_key: str) -> float:
        extra_mib = row[state]["rss_mib"] - row["idle"]["rss_mib"]
        return float(extra_mib * 1024 / max(row[state][count_key], 1))

    figures = (
        ("POST /start: bytes per job", [r["bytes_per_job"] for r in starts]),
        ("POST /start: jobs/s", [r["per_second"] for r in starts]),
        ("idle: CPU % of a core", [r["idle"]["cpu_percent"] for r in polls]),
        ("holding: CPU % of a core", [r["holding"]["cpu_percent"] for r in polls]),
        (
            "per open connection, no request: KiB",
            [per_request(r, "connections_only", "connections") for r in polls],
        ),
        ("per held long-poll: KiB", [per_request(r, "holding", "held") for r in polls]),
        ("requests held (per /metrics)", [r["holding"]["held"] for r in polls]),
        ("answered before release (expect 0)", [r["holding"]["answered_early"] for r in polls]),
    )
    for label, values in figures:
        table.add(figure=label, **over_rounds("value", values))
    return table


# --- 4. long-poll wake-up lag ------------------------------------------------------------------


def long_poll_lag(jobs: int) -> dict[str, Any]:
    """``python -m bench.long_poll_lag`` in a fresh process (uvloop, as uvicorn runs)."""
    return run_bench_child("bench.long_poll_lag", "--jobs", str(jobs), timeout_s=60)


def long_poll_lag_table(rounds: list[dict[str, Any]], sizes: ServerSizes) -> Table:
    table = Table(
        title=f"Long-poll wake-up lag: {sizes.lag_jobs:,} waiters on jobs of 0.5-2.5 s, "
        f"{len(rounds)} rounds",
        columns=[
            Column("percentile", "lag"),
            Column("ms", "ms (median)", "{:.2f}"),
            spread_column("ms"),
        ],
        caption="lag = when LongPolls.wait_until_settled returns - the job's finish time, "
        "real clock, uvloop; one alarm for every wait (a Linux timerfd, set to the "
        "microsecond)",
    )
    for key in ("lag_p50_ms", "lag_p90_ms", "lag_p99_ms", "lag_max_ms"):
        table.add(percentile=key[4:-3], **over_rounds("ms", [r[key] for r in rounds]))
    return table


# --- 3. long-poll ---------------------------------------------------------------------------


def long_poll_cost(server: ServerProcess, sizes: ServerSizes) -> dict[str, Any]:
    """Server CPU % and RSS: idle; with idle connections; holding ``sizes.held`` requests."""
    process = server.ps()
    job_ids = _pending_job_ids(server.url, sizes.held)
    idle = _cpu_and_memory(process, sizes.cpu_window_s)
    # Connections alone (no request): how much of a held request's memory is the socket.
    connections = job_ids[: max(1, sizes.held // 5)]
    with LongPollHolders(server.url, connections, 30, 25, send=False) as opened:
        sent = opened.start(timeout_s=30)
        time.sleep(1.0)  # let the server accept them all
        connected = {**_cpu_and_memory(process, 0.0), "connections": sent["sent"]}
        opened.release()
    began = time.monotonic()
    with LongPollHolders(server.url, job_ids, wait_s=30, max_hold_s=25) as holders:
        sent = holders.start(timeout_s=30)
        held = _wait_until_held(server.url, sent["sent"], timeout_s=15)
        parked_s = time.monotonic() - began
        holding = _cpu_and_memory(process, sizes.cpu_window_s)
        held_after = _held_now(server.url)
        released = holders.release()
    return {
        "idle": idle,
        "connections_only": connected,
        "holding": {
            **holding,
            "held": held,
            "held_at_end": held_after,
            "sent": sent["sent"],
            "connect_errors": sent["connect_errors"],
            "answered_early": released["answered_early"],
            "seconds_to_park": parked_s,
        },
    }


def _pending_job_ids(base_url: str, count: int) -> list[str]:
    ids: list[str] = []
    with httpx.Client(base_url=base_url, timeout=10) as http:
        while len(ids) < count:
            page = http.get("/jobs", params={"offset": len(ids), "limit": 1000}).json()
            if not page["jobs"]:
                break
            ids += [job["job_id"] for job in page["jobs"] if job["result"] == "pending"]
    if len(ids) < count:
        raise RuntimeError(f"only {len(ids)} pending jobs to long-poll, {count} needed")
    return ids[:count]


def _held_now(base_url: str) -> int:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("videosim_long_polls_held "):
            return int(float(line.split()[1]))
    raise RuntimeError("the server's /metrics has no videosim_long_polls_held")


def _wait_until_held(base_url: str, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    held = _held_now(base_url)
    while held < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        held = _held_now(base_url)
    return held


def _cpu_and_memory(process: psutil.Process, window_s: float) -> dict[str, float | None]:
    """CPU seconds (user + system) the process used over ``window_s``, as a % of one core,
    and its RSS at the end. psutil's CPU times tick every 10 ms."""
    before = process.cpu_times()
    began = time.monotonic()
    time.sleep(window_s)
    after = process.cpu_times()
    wall = time.monotonic() - began
    cpu_s = (after.user - before.user) + (after.system - before.system)
    return {
        "cpu_seconds": cpu_s,
        "wall_seconds": wall,
        "cpu_percent": 100 * cpu_s / wall if window_s > 0 else None,
        "rss_mib": process.memory_info().rss / MIB,
    }
