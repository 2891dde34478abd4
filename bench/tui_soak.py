"""The dashboard over a long session: does its memory stay flat?

``python -m bench.tui_soak [--jobs 10000] [--rounds 20] [--duration 1-3]``, or
``make bench ARGS=soak`` (a section run only when named: about six minutes)

The real ``python -m tui`` in tmux (as bench/tui_keys.py drives it), against a server
child on a free port. Each round, as a user would: spawn ``--jobs`` jobs through the
spawn form, wait until the summary bar counts every one of them ended, press ``x`` to
clear the finished jobs, wait until the board is empty, then read the resident memory of
the dashboard's process (the UI) and of its engine (its child). A design that leaks
grows round after round; one that does not grows in the first rounds (allocator arenas,
caches, the interpreter's own pools) and then stays within a band. The figure is the
largest RSS of rounds 3 onwards against round 2's, for each process; the check fails
(exit 1) when either grows more than ``--tolerance`` (10 %) past round 2.

Prints one JSON line per round and a summary line. The keypress latency and start rate
at 10,000 jobs are bench/tui_keys.py's figures; this one is about memory only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Column, SectionResult, Table
from bench.tui_keys import STATES, Terminal, descendants, exit_time, summary_word
from client_core.local_server import free_port

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def counts(screen: str) -> dict[str, int]:
    """The summary bar's count of each state (missing ones as 0)."""
    found = {}
    for state in STATES:
        word = summary_word(screen, state)
        found[state] = int(word) if word is not None and word.isdigit() else 0
    return found


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / MIB


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", str(port), "--max-jobs", "1000000"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit("the server did not come up") from None
            time.sleep(0.1)


def spawn(terminal: Terminal, jobs: int, durations: str) -> None:
    """The spawn form, as a user fills it: n, the count, Tab, the durations, Enter."""
    terminal.send("n")
    terminal.wait_for(lambda s: "How many" in s, 10, "spawn form")
    terminal.send("End", *["BSpace"] * 6)
    time.sleep(0.3)
    terminal.send(str(jobs), literal=True)
    terminal.wait_for(lambda s: f"How many         {jobs}" in s, 10, "the count typed")
    terminal.send("Tab")
    time.sleep(0.3)
    terminal.send("End", *["BSpace"] * 12)  # the form keeps the last durations typed
    time.sleep(0.3)
    terminal.send(durations, literal=True)
    try:
        terminal.wait_for(lambda s: f"Duration (s)     {durations}" in s, 10, "the durations")
    except TimeoutError:
        print(terminal.screen(), file=sys.stderr)
        raise
    terminal.send("Enter")


def soak(args: argparse.Namespace) -> tuple[list[dict[str, object]], dict[str, object]]:
    port = free_port()
    config_dir = tempfile.mkdtemp(prefix="videosim-soak-config-")
    env = {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "XDG_CONFIG_HOME": config_dir}
    server = start_server(port, env)
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tui", "--server-url", url, "--strategy", args.strategy]
    terminal: Terminal | None = None
    rounds: list[dict[str, object]] = []
    try:
        terminal = Terminal(f"tuisoak{port}", command, env, ROOT)
        terminal.wait_for(lambda s: "server ok" in s, 30, "connected dashboard")
        ui = psutil.Process(terminal.pid)
        for number in range(1, args.rounds + 1):
            began = time.perf_counter()
            spawn(terminal, args.jobs, args.duration)

            def all_ended(screen: str) -> bool:
                seen = counts(screen)
                ended = seen["completed"] + seen["error"] + seen["failed"]
                return ended == args.jobs and seen["pending"] == 0

            terminal.wait_for(all_ended, args.round_timeout, "every job ended")
            ended_s = time.perf_counter() - began
            terminal.send("x")
            terminal.wait_for(lambda s: sum(counts(s).values()) == 0, 60, "an empty board")
            time.sleep(args.settle)
            engine = descendants(ui.pid)
            row: dict[str, object] = {
                "round": number,
                "ended_s": round(ended_s, 1),
                "ui_rss_mib": round(rss_mib(ui), 1),
                "engine_rss_mib": round(sum(rss_mib(p) for p in engine), 1),
            }
            rounds.append(row)
            print(json.dumps(row), flush=True)
        terminal.send("q")
        # the dashboard and everything it started must be gone before the pane is
        exited = exit_time(ui, timeout_s=30)
        if exited is None:
            print(json.dumps({"quit": "the dashboard did not exit within 30 s"}), flush=True)
    finally:
        if terminal is not None:
            terminal.close()
        server.terminate()
        server.wait(10)
        shutil.rmtree(config_dir, ignore_errors=True)
    return rounds, summarise(rounds, args.tolerance)


def summarise(rounds: list[dict[str, object]], tolerance: float) -> dict[str, object]:
    """Growth of each process past round 2: the largest RSS of rounds 3 on / round 2's."""
    summary: dict[str, object] = {"rounds": len(rounds), "tolerance": tolerance}
    if len(rounds) < 3:
        summary["flat"] = None
        return summary
    flat = True
    for process in ("ui", "engine"):
        key = f"{process}_rss_mib"
        baseline = float(rounds[1][key])  # type: ignore[arg-type]
        later = max(float(row[key]) for row in rounds[2:])  # type: ignore[arg-type]
        growth = later / baseline - 1 if baseline else 0.0
        summary[f"{process}_round2_mib"] = baseline
        summary[f"{process}_max_after_mib"] = later
        summary[f"{process}_growth_pct"] = round(100 * growth, 1)
        flat = flat and growth <= tolerance
    summary["flat"] = flat
    return summary


def run(quick: bool = False) -> SectionResult:
    """``python -m bench soak``: the rounds as a table, the growth past round 2 below it."""
    args = argparse.Namespace(
        jobs=1000 if quick else 10_000,
        rounds=4 if quick else 20,
        duration="1-3",
        strategy="auto",
        settle=1.0 if quick else 2.0,
        round_timeout=300.0,
        tolerance=0.10,
    )
    rounds, summary = soak(args)
    table = Table(
        title=f"Dashboard over {args.rounds} rounds of {args.jobs:,} jobs spawned, ended, cleared",
        columns=[
            Column("round", "round"),
            Column("ended_s", "all ended s", "{:.1f}"),
            Column("ui_rss_mib", "UI RSS MiB", "{:.1f}"),
            Column("engine_rss_mib", "engine RSS MiB", "{:.1f}"),
        ],
        caption="RSS after each round's clear (x); growth past round 2: UI "
        f"{summary.get('ui_growth_pct')} %, engine {summary.get('engine_growth_pct')} % "
        f"(check: <= {100 * args.tolerance:.0f} %)",
    )
    for row in rounds:
        table.add(**row)
    result = SectionResult(
        name="soak",
        title="Dashboard over a long session",
        tables=[table],
        parameters={"jobs": args.jobs, "rounds": args.rounds, "duration": args.duration},
        details={"rounds": rounds, "summary": summary},
    )
    if summary["flat"] is False:
        result.failures.append(
            f"RSS grew past round 2: UI {summary['ui_growth_pct']} %, engine "
            f"{summary['engine_growth_pct']} % (at most {100 * args.tolerance:.0f} %)"
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--duration", default="1-3", help="the spawn form's durations (s)")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--settle", type=float, default=2.0, help="s after clearing")
    parser.add_argument("--round-timeout", type=float, default=300.0)
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed: apt install tmux")
    _, summary = soak(args)
    print(json.dumps({"summary": summary}), flush=True)
    return 0 if summary["flat"] in (True, None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
