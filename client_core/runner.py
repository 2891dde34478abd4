"""``videosim-client``: the headless runner (``python -m client_core``).

With no flags it does what the seed's ``client_main.py`` did: start 3 jobs on
http://127.0.0.1:7999, add ``special-pending-job`` (which never finishes), and
watch all 4 concurrently with the original policy (5 checks, 1-2-4-8-16 s).
It shows a live table while jobs run, then a summary; ``--json`` prints one
JSON line per poll event and a final summary line instead.

Exit codes (see docs/client.md for the reasoning):

- 0: every started job ended ``completed`` or ``error`` (both are real results
  of the simulation) and the special job ended ``timed_out``, as it must;
- 1: some job ended otherwise (``timed_out``, ``not_found``, ``rejected``...),
  including a job the server refused to start;
- 2: invalid flags or settings;
- 3: the server was unreachable until the deadline (for some job or start);
- 130: interrupted (Ctrl+C).

A start that fails is that job's outcome; the run goes on with the others.
Jobs are started in chunks (``start_many``) and each job is watched as soon as
its chunk is answered, so the first jobs are polled while later ones start.

This module is the only place in ``client_core`` that writes to the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, JustifyMethod
from rich.live import Live
from rich.table import Table

import settings_cli
from api_profiles import builtin_names
from client_core import compare_cli
from client_core.answers import HealthCheck
from client_core.client import VideoSimClient
from client_core.errors import ServerUnreachable
from client_core.events import Outcome, PollEvent, Strategy, strategies_used_text
from client_core.health_gate import GateState
from client_core.policy import BackoffPolicy, Jitter
from client_core.protocol import SPECIAL_JOB_ID
from client_core.settings import ClientSettings
from client_core.starts import DEFAULT_START_DEADLINE_S, StartResult, StartSpec
from client_core.watch_list import job_ids_in, read_watch_file
from client_core.webhooks import WebhookReceiver
from settings_cli import CommandLine

PROG = "videosim-client"
SPECIAL_ATTEMPTS_WITHOUT_BUDGET = 5  # the special job never ends: it always gets a budget
START_CHUNK = 100  # jobs per start_many call: watching begins after the first chunk
# Jobs started together end together, and one process notices only so many endings per
# second. Measured for 10,000 jobs of 20 s: all at once, lag p95 3.1 s; at 1,000 jobs/s,
# 0.12 s (docs/client.md).
DEFAULT_START_RATE = 1000.0
LIVE_ROWS = 30  # rows shown in the live table; the rest are summarised
SUMMARY_ROWS = 50  # beyond this many jobs the summary groups by outcome
PIPED_WIDTH = 120  # table width when stdout is not a terminal
LIVE_OTHER_COLUMNS_WIDTH = 56  # status, attempt, next poll, why, elapsed, borders
SUMMARY_OTHER_COLUMNS_WIDTH = 50  # outcome, attempts, requests, time, borders

HEALTH_RETRY_S = 0.2  # while nothing answers yet, within the connect timeout

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = settings_cli.EXIT_USAGE
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the runner does, beyond how the client polls."""

    jobs: int = 3
    duration_s: float | None = None
    outcome: str | None = None
    special: bool = True
    json_lines: bool = False
    quiet: bool = False
    start_rate: float | None = DEFAULT_START_RATE  # jobs started per second; None = no pacing
    webhook: bool = False  # receive final states on a loopback webhook (polling: safety net)
    watch: tuple[str, ...] = ()  # ids of jobs that exist already: watched, never started


@dataclass(slots=True)
class JobRow:
    """The latest known state of one watched job, for the tables."""

    job_id: str  # until the start is answered: a placeholder such as "start #3"
    special: bool = False
    started: bool = True
    status: str = "starting"
    attempt: int = 0
    requests: int = 0
    next_delay_s: float | None = None
    reason: str = ""
    elapsed_s: float = 0.0
    outcome: Outcome | None = None
    last_error: str | None = None
    used: Strategy | None = None  # the strategy that ended the watch (a fallback shows here)

    def update(self, event: PollEvent) -> None:
        self.status = event.status or self.status
        self.attempt = event.attempt
        self.requests += int(event.sent)
        self.next_delay_s = event.next_delay_s
        self.reason = event.reason.value
        self.elapsed_s = event.elapsed_s
        self.outcome = event.outcome
        self.last_error = event.error or self.last_error
        if event.final:
            self.used = event.strategy

    def never_answered(self, why: str) -> None:
        """Nothing answered at the server's address: this job was never asked for."""
        self.started = self.special
        self.status = "not started" if not self.special else self.status
        self.outcome = Outcome.UNREACHABLE
        self.last_error = why

    def start_answered(self, result: StartResult) -> None:
        if result.job_id is not None:
            self.job_id = result.job_id
            self.status = "started"
            return
        self.started = False
        self.status = "not started"
        self.outcome = (
            Outcome.UNREACHABLE if isinstance(result.error, ServerUnreachable) else Outcome.REJECTED
        )
        self.last_error = str(result.error)

    @property
    def succeeded(self) -> bool:
        """Did this job end the way the run expects? (See the exit codes.)

        The special job never finishes: ``timed_out`` is its only right ending.
        """
        if self.special:
            return self.outcome is Outcome.TIMED_OUT
        return self.outcome in (Outcome.COMPLETED, Outcome.ERROR)


def build_command_line() -> CommandLine:
    """The runner's flags: polling settings (``ClientSettings`` fields) and its own."""
    cli = CommandLine(
        PROG,
        description=(
            "Start videosim jobs and watch them to the end, politely. Settings come from "
            "defaults < .env < VIDEOSIM_* environment (RETRIES and BACKOFF_FACTOR too) < flags."
        ),
        epilog="exit codes: 0 ok, 1 a job ended badly, 2 bad input, 3 server unreachable, "
        "130 interrupted",
    )
    where = cli.group("server")
    cli.setting("--server-url", field="server_url", group=where, metavar="URL",
                help="default http://127.0.0.1:7999")  # fmt: skip
    cli.setting("--api-key", field="api_key", group=where, metavar="KEY", help="sent as X-Api-Key")
    cli.setting("--client-id", field="client_id", group=where, metavar="ID",
                help="sent as X-Client-Id")  # fmt: skip
    cli.setting("--profile", field="profile", group=where, metavar="NAME|PATH",
                help=f"the job API spoken: {', '.join(builtin_names())} or a profile "
                     "file (default videosim); its key is read from the variable the "
                     "profile names")  # fmt: skip

    jobs = cli.group("jobs")
    cli.option("--jobs", group=jobs, type=_non_negative_int, default=3, metavar="N",
               help="jobs to start (default 3)")  # fmt: skip
    cli.option("--duration", group=jobs, type=_positive_float, metavar="SECONDS",
               help="duration_s for each job (default: the server's delay)")  # fmt: skip
    cli.option("--outcome", group=jobs, choices=["completed", "error", "random"],
               help="fated outcome (default: the server's random draw)")  # fmt: skip
    cli.option("--start-rate", group=jobs, type=_non_negative_float, default=DEFAULT_START_RATE,
               metavar="JOBS_PER_S",
               help="pace starts (default 1000/s, by 100; 0 = all at once)")  # fmt: skip
    cli.option("--no-special", group=jobs, dest="special", action="store_false",
               help=f"do not watch {SPECIAL_JOB_ID}")  # fmt: skip
    cli.option("--watch", group=jobs, action="append", default=[], metavar="ID",
               help="watch a job that exists already (again for more); nothing is started "
                    "unless --allow-start")  # fmt: skip
    cli.option("--watch-file", group=jobs, type=Path, metavar="PATH",
               help="watch the job ids in this file, one per line")  # fmt: skip
    cli.option("--allow-start", group=jobs, action="store_true",
               help="start --jobs jobs on an API other than videosim's "
                    "(it may cost money)")  # fmt: skip
    cli.option("--webhook", group=jobs, action="store_true",
               help="get final states by webhook on a loopback port (auto watches wait for "
                    "the callback; a batch status check is the safety net)")  # fmt: skip

    polling = cli.group("polling")
    cli.setting("--strategy", field="strategy", group=polling, choices=[s.value for s in Strategy],
                help="how to time polls (default auto)")  # fmt: skip
    cli.setting("--preset", field="preset", group=polling, choices=["original", "default", "fixed"],
                help="policy preset (default original: 1-2-4-8-16 s)")  # fmt: skip
    cli.setting("--initial", field="initial_s", group=polling, type=float,
                metavar="SECONDS", help="first delay (for 'original': BACKOFF_FACTOR)")  # fmt: skip
    cli.setting("--multiplier", field="multiplier", group=polling, type=float, metavar="X",
                help="growth per attempt")  # fmt: skip
    cli.setting("--max-delay", field="max_delay_s", group=polling, type=float,
                metavar="SECONDS", help="cap on any single delay")  # fmt: skip
    cli.setting("--jitter", field="jitter", group=polling, choices=[j.value for j in Jitter],
                help="jitter kind")  # fmt: skip
    cli.setting("--jitter-ratio", field="jitter_ratio", group=polling, type=float, metavar="R",
                help="+/- share for proportional jitter, 0..1")  # fmt: skip
    cli.setting("--retries", "--max-attempts", field="max_attempts", group=polling, type=int,
                metavar="N", help="attempt budget: status checks per job (RETRIES)")  # fmt: skip
    cli.setting("--deadline", field="deadline_s", group=polling, type=float,
                metavar="SECONDS",
                help="give up on a job (and on its start) after this long")  # fmt: skip
    cli.setting("--max-server-pause", field="max_server_pause_s", group=polling,
                type=float, metavar="SECONDS",
                help="cap on a Retry-After or hold (default 60)")  # fmt: skip
    cli.setting("--connect-timeout", field="connect_timeout_s", group=polling, type=float,
                metavar="SECONDS",
                help="no connection after this long is a failure; nothing answering at "
                     "start-up ends the run after it (default 2)")  # fmt: skip
    cli.setting("--read-timeout", field="read_timeout_s", group=polling, type=float,
                metavar="SECONDS",
                help="no answer after this long is a failure (default 5)")  # fmt: skip
    cli.setting("--seed", field="seed", group=polling, type=int, help="seed for the jitter")
    cli.setting("--max-in-flight", field="max_in_flight", group=polling, type=int, metavar="N",
                help="cap on concurrent requests (default 64)")  # fmt: skip
    cli.setting("--max-rps", field="max_rps", group=polling, type=float,
                metavar="RPS", help="cap on requests per second (default: none)")  # fmt: skip

    output = cli.group("output")
    cli.option("--json", group=output, dest="json_lines", action="store_true",
               help="one JSON line per poll event, then one summary line")  # fmt: skip
    cli.option("--quiet", group=output, action="store_true",
               help="no live table or event lines: only the summary")  # fmt: skip
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:  # set-ups side by side under a scenario
        return compare_cli.main(argv[1:])
    cli = build_command_line()
    try:
        given, args = cli.parse(argv)
        settings = cli.settings(ClientSettings, given)
        try:
            policy = settings.policy(default_preset="original")
            client = VideoSimClient.with_options(settings.server_url, settings.client_options())
        except ValueError as exc:
            cli.fail(f"invalid setting: {exc}")
    except SystemExit as stop:  # --help, or bad input already reported in one line
        return int(stop.code or 0)

    profile = settings.api_profile
    try:
        watch = _ids_to_watch(args.watch, args.watch_file)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    jobs = args.jobs
    if watch and not args.allow_start:
        jobs = 0  # watching existing jobs: start none unless asked
    if jobs and not profile.native and not args.allow_start:
        return _fail(
            f"profile {profile.name}: starting jobs on a real API may cost money; pass "
            "--allow-start to start them, or --watch ID to follow jobs that exist",
            EXIT_USAGE,
        )
    options = RunOptions(
        jobs=jobs,
        duration_s=args.duration,
        outcome=args.outcome,
        special=args.special and profile.native and not watch,
        watch=watch,
        json_lines=args.json_lines,
        quiet=args.quiet,
        start_rate=args.start_rate or None,
        webhook=args.webhook,
    )
    try:
        return asyncio.run(run(client, policy, settings.strategy, options))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # a bug, not bad input: still one line, not a traceback
        return _fail(f"unexpected error: {type(exc).__name__}: {exc}", EXIT_JOB_FAILED)


async def run(
    client: VideoSimClient,
    policy: BackoffPolicy,
    strategy: Strategy,
    options: RunOptions,
    out: TextIO | None = None,
) -> int:
    """Start the jobs, watch each as soon as it started, report; returns the exit code."""
    out = out or sys.stdout
    console = Console(file=out)
    if not console.is_terminal:  # piped or captured: room for full job ids, no wrapping
        console = Console(file=out, width=PIPED_WIDTH)
    start_deadline_s = policy.deadline_s or DEFAULT_START_DEADLINE_S
    # One row per job, made up front: the live table is drawn from another thread.
    rows = [JobRow(f"start #{n + 1}") for n in range(options.jobs)]
    rows += [JobRow(job_id, status="watching") for job_id in options.watch]
    if options.special:
        rows.append(JobRow(SPECIAL_JOB_ID, special=True, status="pending"))

    def on_event(row: JobRow, event: PollEvent) -> None:
        row.update(event)
        if options.json_lines and not options.quiet:
            print(json.dumps({"type": "event", **asdict(event)}), file=out, flush=True)

    live_table = not (options.json_lines or options.quiet) and console.is_terminal
    live = (
        Live(get_renderable=lambda: _live_table(rows, console.width), console=console,
             transient=True)
        if live_table
        else contextlib.nullcontext()
    )  # fmt: skip
    async with client, contextlib.AsyncExitStack() as stack:
        health = await _first_answer(client)
        if not health.ok and health.latency_s is None:
            message = (
                f"nothing answers at {client.base_url} ({health.error}) within the "
                f"{client.connect_timeout_s:g} s connect timeout; is the server running? "
                "(start one with videosim-server)"
            )
            if options.json_lines:  # a reader of the JSON lines still gets its summary
                for row in rows:
                    row.never_answered(message)
                print(json.dumps(_summary(rows, EXIT_UNREACHABLE, client, policy, strategy)),
                      file=out)  # fmt: skip
            _warn(message)
            return EXIT_UNREACHABLE
        if health.key_refused:  # every request would be refused the same way
            _warn(f"{client.base_url} refused the key: {health.error}")
            return EXIT_USAGE
        client.health_gate.add_listener(_breaker_reporter(client, start_deadline_s))
        if not health.ok:
            _warn(f"server at {client.base_url} is not healthy ({health.error}); trying anyway")
        if options.webhook:
            if (await client.capabilities()).webhooks:
                receiver = WebhookReceiver(secrets.token_hex(16))
                client.use_webhooks(await stack.enter_async_context(receiver))
            else:
                _warn(f"server at {client.base_url} offers no webhooks; watching without them")
        with live:
            await _start_and_watch(client, rows, policy, strategy, options, start_deadline_s,
                                   on_event)  # fmt: skip

    code = _exit_code(rows)
    if options.json_lines:
        print(json.dumps(_summary(rows, code, client, policy, strategy)), file=out)
    else:
        console.print(_summary_table(rows, client, policy, strategy, console.width))
    _report_failures(client, rows)
    return code


async def _first_answer(client: VideoSimClient) -> HealthCheck:
    """The health check, asked again until something answers or the connect timeout has
    passed: a server still binding its port gets that long, nobody gets a 60 s wait."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + client.connect_timeout_s
    while True:
        health = await client.health()
        if health.latency_s is not None or loop.time() >= give_up_at:
            return health
        await asyncio.sleep(min(HEALTH_RETRY_S, max(0.0, give_up_at - loop.time())))


async def _start_and_watch(
    client: VideoSimClient,
    rows: list[JobRow],
    policy: BackoffPolicy,
    strategy: Strategy,
    options: RunOptions,
    start_deadline_s: float,
    on_event: Callable[[JobRow, PollEvent], None],
) -> None:
    """Start in chunks; watch every job the moment its chunk is answered."""
    spec = StartSpec(options.duration_s, options.outcome)
    special_policy = special_job_policy(policy)
    async with asyncio.TaskGroup() as group:

        def watch(row: JobRow, duration_s: float | None = None) -> None:
            job_policy = special_policy if row.special else policy
            report = functools.partial(on_event, row)  # by row: ids need not be unique
            # The job cannot end before its duration: no need to ask before then, unless
            # plain backoff or a budget of checks was asked for (the schedule is the point).
            by_schedule = strategy is Strategy.BACKOFF or job_policy.max_attempts is not None
            first_poll = None if by_schedule else duration_s
            group.create_task(client.wait(row.job_id, job_policy, strategy, on_event=report,
                                          first_poll_after_s=first_poll))  # fmt: skip

        async def start_chunk(chunk: list[JobRow]) -> None:
            results = await client.start_many([spec] * len(chunk), deadline_s=start_deadline_s)
            for row, result in zip(chunk, results, strict=True):
                row.start_answered(result)
                if row.started:
                    watch(row, result.duration_s)

        watched = set(options.watch)
        for row in rows:
            if row.special or row.job_id in watched:
                watch(row)
        jobs = [row for row in rows if not row.special and row.job_id not in watched]
        # Jobs started together end together, and one process can only notice so many
        # endings per second: starts are paced so the endings come at a rate it keeps up with.
        pace_s = START_CHUNK / options.start_rate if options.start_rate else 0.0
        for first in range(0, len(jobs), START_CHUNK):
            if first:
                await asyncio.sleep(pace_s)
            group.create_task(start_chunk(jobs[first : first + START_CHUNK]))


def _ids_to_watch(given: Sequence[str], path: Path | None) -> tuple[str, ...]:
    """The ids of --watch and --watch-file, in order, each once; ValueError in one line."""
    ids = job_ids_in("\n".join(given))
    if path is not None:
        ids += read_watch_file(path)
    return tuple(dict.fromkeys(ids))


def _breaker_reporter(client: VideoSimClient, deadline_s: float) -> Callable[[GateState], None]:
    """Say at once when the server stops answering, and when it is back."""

    def report(state: GateState) -> None:
        if state is GateState.OPEN:
            _warn(
                f"server at {client.base_url} stopped answering "
                f"({client.health_gate.last_error}); retrying until each job's deadline"
            )
        else:
            _warn(f"server at {client.base_url} answers again")

    return report


def _report_failures(client: VideoSimClient, rows: list[JobRow]) -> None:
    """One stderr line per kind of bad ending a user must know about."""
    startable = [row for row in rows if not row.special]  # the special job is never started
    not_started = [row for row in startable if not row.started]
    if not_started:
        _warn(
            f"{len(not_started)} of {len(startable)} jobs did not start: "
            f"{not_started[0].last_error}"
        )
    unreachable = [row for row in rows if row.started and row.outcome is Outcome.UNREACHABLE]
    if unreachable:
        reason = unreachable[0].last_error or "no answer"
        if not reason.startswith("server at"):
            reason = f"server at {client.base_url} is unreachable: {reason}"
        _warn(reason)


def special_job_policy(policy: BackoffPolicy) -> BackoffPolicy:
    """The special job never ends, so its watch must be bounded in requests and in time.

    A budget counts requests; under long-poll each may be held for the server's whole cap
    (30 s), so five polls could take two minutes. A deadline as long as the budget's own
    schedule keeps the run as long as the seed client's (1+2+4+8 = 15 s for the original
    preset) whatever the strategy; only the number of requests differs.
    """
    if policy.max_attempts is None and policy.deadline_s is None:
        policy = policy.replace(max_attempts=SPECIAL_ATTEMPTS_WITHOUT_BUDGET)
    if policy.deadline_s is None and policy.max_attempts is not None and policy.max_attempts > 1:
        policy = policy.replace(deadline_s=sum(policy.schedule(policy.max_attempts - 1)))
    return policy


def _exit_code(rows: list[JobRow]) -> int:
    if any(row.outcome is Outcome.UNREACHABLE for row in rows):
        return EXIT_UNREACHABLE
    if all(row.succeeded for row in rows):
        return EXIT_OK
    return EXIT_JOB_FAILED


def _summary(
    rows: list[JobRow],
    code: int,
    client: VideoSimClient,
    policy: BackoffPolicy,
    strategy: Strategy,
) -> dict[str, Any]:
    return {
        "type": "summary",
        "exit_code": code,
        "server_url": client.base_url,
        "profile": client.profile_name,
        "strategy": {"asked": strategy.value, "used": _strategies_used(rows)},
        "policy": policy.describe(),
        "jobs": [
            {
                "job_id": row.job_id if row.started else None,
                "special": row.special,
                "started": row.started,
                "outcome": row.outcome.value if row.outcome else None,
                "strategy": row.used.value if row.used else None,
                "attempts": row.attempt,
                "requests": row.requests,
                "elapsed_s": round(row.elapsed_s, 3),
                "last_error": row.last_error,
            }
            for row in rows
        ],
    }


def _strategies_used(rows: list[JobRow]) -> dict[str, int]:
    """Watches per strategy that ended them: ``auto`` asked, ``backoff`` used shows here."""
    return dict(Counter(row.used.value for row in rows if row.used is not None))


def _strategy_text(strategy: Strategy, rows: list[JobRow]) -> str:
    used = _strategies_used(rows)
    if not used or set(used) == {strategy.value}:
        return f"strategy {strategy.value}"
    return f"strategy {strategy.value} asked, used: {strategies_used_text(used)}"


def _live_table(rows: list[JobRow], width: int) -> Table:
    table = Table(title="videosim jobs", expand=False)
    table.add_column("job", no_wrap=True, max_width=_job_width(width, LIVE_OTHER_COLUMNS_WIDTH))
    for column in ("status", "attempt", "next poll", "why", "elapsed"):
        justify: JustifyMethod = "right" if column in ("attempt", "elapsed") else "left"
        table.add_column(column, justify=justify, no_wrap=True)
    shown = rows[:LIVE_ROWS]
    for row in shown:
        next_poll = "-" if row.next_delay_s is None else f"{row.next_delay_s:.2f}s"
        table.add_row(
            _label(row),
            row.outcome.value if row.outcome else row.status,
            str(row.attempt),
            next_poll,
            row.reason,
            f"{row.elapsed_s:.1f}s",
        )
    if len(rows) > len(shown):
        done = sum(row.outcome is not None for row in rows)
        table.caption = f"{len(rows) - len(shown)} more jobs not shown; {done}/{len(rows)} done"
    return table


def _summary_table(
    rows: list[JobRow], client: VideoSimClient, policy: BackoffPolicy, strategy: Strategy,
    width: int,
) -> Table:  # fmt: skip
    table = Table(title=f"{client.profile_name}: {len(rows)} jobs on {client.base_url}")
    table.caption = f"{_strategy_text(strategy, rows)}; policy {policy.describe()}"
    if len(rows) <= SUMMARY_ROWS:
        any_error = any(row.last_error for row in rows)
        table.add_column(
            "job", no_wrap=True, max_width=_job_width(width, SUMMARY_OTHER_COLUMNS_WIDTH)
        )
        table.add_column("outcome", no_wrap=True, min_width=len("unreachable"))
        for column in ("attempts", "requests", "time"):
            table.add_column(column, justify="right", no_wrap=True)
        if any_error:
            table.add_column("last error")
        for row in rows:
            cells = [
                _label(row),
                row.outcome.value if row.outcome else "-",
                str(row.attempt),
                str(row.requests),
                f"{row.elapsed_s:.2f}s",
            ]
            table.add_row(*cells, *([row.last_error or ""] if any_error else []))
        return table
    for column in ("outcome", "jobs", "mean attempts", "mean requests", "mean time"):
        table.add_column(column, justify="left" if column == "outcome" else "right")
    groups: dict[str, list[JobRow]] = {}
    for row in rows:
        groups.setdefault(row.outcome.value if row.outcome else "-", []).append(row)
    for outcome, group in sorted(groups.items()):
        count = len(group)
        table.add_row(
            outcome,
            str(count),
            f"{sum(r.attempt for r in group) / count:.1f}",
            f"{sum(r.requests for r in group) / count:.1f}",
            f"{sum(r.elapsed_s for r in group) / count:.2f}s",
        )
    return table


def _job_width(console_width: int, others: int) -> int:
    """Room left for job ids: on a narrow terminal they are cut, the numbers are not."""
    return max(12, console_width - others)


def _label(row: JobRow) -> str:
    return f"{row.job_id} (special)" if row.special else row.job_id


def _warn(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _fail(message: str, code: int) -> int:
    _warn(message)
    return code


def _finite_float(text: str, *, zero_allowed: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    in_range = value >= 0 if zero_allowed else value > 0
    if not (in_range and math.isfinite(value)):
        bound = ">= 0" if zero_allowed else "> 0"
        raise argparse.ArgumentTypeError(f"must be a finite number {bound} (got {text})")
    return value


def _positive_float(text: str) -> float:
    return _finite_float(text, zero_allowed=False)


def _non_negative_float(text: str) -> float:
    return _finite_float(text, zero_allowed=True)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {text})")
    return value
