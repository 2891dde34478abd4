"""``python -m bench [section ...] [--quick]``: run benchmark sections, print, save JSON.

Sections run in the order given (default: all of poll, server, client, tui, tui-terminal);
each prints its tables and writes ``bench/results/<section>.json``; ``--markdown FILE``
writes every table of the run as Markdown, which is what README.md and
docs/performance.md quote. Figures measured in rounds print as their median and spread,
or as a range when they moved more than 25 % (bench/report.py). ``profile`` (GET /status
under pyinstrument), ``strategies`` (real-time jobs per strategy) and ``soak`` (the
dashboard's memory over a long session) run only when named.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console

import settings_cli
from bench.report import RESULTS_DIR, SectionResult, as_markdown, machine, render, write_json
from settings_cli import OneLineErrorParser

PROG = "python -m bench"
EXIT_USAGE = settings_cli.EXIT_USAGE

# section name -> (module with run(quick) -> SectionResult, what it answers)
SECTIONS: dict[str, tuple[str, str]] = {
    "poll": ("bench.poll_efficiency", "requests per job and detection lag, per polling policy"),
    "server": ("bench.server_throughput", "GET /status req/s, memory per job, long-poll CPU"),
    "client": ("bench.client_scale", "one client process watching 10,000 jobs"),
    "tui": ("bench.dashboard", "dashboard: event burst and keypress latency, 2,000 jobs"),
    "tui-terminal": (
        "bench.tui_keys",
        "dashboard in tmux: keys, CPU, starts, poll rate, quit at 2,000 and 10,000 jobs",
    ),
    "strategies": ("bench.strategies", "200 real 2 s jobs per strategy: requests and lag"),
    "profile": ("bench.profile_status", "where GET /status spends its time (pyinstrument)"),
    "soak": ("bench.tui_soak", "dashboard RSS over 20 rounds of 10,000 jobs spawned and cleared"),
}
DEFAULT_SECTIONS = ("poll", "server", "client", "tui", "tui-terminal")


def fail(message: str) -> NoReturn:
    settings_cli.fail(PROG, message)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description="videosim benchmarks: print tables, write bench/results/<section>.json.",
        epilog="sections: "
        + "; ".join(f"{name}: {about}" for name, (_, about) in SECTIONS.items()),
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"any of {', '.join(SECTIONS)} (default: {' '.join(DEFAULT_SECTIONS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that everything runs (~30 s)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        metavar="DIR",
        help=f"where to write the JSON files (default: {RESULTS_DIR})",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write every table of this run to FILE as Markdown (for the README)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        fail(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    try:
        args.results.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"cannot write results to {args.results}: {error.strerror or error}")
    names = list(dict.fromkeys(args.sections)) or list(DEFAULT_SECTIONS)
    # Piped output (make bench > file, CI logs) gets wide tables instead of 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    size = "quick (tiny sizes)" if args.quick else "full"
    host = machine()
    console.print(
        f"[bold]videosim benchmarks[/bold]: {' '.join(names)}, {size}; {host['cpus']} CPUs "
        f"({host['cpu_model']}), Python {host['python']}, load average {host['load_average']}"
    )
    began = time.monotonic()
    failed: list[str] = []
    markdown = [
        f"Machine: {host['cpus']} CPUs ({host['cpu_model']}), Python {host['python']}, "
        f"load average at start {host['load_average']}. Command: `{PROG} {' '.join(names)}`."
    ]
    for name in names:
        module_name, _ = SECTIONS[name]
        section_began = time.monotonic()
        try:
            module = importlib.import_module(module_name)
            result: SectionResult = module.run(quick=args.quick)
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]")
            return 130
        except Exception as error:  # one broken section must not hide the others' results
            failed.append(name)
            console.print(f"[red]section {name} failed: {error}[/red]")
            console.print(traceback.format_exc(), style="dim", markup=False, highlight=False)
            continue
        result.elapsed_s = time.monotonic() - section_began
        render(console, result)
        path = write_json(result, args.results, quick=args.quick)
        console.print(f"[dim]wrote {path}[/dim]\n")
        markdown.append(as_markdown(result))
        if result.failures:
            failed.append(name)
    total_s = time.monotonic() - began
    # The machine is shared: the load at the end says whether others ran during the run.
    load_at_end = machine()["load_average"]
    console.print(f"total {total_s:.1f} s; load average at end {load_at_end}")
    if args.markdown is not None:
        markdown.append(f"Total time: {total_s:.0f} s; load average at end {load_at_end}.")
        args.markdown.write_text("\n\n".join(markdown) + "\n")
        console.print(f"[dim]wrote {args.markdown}[/dim]")
    if failed:
        console.print(f"[red]failed sections: {' '.join(failed)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
