"""Server: how fast GET /status is, what jobs cost in memory, what held long-polls cost in CPU.

Three measurements, each a comparison made within one run:

1. Throughput. ``GET /status/{id}`` (a pending job, hints on) on ``python -m server``
   against a bare FastAPI app with one constant route (:mod:`bench.bare_app`) in a process
   of its own with the same uvicorn options, loaded by the same generator from a third
   process, alternately A, B, A, B..., at 32 and 256 connections. The ratio is what the
   real route costs over FastAPI's floor on this machine.
2. Memory. Server RSS before and after N jobs made through ``POST /start``, next to the
   store alone creating 1,000,000 jobs in a fresh process (:mod:`bench.store_memory`).
3. Long-poll. The server's CPU use while idle and while holding thousands of
   ``?wait=30`` requests on pending jobs (one connection each, from another process).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import psutil

from bench.bare_app import CONSTANT_PATH as BARE_PATH
from bench.load_generator import LongPollHolders, default_tool, generate_load
from bench.report import Column, SectionResult, Table, ratio
from bench.server_process import ROOT, ServerProcess, child_environment, raise_open_file_limit

MIB = 2**20
LONG_JOB_S = 3600.0  # every job stays pending for the whole section
STATUS_ROUTE = "GET /status/{id}"
BARE_ROUTE = "GET (bare FastAPI app)"


@dataclass(frozen=True, slots=True)
class ServerSizes:
    rounds: int  # A/B rounds of the throughput comparison
    round_s: int  # seconds of load per route per round
    connections: tuple[int, ...]  # the throughput comparison runs at each
    starts: int  # jobs created through POST /start
    starts_time_cap_s: float
    store_jobs: int  # jobs created straight in the store
    held: int  # long-poll requests held at once
    cpu_window_s: float


FULL = ServerSizes(
    rounds=3,
    round_s=2,
    connections=(32, 256),
    starts=100_000,
    starts_time_cap_s=75.0,
    store_jobs=1_000_000,
    held=5_000,
    cpu_window_s=2.0,
)
QUICK = ServerSizes(
    rounds=1,
    round_s=1,
    connections=(16,),
    starts=2_000,
    starts_time_cap_s=20.0,
    store_jobs=100_000,
    held=200,
    cpu_window_s=1.0,
)


def run(quick: bool = False) -> SectionResult:
    sizes = QUICK if quick else FULL
    tool = default_tool()
    result = SectionResult(
        name="server",
        title="Server: GET /status throughput, memory per job, CPU while holding long-polls",
        parameters={"load_generator": tool, **asdict(sizes)},
    )
    result.notes.append(
        f"load generator: {tool}"
        + (" (C, wrk -t1)" if tool == "wrk" else " (asyncio raw sockets, separate process)")
    )
    throughput = status_vs_bare_route(sizes, tool)
    result.tables.append(throughput_table(throughput, sizes, tool))
    result.details["throughput_rounds"] = throughput

    raise_open_file_limit(sizes.held + 2048)  # the server child inherits it
    with ServerProcess.videosim("--delay", str(LONG_JOB_S), "--seed", "1") as server:
        memory = memory_after_starts(server, sizes, tool)
        # The store measurement is a separate process reading its own RSS; it runs while
        # the server mostly waits on long-polls, whose cost is read as CPU *time*.
        with StoreMemoryChild(sizes.store_jobs) as store_child:
            holding = long_poll_cost(server, sizes)
            store = store_child.result()
        result.tables.append(memory_table(memory, store))
        result.details["memory"] = {"post_start": memory, "store": store}
        result.tables.append(long_poll_table(holding, sizes))
        result.details["long_poll"] = holding
    if memory["jobs"] < sizes.starts:
        result.notes.append(
            f"POST /start stopped at the {sizes.starts_time_cap_s:g} s cap after "
            f"{memory['jobs']:,} jobs (not {sizes.starts:,}); bytes/job is still per job stored"
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
            Column("spread", "spread"),
            Column("rounds", "req/s each round"),
            Column("p50_ms", "p50 ms", "{:.1f}"),
            Column("p99_ms", "p99 ms", "{:.1f}"),
            Column("relative", "vs bare", "{:.2f}x"),
            Column("failed", "errors", "{:,}"),
        ],
        caption="bare = a FastAPI app with one constant route and nothing else "
        "(bench/bare_app.py), same uvicorn options; spread = (max - min) / median",
    )
    for connections, by_route in rounds.items():
        medians = {
            route: statistics.median(r["per_second"] for r in runs)
            for route, runs in by_route.items()
        }
        for route, runs in by_route.items():
            per_second = [r["per_second"] for r in runs]
            table.add(
                connections=connections,
                route=route,
                per_second=medians[route],
                spread=spread(per_second),
                rounds=" ".join(f"{value:,.0f}" for value in per_second),
                p50_ms=_median_of(runs, "p50_ms"),
                p99_ms=_median_of(runs, "p99_ms"),
                relative=ratio(medians[route], medians[BARE_ROUTE]),
                failed=sum(r["failed"] for r in runs),
            )
    return table


def spread(values: list[float]) -> str:
    """(max - min) / median as a percentage: above 25 % a figure is a range, not a number."""
    middle = statistics.median(values)
    if len(values) < 2 or middle <= 0:
        return "-"
    return f"{100 * (max(values) - min(values)) / middle:.0f} %"


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


class StoreMemoryChild:
    """The store alone in a fresh process (``python -m bench.store_memory``), running in
    the background; ``result()`` waits for its report."""

    def __init__(self, jobs: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.store_memory", "--jobs", str(jobs), "--polls", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_environment(),
        )

    def result(self, timeout_s: float = 300) -> dict[str, Any]:
        output, _ = self._process.communicate(timeout=timeout_s)
        if self._process.returncode != 0:
            raise RuntimeError(f"bench.store_memory exited with {self._process.returncode}")
        measured: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return measured

    def __enter__(self) -> StoreMemoryChild:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)


def memory_table(http: dict[str, Any], store: dict[str, Any]) -> Table:
    table = Table(
        title="Memory per job (resident set size, psutil)",
        columns=[
            Column("how", "jobs created"),
            Column("jobs", "jobs", "{:,}"),
            Column("rss_before_mib", "RSS before MiB", "{:.0f}"),
            Column("rss_after_mib", "RSS after MiB", "{:.0f}"),
            Column("bytes_per_job", "bytes/job", "{:,.0f}"),
            Column("per_second", "jobs/s", "{:,.0f}"),
        ],
        caption="POST /start: the running server; MemoryJobs.create: a fresh process, store only",
    )
    table.add(how="POST /start (server process)", **_pick(http))
    table.add(how="MemoryJobs.create (fresh process)", **_pick(store))
    return table


def _pick(measured: dict[str, Any]) -> dict[str, Any]:
    keys = ("jobs", "rss_before_mib", "rss_after_mib", "bytes_per_job", "per_second")
    return {key: measured[key] for key in keys}


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


def long_poll_table(measured: dict[str, Any], sizes: ServerSizes) -> Table:
    idle, holding = measured["idle"], measured["holding"]
    connected = measured["connections_only"]
    table = Table(
        title=f"Long-poll: server CPU over {sizes.cpu_window_s:g} s and memory, idle vs "
        f"holding {sizes.held:,} ?wait=30 requests (one connection each)",
        columns=[
            Column("state", "server state"),
            Column("count", "connections", "{:,}"),
            Column("cpu_percent", "CPU % of a core", "{:.2f}"),
            Column("rss_mib", "RSS MiB", "{:.0f}"),
            Column("per_connection_kib", "RSS per connection KiB", "{:.1f}"),
        ],
        caption=f"{holding['answered_early']} answered before release (expected 0); "
        f"{holding['connect_errors']} connect errors; {holding['held']:,} held per /metrics; "
        f"parked in {holding['seconds_to_park']:.1f} s; CPU time resolution 10 ms",
    )

    def per_connection(row: dict[str, Any], count: int) -> float:
        return (row["rss_mib"] - idle["rss_mib"]) * 1024 / max(count, 1)

    table.add(state="idle", count=0, cpu_percent=idle["cpu_percent"], rss_mib=idle["rss_mib"])
    table.add(
        state="open connections, no request",
        count=connected["connections"],
        rss_mib=connected["rss_mib"],
        per_connection_kib=per_connection(connected, connected["connections"]),
    )
    table.add(
        state="holding ?wait=30",
        count=holding["held"],
        cpu_percent=holding["cpu_percent"],
        rss_mib=holding["rss_mib"],
        per_connection_kib=per_connection(holding, holding["held"]),
    )
    return table
