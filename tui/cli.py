"""``videosim`` / ``python -m tui``: open the dashboard.

Settings come from defaults < ``.env`` < ``VIDEOSIM_*`` environment < flags (through
client_core's ``ClientSettings``). A bad value stops start-up with one line on stderr and
exit code 2. Without a server URL the dashboard uses the default port if a server answers
there, else starts an embedded one, and never leaves it running after exit.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from api_profiles import builtin_names, load_profile
from client_core import ClientSettings, Jitter, Strategy, read_watch_file
from client_core.protocol import check_url
from settings_cli import CommandLine, UsageError, first_error_line, port_number
from tui import remembered, web
from tui.app import make_app
from tui.settings import DEFAULT_MAX_DURATION_S, DashboardSettings

PROG = "videosim"


class SettingsError(UsageError):
    """A bad flag or environment value; the message is the whole line shown to the user."""


def build_command_line() -> CommandLine:
    """The dashboard's flags: polling settings (``ClientSettings`` fields) and its own."""
    cli = CommandLine(
        PROG,
        description="Live dashboard: spawn videosim jobs, watch them poll, compare policies.",
    )
    cli.setting("--server-url", field="server_url",
                help="connect to this server only (no embedded server)")  # fmt: skip
    cli.setting("--api-key", field="api_key", help="sent as X-Api-Key")
    cli.setting("--profile", field="profile", metavar="NAME|PATH",
                help=f"the job API spoken: {', '.join(builtin_names())} or a profile file "
                     "(default videosim); the embedded server emulates it")  # fmt: skip
    cli.option("--watch-file", type=Path, metavar="PATH",
               help="watch the job ids in this file once connected (starts nothing)")  # fmt: skip
    cli.option("--allow-start", action="store_true",
               help="allow spawning on a --server-url that speaks another API's profile "
                    "(it may cost money)")  # fmt: skip
    cli.setting("--strategy", field="strategy", choices=[s.value for s in Strategy],
                help="for new jobs")  # fmt: skip
    cli.setting("--preset", field="preset", choices=["default", "original", "fixed"],
                help="starting backoff policy for new jobs; the flags below override its "
                "parameters")  # fmt: skip
    cli.setting("--initial", field="initial_s", type=float, metavar="S", help="first delay (s)")
    cli.setting("--multiplier", field="multiplier", type=float, help="growth per poll (>= 1)")
    cli.setting("--max-delay", field="max_delay_s", type=float, metavar="S",
                help="longest delay (s)")  # fmt: skip
    cli.setting("--jitter", field="jitter", choices=[j.value for j in Jitter])
    cli.setting("--jitter-ratio", field="jitter_ratio", type=float, metavar="R",
                help="for proportional, 0-1")  # fmt: skip
    cli.setting("--max-attempts", "--retries", field="max_attempts", type=int, metavar="N",
                help="status requests per job before giving up (RETRIES); both names "
                "work")  # fmt: skip
    cli.setting("--deadline", field="deadline_s", type=float, metavar="S",
                help="seconds before giving up")  # fmt: skip
    cli.setting("--seed", field="seed", type=int,
                help="fixes jitter and spawned duration ranges")  # fmt: skip
    cli.option("--max-duration", type=float, default=DEFAULT_MAX_DURATION_S, metavar="S",
               help="the server's cap on job durations (its --max-duration); the spawn form "
               "refuses longer ones (default %(default)g)")  # fmt: skip
    cli.option("--no-embedded", action="store_true",
               help="never start a server; without --server-url use the default URL")  # fmt: skip
    cli.option("--embedded-args", default="", metavar="ARGS",
               help="extra flags for the embedded server, e.g. "
               '"--delay 2 --error-rate 0.2"')  # fmt: skip
    cli.option("--theme", help="a built-in Textual theme, e.g. nord, gruvbox")
    cli.option("--export-dir", metavar="DIR",
               help="where e writes (default ~/.local/share/videosim/exports)")  # fmt: skip
    cli.option("--reset", action="store_true", help="forget the remembered settings")
    cli.option("--web", action="store_true", help="serve the dashboard to a browser")
    cli.option("--port", type=port_number, default=web.DEFAULT_PORT,
               help="for --web (0: any free port)")  # fmt: skip
    cli.option("--host", default=web.DEFAULT_HOST, help="for --web")
    return cli


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags; the settings among them are kept, by field, in ``given_settings``."""
    given, args = build_command_line().parse(argv)
    args.given_settings = given
    return args


def build_settings(args: argparse.Namespace) -> DashboardSettings:
    """Flags over environment over defaults; SettingsError names the bad value."""
    try:
        client = ClientSettings(**args.given_settings)
    except ValidationError as exc:
        raise SettingsError(first_error_line(exc, ClientSettings)) from None
    try:
        policy = client.policy()
    except ValueError as exc:
        raise SettingsError(f"invalid policy: {exc}") from None
    try:
        embedded_args = tuple(shlex.split(args.embedded_args))
    except ValueError as exc:
        raise SettingsError(f"invalid --embedded-args: {exc}") from None
    if not (math.isfinite(args.max_duration) and args.max_duration > 0):
        raise SettingsError(
            f"invalid --max-duration: a number of seconds above 0 (got {args.max_duration:g})"
        )
    url_given = "server_url" in client.model_fields_set
    if url_given:
        check_server_url(client.server_url)
    profile = client.api_profile
    if not profile.native and not url_given:  # the embedded server emulates the profile
        embedded_args = ("--profile", client.profile, *embedded_args)
    try:
        watch_ids = tuple(read_watch_file(args.watch_file)) if args.watch_file else ()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return DashboardSettings(
        server_url=client.server_url if url_given else None,
        client_options=client.client_options(),
        embedded=not args.no_embedded,
        embedded_args=embedded_args,
        strategy=client.strategy,
        policy=policy,
        spawn_seed=client.seed,
        max_duration_s=args.max_duration,
        export_dir=args.export_dir,
        given=frozenset(client.model_fields_set),
        watch_ids=watch_ids,
        allow_start=profile.native or not url_given or args.allow_start,
    )


def check_server_url(url: str) -> None:
    """Refuse a URL no request could use before any window opens (the client's own rule)."""
    try:
        check_url(url)
    except ValueError as exc:
        raise SettingsError(f"invalid setting server_url: {exc}") from None


def give_the_emulator_a_key(settings: DashboardSettings) -> None:
    """An embedded server emulating a profile wants the profile's auth header, with any
    key: when the variable is not set, a throwaway one is set for this process and its
    engine (never for a --server-url, which may be the real API)."""
    auth = load_profile(settings.client_options.profile).auth
    if settings.server_url is None and auth is not None and not os.environ.get(auth.env):
        os.environ[auth.env] = f"emulated-{secrets.token_hex(8)}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = build_settings(args)
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    give_the_emulator_a_key(settings)
    if args.reset and (note := remembered.forget()):
        print(f"{PROG}: {note}", file=sys.stderr)
    if args.web:
        argv = sys.argv[1:] if argv is None else argv
        return web.run(argv, settings, host=args.host, port=args.port)
    app = make_app(settings=settings)
    if args.theme:
        if args.theme not in app.available_themes:
            names = ", ".join(sorted(app.available_themes))
            print(f"{PROG}: unknown theme {args.theme!r} (one of: {names})", file=sys.stderr)
            return 2
        app.theme = args.theme
    session = remembered.open_session(app, settings.given | ({"theme"} if args.theme else set()))
    # kill, or the terminal closing: quit through the normal exit path
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: app.exit())
    try:
        app.run()
    except KeyboardInterrupt:
        pass
    finally:
        app.stop_embedded()  # whatever happened above, no child server outlives us
        if note := remembered.close_session(app, session):
            print(f"{PROG}: {note}", file=sys.stderr)
    return app.return_code or 0
