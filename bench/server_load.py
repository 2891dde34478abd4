"""Load-test the simulation server: GET /status throughput, and memory after many jobs.

Runs ``python -m server`` as a child process (one uvicorn worker) and drives it from
*other* processes, so the load generator never competes with the server inside one
interpreter:

    .venv/bin/python bench/server_load.py                  # wrk if installed, else asyncio
    .venv/bin/python bench/server_load.py --loadgen asyncio --starts 20000

Prints one line per measurement. Throughput depends on the machine; compare runs made on
the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    command = [sys.executable, "-m", "server", "--port", str(port), "--delay", "3600"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).is_success:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("server did not start")


async def _hammer(
    method: str, url: str, connections: int, seconds: float, total: int
) -> tuple[int, float]:
    """Keep-alive HTTP/1.1 from ``connections`` raw sockets; returns (200s, seconds taken).

    Plain asyncio streams rather than an HTTP client library: the load generator must
    be much cheaper per request than the server it measures.
    """
    parts = httpx.URL(url)
    request = (
        f"{method} {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.host}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    started = time.monotonic()
    deadline = started + seconds
    sent = 0
    ok = 0

    async def worker() -> None:
        nonlocal sent, ok
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        try:
            while sent < total and time.monotonic() < deadline:
                sent += 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                ok += head.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return ok, time.monotonic() - started


def _hammer_in_process(method: str, url: str, connections: int, seconds: float, total: int, out):  # type: ignore[no-untyped-def]
    out.put(asyncio.run(_hammer(method, url, connections, seconds, total)))


def hammer(
    method: str, url: str, connections: int, seconds: float, total: int
) -> tuple[int, float]:
    """Run :func:`_hammer` in a separate process; returns (successes, elapsed seconds)."""
    results: multiprocessing.Queue[tuple[int, float]] = multiprocessing.Queue()
    args = (method, url, connections, seconds, total, results)
    process = multiprocessing.Process(target=_hammer_in_process, args=args)
    process.start()
    ok, elapsed = results.get()
    process.join()
    return ok, elapsed


def status_throughput(base: str, job_id: str, args: argparse.Namespace) -> str:
    url = f"{base}/status/{job_id}"
    if args.loadgen == "wrk":
        output = subprocess.run(
            ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
        p99 = re.search(r"99%\s+(\S+)", output)
        return (
            f"GET /status: {float(rps[1]) if rps else 0:,.0f} req/s, p99 {p99[1] if p99 else '?'} "
            f"(wrk -t1 -c{args.connections} -d{args.seconds}s)"
        )
    ok, elapsed = hammer("GET", url, args.connections, args.seconds, 10**9)
    return f"GET /status: {ok / elapsed:,.0f} req/s (asyncio, {args.connections} connections)"


def memory_after_starts(base: str, server: psutil.Process, args: argparse.Namespace) -> str:
    before = server.memory_info().rss
    ok, elapsed = hammer("POST", f"{base}/start", args.connections, 3600, args.starts)
    jobs = httpx.get(f"{base}/healthz").json()["jobs"]
    after = server.memory_info().rss
    return (
        f"POST /start x{ok:,} in {elapsed:.1f}s ({ok / elapsed:,.0f} req/s): "
        f"{jobs:,} jobs stored, RSS {before / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB "
        f"({(after - before) / max(jobs, 1):.0f} B/job)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of the /status run")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--starts", type=int, default=100_000, help="jobs to create")
    parser.add_argument(
        "--loadgen",
        choices=["wrk", "asyncio"],
        default="wrk" if shutil.which("wrk") else "asyncio",
        help="load generator for the /status run (default: wrk if installed)",
    )
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(port)
    try:
        server = psutil.Process(process.pid)
        job_id = httpx.post(f"{base}/start").json()["job_id"]
        print(status_throughput(base, job_id, args), flush=True)
        print(memory_after_starts(base, server, args), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
