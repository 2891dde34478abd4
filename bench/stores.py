"""The job stores side by side: ``python -m bench.stores [--rounds 3] [--seconds 2]``.

Four servers run at once, each ``python -m server`` as a user starts it: ``memory``,
``sqlite`` (a file in a temporary directory), ``redis`` with one worker and ``redis`` with
``--workers 2`` (each on its own redis-server, started here on a free port), and a bare
FastAPI app (:mod:`bench.bare_app`) as the floor. Prints one JSON line per figure:

- ``status``: GET /status/{pending job} answers per second, the median of ``--rounds``
  rounds; in each round every store is loaded for ``--seconds`` and then the bare app,
  so each ratio is taken against a bare run of the same moment. ``ratio`` is store/bare,
  ``spread`` the lowest and highest of the rounds;
- ``vs``: sqlite/memory and redis-2-workers/redis-1-worker, per round, median and spread
  (the targets: >= 0.5 and >= 1.5);
- ``start``: POST /start answers per second on the memory and SQLite stores, alternating,
  median of ``--rounds`` (SQLite commits every start before answering; the target is
  within 2x of memory);
- ``rss_per_job``: resident memory added per stored job (``--jobs`` made by POST
  /start/batch), in the server processes, and for Redis also in redis-server;
- ``kill_9``: starts answered by a SQLite server that was then killed with SIGKILL in
  the middle of a load of concurrent starts, and how many of them a restart lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.bare_app import CONSTANT_PATH
from bench.load_generator import default_tool, generate_load
from bench.server_process import ServerProcess, raise_open_file_limit
from client_core.local_server import free_port


class RedisServer:
    """A throwaway redis-server on a free port (no persistence), stopped on exit."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise SystemExit("bench.stores: redis-server is not installed (make redis-server)")
        self.port = free_port()
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(directory), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.info("used_memory") >= 0:
                    return
            except (OSError, subprocess.SubprocessError):
                time.sleep(0.05)
        raise SystemExit("bench.stores: redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def info(self, field: str) -> int:
        import redis

        return int(redis.Redis(port=self.port, socket_timeout=2).info("memory")[field])

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def _rss(server: ServerProcess) -> int:
    """Resident memory of the server and its workers."""
    process = server.ps()
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def _round_ratio(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def measure_status(
    servers: dict[str, ServerProcess], bare: ServerProcess, rounds: int, seconds: float,
    connections: int, tool: str,
) -> list[dict[str, object]]:  # fmt: skip
    urls = {}
    for name, server in servers.items():
        job_id = httpx.post(f"{server.url}/start", timeout=10).json()["job_id"]
        urls[name] = f"{server.url}/status/{job_id}"
    runs: dict[str, list[float]] = {name: [] for name in servers}
    bare_runs: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name in servers:
            runs[name].append(generate_load(tool, urls[name], connections=connections,
                                            seconds=seconds).per_second)  # fmt: skip
            bare_runs[name].append(generate_load(tool, f"{bare.url}{CONSTANT_PATH}",
                                                 connections=connections,
                                                 seconds=seconds).per_second)  # fmt: skip
    lines: list[dict[str, object]] = []
    for name in servers:
        ratios = [a / b for a, b in zip(runs[name], bare_runs[name], strict=True)]
        lines.append({
            "figure": "status", "store": name, "connections": connections, "tool": tool,
            "per_s": round(statistics.median(runs[name]), 1),
            "bare_per_s": round(statistics.median(bare_runs[name]), 1),
            "ratio": _round_ratio(ratios),
        })  # fmt: skip
    for label, numerator, denominator in [
        ("sqlite/memory", "sqlite", "memory"),
        ("redis-2-workers/redis-1-worker", "redis-2-workers", "redis-1-worker"),
    ]:
        if numerator in runs and denominator in runs:
            ratios = [a / b for a, b in zip(runs[numerator], runs[denominator], strict=True)]
            lines.append({"figure": "vs", "what": label, "ratio": _round_ratio(ratios)})
    return lines


def measure_starts(
    servers: dict[str, ServerProcess], rounds: int, seconds: float, connections: int, tool: str
) -> list[dict[str, object]]:
    runs: dict[str, list[float]] = {name: [] for name in ("memory", "sqlite")}
    for _ in range(rounds):
        for name in runs:
            url = f"{servers[name].url}/start"
            result = generate_load(tool, url, connections=connections, seconds=seconds,
                                   method="POST")  # fmt: skip
            runs[name].append(result.per_second)
    ratios = [a / b for a, b in zip(runs["sqlite"], runs["memory"], strict=True)]
    return [
        {"figure": "start", "store": name, "per_s": round(statistics.median(values), 1)}
        for name, values in runs.items()
    ] + [{"figure": "vs", "what": "start sqlite/memory", "ratio": _round_ratio(ratios)}]


def measure_rss(
    servers: dict[str, ServerProcess], redis_of: dict[str, RedisServer], jobs: int
) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    batch = {"jobs": [{"duration_s": 3000}] * 1000}
    for name, server in servers.items():
        before = _rss(server)
        redis_before = redis_of[name].info("used_memory") if name in redis_of else 0
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for _ in range(jobs // 1000):
                assert http.post("/start/batch", json=batch).status_code == 200
        time.sleep(0.3)  # let the write-behind settle
        line: dict[str, object] = {
            "figure": "rss_per_job", "store": name, "jobs": jobs,
            "server_bytes": round((_rss(server) - before) / jobs, 1),
        }  # fmt: skip
        if name in redis_of:
            used = redis_of[name].info("used_memory") - redis_before
            line["redis_bytes"] = round(used / jobs, 1)
        lines.append(line)
    return lines


async def _start_until_gone(url: str, answered: list[str], concurrency: int) -> None:
    async def one_client(http: httpx.AsyncClient) -> None:
        while True:
            try:
                response = await http.post("/start", json={"duration_s": 600})
            except httpx.TransportError:
                return
            if response.status_code == 200:
                answered.append(response.json()["job_id"])

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=5, limits=limits) as http:
        await asyncio.gather(*(one_client(http) for _ in range(concurrency)))


def measure_kill_9(directory: Path, after_s: float) -> dict[str, object]:
    store = f"sqlite:///{directory / 'kill9.db'}"
    server = ServerProcess.videosim("--store", store)
    answered: list[str] = []
    with server:
        killer = threading.Timer(after_s, server.kill)
        killer.start()
        asyncio.run(_start_until_gone(server.url, answered, 64))
        killer.join()
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            missing = sum(http.get(f"/jobs/{job_id}").status_code != 200 for job_id in answered)
            total = http.get("/jobs").json()["total"]
    return {
        "figure": "kill_9", "answered_starts": len(answered), "lost": missing,
        "in_store_after_restart": total, "killed_after_s": after_s,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs made for rss_per_job")
    parser.add_argument("--kill-after", type=float, default=1.0, help="seconds of load")
    args = parser.parse_args()
    raise_open_file_limit(4 * args.connections + 256)
    tool = default_tool()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-stores-") as temp:
        directory = Path(temp)
        redis_one = RedisServer(directory)
        stack.callback(redis_one.stop)
        redis_two = RedisServer(directory)
        stack.callback(redis_two.stop)
        common = ["--delay", "36000", "--max-jobs", "10000000"]
        flags = {
            "memory": [],
            "sqlite": ["--store", f"sqlite:///{directory / 'jobs.db'}"],
            "redis-1-worker": ["--store", redis_one.url],
            "redis-2-workers": ["--store", redis_two.url, "--workers", "2"],
        }
        servers = {
            name: stack.enter_context(ServerProcess.videosim(*common, *extra))
            for name, extra in flags.items()
        }
        bare = stack.enter_context(ServerProcess.app_factory("bench.bare_app:create_app"))
        redis_of = {"redis-1-worker": redis_one, "redis-2-workers": redis_two}
        lines = measure_status(servers, bare, args.rounds, args.seconds, args.connections, tool)
        lines += measure_starts(servers, args.rounds, args.seconds, args.connections, tool)
        lines += measure_rss(servers, redis_of, args.jobs)
        for line in lines:
            print(json.dumps(line), flush=True)
        for server in servers.values():
            server.stop()
        print(json.dumps(measure_kill_9(directory, args.kill_after)), flush=True)


if __name__ == "__main__":
    main()
