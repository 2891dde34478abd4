"""GET /status against a bare FastAPI route, each in its own process:
``python -m bench.status_route [--rounds 3] [--seconds 2] [--connections 32 256]``.

The videosim server (``python -m server``, hints on, a pending job) and a bare FastAPI
app returning constant JSON (:mod:`bench.bare_app`) run side by side under uvicorn with
the same loop, HTTP parser and log level. The same load generator (another process)
hits each for ``--seconds``, alternately A, B, A, B, for ``--rounds`` rounds per
connection count, after a 1 s warm-up of each. The generator is ``wrk`` (C; ``make wrk``
installs Debian's package) when it is on PATH, else the Python asyncio generator of
:mod:`bench.load_generator`, which shares the cores with both servers and makes the ratio
noisier; ``--tool`` picks one, and the output says which ran. Prints one JSON line per
connection count: the median req/s of each, their ratio with its spread
((max - min) / median) and every round's ratio, and each server's CPU time per answered
request (steadier than req/s on a busy machine). ``--server-path DIR`` runs the videosim
server from another checkout (its ``server`` package in DIR), for before/after figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import httpx

from bench.bare_app import CONSTANT_PATH
from bench.load_generator import ASYNCIO, WRK, default_tool, generate_load
from bench.server_process import ServerProcess, raise_open_file_limit


def _cpu_s(server: ServerProcess) -> float:
    times = server.ps().cpu_times()
    return float(times.user + times.system)


def _load(
    server: ServerProcess, url: str, connections: int, seconds: float, tool: str
) -> tuple[float, float]:
    """(answers per second, server CPU microseconds per answer) for one run."""
    cpu_before = _cpu_s(server)
    result = generate_load(tool, url, connections=connections, seconds=seconds)
    cpu_us = (_cpu_s(server) - cpu_before) * 1e6 / max(result.ok, 1)
    return result.per_second, cpu_us


def measure(
    rounds: int, seconds: float, connections: int, tool: str, server_path: str | None
) -> dict[str, object]:
    videosim_command = [sys.executable, "-m", "server", "--port", "{port}", "--delay", "36000"]
    videosim_env = {"PYTHONPATH": server_path} if server_path else None
    with (
        ServerProcess(videosim_command, env=videosim_env) as videosim,
        ServerProcess.app_factory("bench.bare_app:create_app") as bare,
    ):
        job_id = httpx.post(f"{videosim.url}/start").json()["job_id"]
        status_url = f"{videosim.url}/status/{job_id}"
        bare_url = f"{bare.url}{CONSTANT_PATH}"
        for url in (status_url, bare_url):  # connections, code paths, allocator: not counted
            generate_load(tool, url, connections=connections, seconds=1)
        status_runs, bare_runs = [], []
        for _ in range(rounds):
            status_runs.append(_load(videosim, status_url, connections, seconds, tool))
            bare_runs.append(_load(bare, bare_url, connections, seconds, tool))
    ratios = [status[0] / bare[0] for status, bare in zip(status_runs, bare_runs, strict=True)]
    return {
        "connections": connections,
        "status_per_s": round(statistics.median(run[0] for run in status_runs), 1),
        "bare_per_s": round(statistics.median(run[0] for run in bare_runs), 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "ratio_spread": round((max(ratios) - min(ratios)) / statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "status_cpu_us": round(statistics.median(run[1] for run in status_runs), 1),
        "bare_cpu_us": round(statistics.median(run[1] for run in bare_runs), 1),
        "tool": tool,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--server-path", default=None, help="run the server package from here")
    parser.add_argument(
        "--tool",
        choices=[WRK, ASYNCIO],
        default=None,
        help="load generator (default: wrk if found)",
    )
    args = parser.parse_args()
    raise_open_file_limit(4 * max(args.connections) + 256)
    tool = args.tool or default_tool()
    if tool == ASYNCIO and args.tool is None:
        print("wrk not found (make wrk installs it)", file=sys.stderr)
    print(f"load generator: {tool}", file=sys.stderr, flush=True)
    for connections in args.connections:
        result = measure(args.rounds, args.seconds, connections, tool, args.server_path)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
