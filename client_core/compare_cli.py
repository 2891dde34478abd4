"""``videosim-client compare``: set-ups side by side under a scenario, with a report.

    videosim-client compare --scenario outage --report report.html
    videosim-client compare --scenario long-tail --strategies original,backoff,stream
    videosim-client compare --scenario my.toml --server-url http://127.0.0.1:7999

Each set-up runs on a fresh server playing the scenario (or all on ``--server-url``, which
must play it); progress goes to stderr; the table is printed, and ``--report`` writes the
HTML report and a Markdown one beside it. Exit codes: 0, 2 bad input, 3 no server.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import settings_cli
from client_core.comparison import first_error, preset_named, presets
from client_core.comparison_report import html_report, markdown
from client_core.local_server import ServerStartError
from client_core.protocol import check_url
from client_core.scenario_compare import ScenarioUnavailable, compare_under_scenario
from scenarios import ScenarioError, load_scenario
from scenarios import builtin_names as scenario_names

PROG = "videosim-client compare"
DEFAULT_SETUPS = "backoff,hinted,stream"
EXIT_OK, EXIT_USAGE, EXIT_UNREACHABLE = 0, settings_cli.EXIT_USAGE, 3


def main(argv: Sequence[str]) -> int:
    names = ", ".join(preset.name for preset in presets())
    parser = settings_cli.OneLineErrorParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        required=True,
        metavar="NAME|PATH",
        help=f"a built-in ({', '.join(scenario_names())}) or a scenario file",
    )
    parser.add_argument(
        "--strategies",
        default=DEFAULT_SETUPS,
        metavar="A,B,...",
        help=f"the set-ups to compare (default {DEFAULT_SETUPS}; any of: {names})",
    )
    parser.add_argument(
        "--server-url",
        metavar="URL",
        help="run every set-up on this server (it must play the scenario)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH.html",
        help="write the HTML report here, and the Markdown one beside it",
    )
    try:
        args = parser.parse_args(list(argv))
        scenario = load_scenario(args.scenario)
        setups = [preset_named(name.strip()) for name in args.strategies.split(",") if name.strip()]
        if args.server_url is not None:
            check_url(args.server_url)
    except SystemExit as stop:
        return int(stop.code or 0)
    except (ScenarioError, ValueError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyError as exc:
        return _fail(f"unknown set-up {exc.args[0]!r} (one of: {names})", EXIT_USAGE)
    if not setups:
        return _fail("name at least one set-up with --strategies", EXIT_USAGE)
    began = time.monotonic()
    shown: dict[str, int] = {}

    def progress(name: str, ended: int, jobs: int) -> None:
        quarter = 4 * ended // jobs
        if quarter > shown.get(name, 0):
            shown[name] = quarter
            print(f"{PROG}: {name}: {ended}/{jobs} watches ended "
                  f"({time.monotonic() - began:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip

    print(f"{PROG}: {scenario.title}: {len(setups)} set-ups, {scenario.jobs.count} jobs each",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        comparison = asyncio.run(
            compare_under_scenario(
                args.scenario, setups, server_url=args.server_url, on_progress=progress
            )
        )
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # one line, never a traceback
        error = first_error(exc)
        if isinstance(error, ScenarioUnavailable | ServerStartError):
            return _fail(str(error), EXIT_UNREACHABLE)
        return _fail(f"the comparison failed: {type(error).__name__}: {error}", EXIT_UNREACHABLE)
    text = markdown(comparison)
    print(text)
    if args.report is not None:
        try:
            args.report.write_text(html_report(comparison), encoding="utf-8")
            args.report.with_suffix(".md").write_text(text, encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot write the report {args.report}: {exc}", EXIT_USAGE)
        print(f"{PROG}: wrote {args.report} and {args.report.with_suffix('.md')} "
              f"({time.monotonic() - began:.0f} s)", file=sys.stderr)  # fmt: skip
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code
