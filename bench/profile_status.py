"""Profile: where the server spends its time answering GET /status (pyinstrument).

The real server (``python -m server``) runs under ``pyinstrument -m server`` while the
load generator polls one pending job from another process; when the server is stopped,
pyinstrument saves the session. We then add up, per function, the time spent in the
function itself ("self") and in it and everything it called ("inclusive", each stack
counted once even when a function recurses). Only run when asked for
(``python -m bench profile``): the sampling slows the server, so its req/s are not
comparable with the server section's.
"""

from __future__ import annotations

import signal
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from pyinstrument.frame import Frame
from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

from bench.load_generator import default_tool, generate_load
from bench.report import Column, SectionResult, Table
from bench.server_process import ServerProcess

SAMPLE_INTERVAL_S = 0.001
TOP = 15


def run(quick: bool = False) -> SectionResult:
    seconds = 2 if quick else 6
    tool = default_tool()
    with tempfile.TemporaryDirectory(prefix="videosim-profile-") as workdir:
        session_path = Path(workdir) / "status.pyisession"
        command = [sys.executable, "-m", "pyinstrument", "-r", "pyisession"]
        command += ["-o", str(session_path), "-i", str(SAMPLE_INTERVAL_S)]
        command += ["-m", "server", "--port", "{port}", "--delay", "3600", "--seed", "1"]
        with ServerProcess(command, stop_signal=signal.SIGINT) as server:
            job_id = httpx.post(f"{server.url}/start", timeout=5).json()["job_id"]
            load = generate_load(
                tool, f"{server.url}/status/{job_id}", connections=32, seconds=seconds
            )
        session = Session.load(session_path)
    root = session.root_frame()
    if root is None:
        raise RuntimeError("pyinstrument recorded no samples")
    # Start-up (imports, building the app) is not serving: keep the event loop's subtree.
    serving = _topmost(root, _is_event_loop_run) or [root]
    total = sum(frame.time for frame in serving)
    self_times, _ = _aggregate(serving)
    requests = [f for frame in serving for f in _topmost(frame, _is_request_task)]
    in_requests = sum(frame.time for frame in requests)
    _, inclusive = _aggregate(requests)
    # The wrappers every request passes through (middleware, routing) would fill the table.
    inside = {key: time for key, time in inclusive.items() if time < 0.5 * in_requests}

    result = SectionResult(
        name="profile",
        title=f"Profile of GET /status under load ({tool}, {seconds} s, pyinstrument)",
        parameters={"load_generator": tool, "seconds": seconds, "interval_s": SAMPLE_INTERVAL_S},
    )
    result.tables.append(
        _top_table(
            "Top functions by self time, while serving",
            self_times,
            total,
            "self: samples in the function itself; C code (uvloop, httptools, socket writes) "
            "counts towards the Python frame that called it",
        )
    )
    result.tables.append(
        _top_table(
            "Top functions by inclusive time, inside the ASGI app (per-request work)",
            inside,
            total,
            "inclusive: the function and everything it called; frames holding over half of "
            "the per-request time (the middleware and routing chain) are left out",
        )
    )
    ours = {key: time for key, time in inside.items() if key[1].startswith("server/")}
    result.tables.append(
        _top_table(
            "The server's own code (server/), inclusive time",
            ours,
            total,
            "what the project's code costs per request (its dependencies included); the "
            "request-counting middleware, which wraps everything, is left out",
        )
    )
    result.notes += [
        f"{load.ok:,} requests answered under the profiler ({load.per_second:,.0f}/s; "
        "sampling slows the server, so compare shares, not rates)",
        f"share of serving time inside the ASGI app (run_asgi): {100 * in_requests / total:.1f} %;"
        " the rest is the event loop, HTTP parsing and socket writes",
    ]
    result.details["tree"] = ConsoleRenderer(
        unicode=False, color=False, show_all=True, processor_options={"filter_threshold": 0.01}
    ).render(session)
    return result


def _is_event_loop_run(frame: Frame) -> bool:
    return frame.function == "run" and (frame.file_path_short or "").endswith("runners.py")


def _is_request_task(frame: Frame) -> bool:
    return frame.function == "run_asgi"


def _topmost(frame: Frame, matches: Callable[[Frame], bool]) -> list[Frame]:
    """The highest frames that match, without descending into a match."""
    if matches(frame):
        return [frame]
    return [found for child in frame.children for found in _topmost(child, matches)]


def _frames(frame: Frame, seen: frozenset[tuple[str, str]]) -> Iterator[tuple[Frame, bool]]:
    """Every frame, with whether its function already appears higher up the same stack."""
    key = _key(frame)
    yield frame, key in seen
    for child in frame.children:
        yield from _frames(child, seen | {key})


def _key(frame: Frame) -> tuple[str, str]:
    location = f"{frame.file_path_short}:{frame.line_no}" if frame.file_path_short else ""
    return frame.function, location


def _aggregate(
    roots: list[Frame],
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Per function: self time, and inclusive time counted once per stack."""
    self_times: dict[tuple[str, str], float] = defaultdict(float)
    inclusive: dict[tuple[str, str], float] = defaultdict(float)
    frames = (pair for root in roots for pair in _frames(root, frozenset()))
    for frame, recursive in frames:
        if frame.is_synthetic:
            continue
        self_times[_key(frame)] += frame.total_self_time
        if not recursive:
            inclusive[_key(frame)] += frame.time
    return self_times, inclusive


def _top_table(
    title: str, times: dict[tuple[str, str], float], total: float, caption: str
) -> Table:
    table = Table(
        title=title,
        columns=[
            Column("function", "function"),
            Column("where", "file:line"),
            Column("share", "% of samples", "{:.1f}"),
        ],
        caption=caption,
    )
    ranked = sorted(times.items(), key=lambda item: item[1], reverse=True)[:TOP]
    for (function, where), time in ranked:
        table.add(function=function, where=where, share=100 * time / total)
    return table
