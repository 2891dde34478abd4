"""``python -m server`` / ``videosim-server``: parse flags, build settings, run uvicorn.

Flags are parsed as plain strings and handed to :class:`ServerSettings`, so a bad value is
reported the same way whether it came from a flag, the environment or ``.env``: one line
on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import settings_cli
from server.settings import ServerSettings
from settings_cli import CommandLine, field_help

PROG = "videosim-server"
EXIT_USAGE = settings_cli.EXIT_USAGE
EXIT_STARTUP_FAILED = 3  # uvicorn's code when the server could not start (port taken)

# (flag, settings field, metavar or None for switches)
_VALUE_FLAGS: list[tuple[str, str, str]] = [
    ("--host", "host", "ADDR"),
    ("--port", "port", "PORT"),
    ("--delay", "delay", "SECONDS"),
    ("--error-rate", "error_rate", "SHARE"),
    ("--long-poll-max", "long_poll_max_s", "SECONDS"),
    ("--seed", "seed", "INT"),
    ("--max-jobs", "max_jobs", "N"),
    ("--max-duration", "max_duration_s", "SECONDS"),
    ("--max-batch", "max_batch", "N"),
    ("--retention", "retention_s", "SECONDS"),
    ("--max-idempotency-keys", "max_idempotency_keys", "N"),
    ("--request-log-length", "request_log_length", "N"),
    ("--max-body-bytes", "max_body_bytes", "BYTES"),
    ("--api-key", "api_key", "KEY"),
    ("--fault-latency-ms", "fault_latency_ms", "MS"),
    ("--fault-latency-jitter-ms", "fault_latency_jitter_ms", "MS"),
    ("--fault-unavailable-rate", "fault_unavailable_rate", "SHARE"),
    ("--fault-retry-after", "fault_retry_after_s", "SECONDS"),
    ("--fault-rate-limit", "fault_rate_limit_rps", "RPS"),
    ("--max-header-bytes", "max_header_bytes", "BYTES"),
    ("--max-headers", "max_headers", "N"),
    ("--header-timeout", "header_timeout_s", "SECONDS"),
    ("--body-timeout", "body_timeout_s", "SECONDS"),
    ("--max-connections", "max_connections", "N"),
    ("--trusted-proxies", "trusted_proxies", "ADDRS"),
    ("--log-level", "log_level", "LEVEL"),
    ("--store", "store", "URL"),
    ("--workers", "workers", "N"),
    ("--state-file", "state_file", "PATH"),
    ("--max-batch-status", "max_batch_status", "N"),
    ("--max-subscriptions-per-client", "max_subscriptions_per_client", "N"),
    ("--max-subscribed-ids-per-client", "max_subscribed_ids_per_client", "N"),
    ("--events-heartbeat", "events_heartbeat_s", "SECONDS"),
    ("--events-buffer", "events_buffer", "N"),
    ("--events-send-timeout", "events_send_timeout_s", "SECONDS"),
    ("--callback-hosts", "callback_hosts", "HOSTS"),
    ("--callback-attempts", "callback_attempts", "N"),
    ("--callback-takeover", "callback_takeover_s", "SECONDS"),
    ("--profile", "profile", "NAME|PATH"),
    ("--scenario", "scenario", "NAME|PATH"),
]


def build_command_line() -> CommandLine:
    command_line = CommandLine(
        PROG,
        description="Run the videosim simulation server. Settings come from defaults < .env "
        "< VIDEOSIM_* environment < these flags.",
    )
    for flag, field, metavar in _VALUE_FLAGS:
        command_line.setting(flag, field=field, metavar=metavar, help=_help_for(field))
    command_line.setting(
        "--hints", field="hints", action=argparse.BooleanOptionalAction, help=_help_for("hints")
    )
    command_line.setting("--plain", field="plain", action="store_true", help=_help_for("plain"))
    command_line.setting(
        "--allow-any-callback-host",
        field="allow_any_callback_host",
        action="store_true",
        help=_help_for("allow_any_callback_host"),
    )
    command_line.setting(
        "--callback-failure-details",
        field="callback_failure_details",
        action="store_true",
        help=_help_for("callback_failure_details"),
    )
    command_line.setting(
        "--reload",
        field="reload",
        action="store_true",
        help=_help_for("reload") + "; the restarted server reads its settings from the "
        "environment, which this command fills from its flags",
    )
    return command_line


def _help_for(field: str) -> str:
    return field_help(
        ServerSettings, field, "VIDEOSIM_DELAY or DELAY" if field == "delay" else None
    )


def fail(message: str) -> NoReturn:
    settings_cli.fail(PROG, message)


def load_settings(argv: Sequence[str] | None = None) -> ServerSettings:
    """Flags over environment over .env over defaults; exits 2 with one line if invalid."""
    command_line = build_command_line()
    given, _ = command_line.parse(argv)
    return command_line.settings(ServerSettings, given)


def main(argv: Sequence[str] | None = None) -> int:
    settings = load_settings(argv)
    import uvicorn  # imported late: --help and bad flags answer without loading it

    from server.http.edge import EdgeLimits, guarded_protocol
    from server.http.serving import serve

    if settings.state_file is not None:
        print(
            f"{PROG}: --state-file is deprecated: it now means --store {settings.store_url}",
            file=sys.stderr,
        )
    # Checked before anything is printed, so a taken port, an unreadable store file or an
    # unreachable Redis fails like a bad flag (and an old JSON state file is migrated).
    if (problem := settings_cli.listen_problem(settings.host, settings.port)) is not None:
        fail(problem)
    restored = _check_store(settings)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # Held long-polls would otherwise delay Ctrl-C by up to long_poll_max_s.
        "timeout_graceful_shutdown": 2,
        "http": guarded_protocol(EdgeLimits.from_settings(settings)),
        # uvicorn believes X-Forwarded-For from any loopback peer by default: then any
        # local client could name itself anybody (dodging the rate limit, replaying
        # another caller's Idempotency-Key). Only proxies named here are believed.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": settings.trusted_proxies or None,
    }
    print(
        f"{PROG}: starting on http://{settings.host}:{settings.port} "
        f"({_summary(settings, restored)})"
    )
    if settings.reload or settings.workers > 1:
        _export_to_environment(settings)
        if settings.workers > 1:
            _share_metrics_between_workers()
        uvicorn.run(
            "server.app:create_app_from_env",
            factory=True,
            reload=settings.reload,
            reload_dirs=[str(Path(__file__).parent)] if settings.reload else None,
            workers=settings.workers if not settings.reload else None,
            **common,
        )
        return 0
    from server.app import create_app

    app = create_app(settings)
    if not serve(uvicorn.Config(app, **common), app.state.videosim.store.close):
        return EXIT_STARTUP_FAILED
    return 0


def _check_store(settings: ServerSettings) -> int:
    """Open the store and close it again; returns its job count, exits 2 if it fails."""
    import asyncio

    from server.jobs.clock import SystemClock
    from server.stores.base import StoreUnavailable
    from server.stores.factory import build_store
    from server.stores.sqlite import StoreFileError

    async def open_and_count() -> int:
        store = build_store(settings.store_url, SystemClock(), settings.store_options())
        try:
            await store.open()
            return await store.count()
        finally:
            await store.aclose()

    try:
        return asyncio.run(open_and_count())
    except (StoreFileError, StoreUnavailable) as error:
        fail(str(error))


def _share_metrics_between_workers() -> None:
    """prometheus-client's multiprocess mode: each worker writes its counters to files in
    one fresh directory, and a scrape of any worker sums them."""
    import atexit
    import shutil
    import tempfile

    from server.http.metrics import MULTIPROCESS_DIR_VARIABLE

    directory = tempfile.mkdtemp(prefix="videosim-metrics-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ[MULTIPROCESS_DIR_VARIABLE] = directory


def _summary(settings: ServerSettings, restored: int) -> str:
    long_poll = f"up to {settings.long_poll_max_s:g} s" if settings.long_poll_max_s else "off"
    state = ""
    if settings.store_url != "memory":
        state = f", store {settings.store_url} ({restored} jobs)"
    if settings.workers > 1:
        state += f", {settings.workers} workers"
    return (
        f"jobs {settings.delay:g} s, error rate {settings.error_rate:g}, "
        f"hints {'on' if settings.hints else 'off'}, long-poll {long_poll}"
        + (", API key required" if settings.api_key else "")
        + state
    )


def _export_to_environment(settings: ServerSettings) -> None:
    """--reload runs the app in a fresh process that can only see the environment."""
    for field, value in settings.model_dump(exclude={"reload", "workers"}).items():
        name = f"VIDEOSIM_{field.upper()}"
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    os.environ.pop("DELAY", None)  # VIDEOSIM_DELAY now says it; keep one source of truth
