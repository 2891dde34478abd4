"""Client: CPU per request and detection lag for one process running 10,000 jobs of 20 s.

The parent starts a fresh real server for each run; a child process (``python -m
bench.client_scale URL --jobs N --duration S --transport lean|httpx --strategy S``) runs
the headless runner (:func:`client_core.runner.run`, what ``videosim-client`` does) on N
jobs of S seconds: starts in chunks, paced, each job watched as soon as its chunk is
answered, default policy. It reads its own CPU time with psutil around exactly that work
(interpreter start-up and imports are not counted) and prints one JSON line.

Two transports are compared in the same run, alternately, for ``rounds`` rounds, with
long-poll (what auto picked before the server could push: one polling request per job):
the client's default (:class:`client_core.lean_transport.LeanTransport`, h11 on asyncio
streams) and httpx's own (``httpx.AsyncHTTPTransport``, httpcore over anyio) with the
limits the client gives a caller's transport. Requests per job and detection lag come from
the server's records of the jobs (``GET /jobs``), not from the client.

Then the event stream against polling (``push_table``): client CPU per job with
``stream``, long-poll and ``auto`` (which now picks the stream), and a stream run whose
server restarts mid-run with its jobs kept in a sqlite file.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.report import Column, SectionResult, Table, over_rounds, ratio, spread_column
from bench.server_process import ROOT, ServerProcess, child_environment, run_bench_child
from client_core import BackoffPolicy, Strategy, VideoSimClient
from client_core.channel import KEEPALIVE, SPARE_CONNECTIONS
from client_core.comparison_report import percentile
from client_core.runner import RunOptions
from client_core.runner import run as run_jobs

LEAN = "lean (default)"
HTTPX = "httpx default"
TRANSPORTS = {"lean": LEAN, "httpx": HTTPX}
MAX_IN_FLIGHT = 64  # VideoSimClient's default


@dataclass(frozen=True, slots=True)
class ScaleSizes:
    jobs: int
    duration_s: float  # every job's duration
    rounds: int  # alternating lean, httpx rounds
    time_cap_s: float  # per child run
    push_rounds: int  # alternating stream, long-poll, auto rounds


FULL = ScaleSizes(jobs=10_000, duration_s=20.0, rounds=3, time_cap_s=150.0, push_rounds=2)
QUICK = ScaleSizes(jobs=300, duration_s=1.0, rounds=2, time_cap_s=60.0, push_rounds=1)


# --- the child: the runner on N jobs ------------------------------------------------------------


def httpx_transport() -> httpx.AsyncBaseTransport:
    """httpx's transport with the pool the client would give it (bench: the "B" side)."""
    connections = MAX_IN_FLIGHT + SPARE_CONNECTIONS
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=min(KEEPALIVE, connections),
            keepalive_expiry=30.0,
        )
    )


async def run_the_runner(
    base_url: str,
    jobs: int,
    duration_s: float,
    transport: str,
    strategy: Strategy = Strategy.AUTO,
) -> dict[str, Any]:
    client = VideoSimClient(
        base_url,
        max_in_flight=MAX_IN_FLIGHT,
        transport=httpx_transport() if transport == "httpx" else None,
    )
    options = RunOptions(
        jobs=jobs, duration_s=duration_s, special=False, quiet=True, json_lines=True
    )
    out = io.StringIO()
    me = psutil.Process()
    cpu_before = me.cpu_times()
    began = time.perf_counter()
    exit_code = await run_jobs(client, BackoffPolicy(), strategy, options, out=out)
    wall = time.perf_counter() - began
    cpu_after = me.cpu_times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    outcomes = Counter(str(job["outcome"]) for job in summary["jobs"])
    return {
        "jobs": jobs,
        "transport": transport,
        "strategy": strategy.value,
        "exit_code": exit_code,
        "wall_s": wall,
        "cpu_s": cpu,
        "outcomes": dict(outcomes),
        "not_resolved": jobs - outcomes["completed"] - outcomes["error"],
        "client_stats": asdict(client.stats),
        "peak_rss_mib": me.memory_info().rss / 2**20,
    }


def child_main() -> None:
    parser = argparse.ArgumentParser(description="run the runner on N jobs; print JSON")
    parser.add_argument("url")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), default="lean")
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default="auto")
    args = parser.parse_args()
    measured = asyncio.run(
        run_the_runner(args.url, args.jobs, args.duration, args.transport, Strategy(args.strategy))
    )
    print(json.dumps(measured))


# --- the parent ---------------------------------------------------------------------------------


def one_run(transport: str, sizes: ScaleSizes) -> dict[str, Any]:
    """A fresh server, the child on it, then the server's view of every job it ran."""
    with ServerProcess.videosim("--seed", "1") as server:
        arguments = [server.url, "--jobs", str(sizes.jobs), "--duration", str(sizes.duration_s)]
        measured = run_bench_child(
            "bench.client_scale",
            *arguments,
            "--transport",
            transport,
            # What auto picked before the server could push: one polling request per job.
            "--strategy",
            Strategy.LONG_POLL.value,
            timeout_s=sizes.time_cap_s,
        )
        measured["server"] = server_view(server.url)
    sent = measured["client_stats"]["requests_sent"]
    measured["cpu_ms_per_request"] = 1000 * measured["cpu_s"] / max(sent, 1)
    return measured


def server_view(base_url: str) -> dict[str, Any]:
    """Requests per job and detection lag from the server's records of all its jobs."""
    records: list[dict[str, Any]] = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        total = http.get("/jobs", params={"limit": 1}).json()["total"]
        for offset in range(0, total, 1000):
            records += http.get("/jobs", params={"offset": offset, "limit": 1000}).json()["jobs"]
    requests = [record["status_requests"] for record in records]
    lags = [r["detection_lag_s"] for r in records if r["detection_lag_s"] is not None]
    return {
        "jobs": len(records),
        "resolved": len(lags),
        "requests_per_job": sum(requests) / max(len(records), 1),
        "lag_p50_s": percentile(lags, 50),
        "lag_p95_s": percentile(lags, 95),
        "lag_p99_s": percentile(lags, 99),
    }


def run(quick: bool = False) -> SectionResult:
    sizes = QUICK if quick else FULL
    result = SectionResult(
        name="client",
        title=f"Client: {sizes.jobs:,} jobs of {sizes.duration_s:g} s through the runner, "
        "lean transport vs httpx's",
        parameters={
            **asdict(sizes),
            "client": f"VideoSimClient(max_in_flight={MAX_IN_FLIGHT}), BackoffPolicy(), long-poll "
            "(what auto picked before the server could push)",
            "runner": "RunOptions defaults: chunks of 100 started at 1,000 jobs/s",
        },
    )
    runs: dict[str, list[dict[str, Any]]] = {transport: [] for transport in TRANSPORTS}
    for _ in range(sizes.rounds):
        for transport in TRANSPORTS:
            runs[transport].append(one_run(transport, sizes))
    result.details["rounds"] = runs

    table = Table(
        title=f"One client process, {sizes.jobs:,} jobs of {sizes.duration_s:g} s, "
        f"{sizes.rounds} alternating rounds (a fresh server each)",
        columns=[
            Column("transport", "transport"),
            Column("cpu_ms", "CPU ms/request", "{:.2f}"),
            spread_column("cpu_ms"),
            Column("vs_lean", "CPU/request vs lean", "{:.2f}x"),
            Column("requests_per_job", "status req/job", "{:.2f}"),
            Column("lag_p95_s", "lag p95 s", "{:.2f}"),
            spread_column("lag_p95_s", "lag spread"),
            Column("wall_s", "wall s", "{:.1f}"),
            Column("failures", "jobs not resolved", "{:,}"),
        ],
        caption="CPU: user + system seconds of the child around the runner only (psutil), "
        "over every request it sent (starts + status); req/job and lag (first final "
        "answer - finish) from the server's records; spread = (max - min) / median",
    )
    lean_cpu = [run["cpu_ms_per_request"] for run in runs["lean"]]
    for transport, label in TRANSPORTS.items():
        measured = runs[transport]
        cpu = [run["cpu_ms_per_request"] for run in measured]
        table.add(
            transport=label,
            **over_rounds("cpu_ms", cpu),
            **over_rounds("vs_lean", [ratio(b, a) for a, b in zip(lean_cpu, cpu, strict=True)]),
            **over_rounds("requests_per_job", [r["server"]["requests_per_job"] for r in measured]),
            **over_rounds("lag_p95_s", [r["server"]["lag_p95_s"] for r in measured]),
            **over_rounds("wall_s", [r["wall_s"] for r in measured]),
            failures=sum(r["not_resolved"] for r in measured),
        )
        bad = [r["exit_code"] for r in measured if r["exit_code"] != 0]
        if bad:
            result.notes.append(f"{label}: the runner exited with {bad} (expected 0)")
    result.tables.append(table)
    result.notes.append(
        "each round runs lean then httpx, each on a fresh server, so both see the same "
        "machine load; the runner paces starts, so jobs end at a rate one process keeps up with"
    )
    result.tables.append(push_table(sizes, result))
    return result


# --- push: the event stream against polling, and a restart in the middle -------------------

# "long-poll" is what auto picked before the server could push; auto now picks the stream.
PUSH_ROWS = (
    ("stream", Strategy.STREAM),
    ("long-poll (auto before push)", Strategy.LONG_POLL),
    ("auto (now: stream)", Strategy.AUTO),
)
RESTART_ROW = "stream, server restarted mid-run (sqlite store)"


def push_run(
    strategy: Strategy, sizes: ScaleSizes, *, restart_after_s: float | None = None
) -> dict[str, Any]:
    """The runner on N jobs with ``strategy``; optionally the server restarts meanwhile.

    For the restart the server keeps its jobs in a sqlite file, so the restarted server
    knows them and the stream's ``Last-Event-ID`` replays the final states it missed.
    """
    with tempfile.TemporaryDirectory(prefix="videosim-bench-") as folder:
        flags = ["--seed", "1"]
        if restart_after_s is not None:
            flags += ["--store", f"sqlite:///{Path(folder) / 'jobs.db'}"]
        with ServerProcess.videosim(*flags) as server:
            arguments = [server.url, "--jobs", str(sizes.jobs), "--duration", str(sizes.duration_s)]
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.client_scale",
                    *arguments,
                    "--strategy",
                    strategy.value,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=ROOT,
                env=child_environment(),
            )
            try:
                if restart_after_s is not None:
                    time.sleep(restart_after_s)
                    server.restart()  # same port; the jobs come back from the sqlite file
                output, _ = child.communicate(timeout=sizes.time_cap_s)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            measured: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
            measured["server"] = server_view(server.url)
    stats = measured["client_stats"]
    measured["cpu_ms_per_job"] = 1000 * measured["cpu_s"] / sizes.jobs
    measured["requests_per_job"] = stats["requests_sent"] / sizes.jobs
    return measured


def push_table(sizes: ScaleSizes, result: SectionResult) -> Table:
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in PUSH_ROWS}
    for _ in range(sizes.push_rounds):  # alternately, so every row sees the same load
        for name, strategy in PUSH_ROWS:
            rounds[name].append(push_run(strategy, sizes))
    # The restart comes once the first jobs have ended (starts take jobs / 1,000 s).
    restart_after_s = sizes.duration_s + min(3.0, sizes.jobs / 2000)
    rounds[RESTART_ROW] = [push_run(Strategy.STREAM, sizes, restart_after_s=restart_after_s)]
    result.details["push"] = rounds
    stream_cpu = [measured["cpu_ms_per_job"] for measured in rounds["stream"]]
    table = Table(
        title=f"One client process, {sizes.jobs:,} jobs of {sizes.duration_s:g} s: "
        "the event stream against polling",
        columns=[
            Column("strategy", "strategy"),
            Column("cpu_ms_per_job", "client CPU ms/job", "{:.3f}"),
            Column("vs_stream", "CPU vs stream", "{:.1f}x"),
            Column("requests_per_job", "all req/job", "{:.3f}"),
            Column("status_requests_per_job", "status req/job (server)", "{:.2f}"),
            Column("stream_connects", "stream connects", "{:d}"),
            Column("stream_resumes", "with Last-Event-ID", "{:d}"),
            Column("batch_requests", "batch req", "{:,}"),
            Column("wall_s", "wall s", "{:.1f}"),
            Column("not_resolved", "jobs not resolved", "{:,}"),
        ],
        caption="CPU: user + system seconds of the runner's process around the run, over its "
        "jobs; all req/job: every request the client sent (starts in chunks of 100, status, "
        "the stream) over its jobs; not resolved: jobs whose watch did not end completed or "
        "error (the runner's summary)",
    )
    for name, runs in rounds.items():
        cpu = [measured["cpu_ms_per_job"] for measured in runs]
        last = runs[-1]["client_stats"]
        table.add(
            strategy=name,
            **over_rounds("cpu_ms_per_job", cpu),
            **over_rounds(
                "vs_stream", [ratio(c, s) for c, s in zip(cpu, stream_cpu, strict=False)]
            ),
            **over_rounds("requests_per_job", [m["requests_per_job"] for m in runs]),
            **over_rounds(
                "status_requests_per_job", [m["server"]["requests_per_job"] for m in runs]
            ),
            stream_connects=last["stream_connects"],
            stream_resumes=last["stream_resumes"],
            batch_requests=last["batch_requests"],
            **over_rounds("wall_s", [m["wall_s"] for m in runs]),
            not_resolved=sum(m["not_resolved"] for m in runs),
        )
        for measured in runs:
            if measured["exit_code"] != 0:
                result.notes.append(f"{name}: the runner exited with {measured['exit_code']}")
    result.notes.append(
        f"{sizes.push_rounds} rounds of the first three rows, alternating, a fresh server each; "
        "CPU vs stream is per round; stream connects, resumes and batch requests: the last "
        "round's; the restart row runs once"
    )
    return table


def run_push(quick: bool = False) -> SectionResult:
    """Only the push comparison: ``python -c 'from bench.client_scale import run_push'``."""
    sizes = QUICK if quick else FULL
    result = SectionResult(
        name="client-push",
        title=f"Client: {sizes.jobs:,} jobs through the runner, stream against polling",
        parameters={**asdict(sizes), "rows": [name for name, _ in PUSH_ROWS] + [RESTART_ROW]},
    )
    result.tables.append(push_table(sizes, result))
    return result


if __name__ == "__main__":
    child_main()
