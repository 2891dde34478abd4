"""Load generators that run outside the measured server's process.

Two tools drive many keep-alive connections at a URL as fast as the server answers:

- ``wrk`` (C, ``apt-get install wrk``) when it is on PATH: cheap per request, so the
  server, not the generator, sets the pace;
- else a plain-asyncio generator run in a child process (``python -m bench.load_generator
  hammer ...``). It writes raw HTTP/1.1 on sockets instead of using an HTTP client
  library, which keeps it several times cheaper per request than the server it loads.

:class:`LongPollHolders` parks thousands of ``GET /status/{id}?wait=S`` requests on the
server from another child process (``... hold ...``), one connection each.

Every loop here is bounded by a request count and a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.server_process import ROOT, child_environment, raise_open_file_limit
from client_core.comparison_report import percentile

WRK = "wrk"
ASYNCIO = "asyncio"


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load run: how many answers, how fast, how long they took."""

    tool: str
    ok: int  # 2xx answers
    failed: int  # other answers and socket errors
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "per_second": round(self.per_second, 1)}


def default_tool() -> str:
    return WRK if shutil.which(WRK) else ASYNCIO


def generate_load(
    tool: str,
    url: str,
    *,
    connections: int,
    seconds: float,
    method: str = "GET",
    stop_after: int | None = None,
    count_so_far: Callable[[], int] | None = None,
) -> LoadResult:
    """Hit ``url`` from ``connections`` connections for ``seconds`` or ``stop_after`` answers.

    wrk cannot stop itself early, so with ``stop_after`` it is interrupted (SIGINT makes it
    print its report) once ``count_so_far()`` (e.g. the server's job count) reaches the cap.
    """
    if tool == WRK:
        return _run_wrk(url, connections, seconds, method, stop_after, count_so_far)
    return _run_asyncio_child(url, connections, seconds, method, stop_after)


# --- wrk --------------------------------------------------------------------------------

# Sets the method, and stops the (single) thread after N answers when given a count.
_WRK_SCRIPT = """
local limit = nil
local seen = 0
function init(args)
  limit = tonumber(args[1])  -- nil for "": no limit
  if args[2] ~= nil then wrk.method = args[2] end
end
function response(status, headers, body)
  seen = seen + 1
  if limit ~= nil and seen >= limit then wrk.thread:stop() end
end
"""
_CHECK_EVERY_S = 0.2


def _run_wrk(
    url: str,
    connections: int,
    seconds: float,
    method: str,
    stop_after: int | None,
    count_so_far: Callable[[], int] | None,
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-") as script:
        script.write(_WRK_SCRIPT)
        script.flush()
        command = [WRK, "-t1", f"-c{connections}", f"-d{max(1, math.ceil(seconds))}s"]
        command += ["--latency", "-s", script.name, url, "--", str(stop_after or ""), method]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + seconds + 30
        try:
            while process.poll() is None and time.monotonic() < deadline:
                if stop_after and count_so_far and count_so_far() >= stop_after:
                    process.send_signal(signal.SIGINT)  # wrk stops and prints its report
                    break
                time.sleep(_CHECK_EVERY_S)
            output, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return parse_wrk(output)


def parse_wrk(output: str) -> LoadResult:
    """Pull counts and latency percentiles out of wrk's text report."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if total is None:
        raise RuntimeError(f"unexpected wrk output: {output[-300:]}")
    requests = int(total[1])
    elapsed = _seconds(float(total[2]), total[3])
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(non_2xx[1]) if non_2xx else 0
    if socket_errors:
        failed += sum(int(socket_errors[n]) for n in range(1, 5))
    latencies = {
        match[1]: _seconds(float(match[2]), match[3]) * 1000
        for match in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    }
    return LoadResult(
        tool=WRK,
        ok=max(0, requests - (int(non_2xx[1]) if non_2xx else 0)),
        failed=failed,
        seconds=elapsed,
        p50_ms=latencies.get("50"),
        p99_ms=latencies.get("99"),
    )


def _seconds(value: float, unit: str) -> float:
    return value * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


# --- the asyncio generator --------------------------------------------------------------


def _run_asyncio_child(
    url: str, connections: int, seconds: float, method: str, stop_after: int | None
) -> LoadResult:
    command = [sys.executable, "-m", "bench.load_generator", "hammer", url]
    command += ["--connections", str(connections), "--seconds", str(seconds)]
    command += ["--method", method, "--total", str(stop_after or 0)]
    output = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
        cwd=ROOT,
        env=child_environment(),
    ).stdout
    return LoadResult(**json.loads(output.strip().splitlines()[-1]))


def _request_bytes(method: str, url: httpx.URL) -> bytes:
    target = url.raw_path.decode()
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def hammer(
    url: str, connections: int, seconds: float, method: str = "GET", total: int = 0
) -> LoadResult:
    """Keep-alive requests from ``connections`` sockets until the deadline or ``total``."""
    target = httpx.URL(url)
    request = _request_bytes(method, target)
    started = time.monotonic()
    deadline = started + seconds
    limit = total or 10**12
    sent = ok = failed = 0
    latencies: list[float] = []

    async def connection() -> None:
        nonlocal sent, ok, failed
        try:
            reader, writer = await asyncio.open_connection(target.host, target.port)
        except OSError:
            failed += 1
            return
        try:
            while sent < limit and time.monotonic() < deadline:
                sent += 1
                began = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                latencies.append(time.perf_counter() - began)
                if head[9:10] == b"2":  # "HTTP/1.1 2xx"
                    ok += 1
                else:
                    failed += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.monotonic() - started
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return LoadResult(
        tool=ASYNCIO,
        ok=ok,
        failed=failed,
        seconds=elapsed,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
    )


# --- long-poll holders --------------------------------------------------------------------


class LongPollHolders:
    """A child process holding one ``?wait=S`` request per job id, one connection each.

    ``start()`` returns once every request is written; ``release()`` closes them all and
    reports how many were answered before that (a held request should not be).
    With ``send=False`` the connections are only opened, to tell the cost of a
    connection from the cost of a request held on it.
    """

    def __init__(
        self,
        base_url: str,
        job_ids: list[str],
        wait_s: float,
        max_hold_s: float,
        *,
        send: bool = True,
    ) -> None:
        self._ids_file = tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="bench-ids-")  # noqa: SIM115
        self._ids_file.write("\n".join(job_ids))
        self._ids_file.flush()
        self._command = [sys.executable, "-m", "bench.load_generator", "hold", base_url]
        self._command += ["--ids", self._ids_file.name, "--wait", str(wait_s)]
        self._command += ["--max-hold", str(max_hold_s)]
        if not send:
            self._command.append("--connect-only")
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float) -> dict[str, Any]:
        self._process = subprocess.Popen(
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_environment(),
        )
        return self._read_report(timeout_s)

    def release(self, timeout_s: float = 30.0) -> dict[str, Any]:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write("stop\n")
        self._process.stdin.close()
        report = self._read_report(timeout_s)
        self._process.wait(timeout=timeout_s)
        return report

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._ids_file.close()

    def _read_report(self, timeout_s: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout_s)
        if not ready:
            raise RuntimeError(f"the long-poll holders did not report within {timeout_s:g} s")
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the long-poll holder process ended without a report")
        report: dict[str, Any] = json.loads(line)
        return report

    def __enter__(self) -> LongPollHolders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def hold(
    base_url: str,
    job_ids: list[str],
    wait_s: float,
    max_hold_s: float,
    connect_at_once: int,
    send: bool = True,
) -> None:
    """Open one connection per job, send ``?wait=``, report, hold until told (or max_hold_s)."""
    raise_open_file_limit(len(job_ids) + 1024)
    base = httpx.URL(base_url)
    gate = asyncio.Semaphore(connect_at_once)  # stays under the server's listen backlog

    async def open_one(job_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            reader, writer = await asyncio.open_connection(base.host, base.port)
            if send:
                url = base.join(f"/status/{job_id}").copy_with(params={"wait": f"{wait_s:g}"})
                writer.write(_request_bytes("GET", url))
                await writer.drain()
            return reader, writer

    connect_deadline = max(10.0, max_hold_s / 2)
    opened = await asyncio.wait_for(
        asyncio.gather(*(open_one(job_id) for job_id in job_ids), return_exceptions=True),
        timeout=connect_deadline,
    )
    held = [item for item in opened if not isinstance(item, BaseException)]
    print(json.dumps({"sent": len(held), "connect_errors": len(opened) - len(held)}), flush=True)

    answered_early = 0

    async def notice_answer(reader: asyncio.StreamReader) -> None:
        nonlocal answered_early
        if await reader.read(1):
            answered_early += 1

    watchers = [asyncio.create_task(notice_answer(reader)) for reader, _ in held]
    told_to_stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), told_to_stop.set)  # a line, or EOF: both mean stop
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(told_to_stop.wait(), timeout=max_hold_s)
    loop.remove_reader(sys.stdin.fileno())
    for watcher in watchers:
        watcher.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    for _, writer in held:
        writer.close()
    print(json.dumps({"answered_early": answered_early}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_generator", description=__doc__)
    modes = parser.add_subparsers(dest="mode", required=True)
    load = modes.add_parser("hammer", help="keep-alive load; prints one JSON line")
    load.add_argument("url")
    load.add_argument("--connections", type=int, default=32)
    load.add_argument("--seconds", type=float, default=5.0)
    load.add_argument("--method", default="GET")
    load.add_argument("--total", type=int, default=0, help="stop after this many; 0 = no cap")
    holders = modes.add_parser("hold", help="park one ?wait= request per job id")
    holders.add_argument("url")
    holders.add_argument("--ids", type=Path, required=True, help="file of job ids, one a line")
    holders.add_argument("--wait", type=float, default=30.0)
    holders.add_argument("--max-hold", type=float, default=25.0)
    holders.add_argument("--connect-at-once", type=int, default=256)
    holders.add_argument("--connect-only", action="store_true", help="open, send nothing")
    args = parser.parse_args()
    if args.mode == "hammer":
        result = asyncio.run(
            hammer(args.url, args.connections, args.seconds, args.method, args.total)
        )
        print(json.dumps(asdict(result)), flush=True)
    else:
        ids = [line.strip() for line in args.ids.read_text().splitlines() if line.strip()]
        send = not args.connect_only
        asyncio.run(hold(args.url, ids, args.wait, args.max_hold, args.connect_at_once, send))


if __name__ == "__main__":
    main()
