"""``videosim`` / ``python -m tui``: open the dashboard.

Settings come from defaults < ``.env`` < ``VIDEOSIM_*`` environment < flags (through
client_core's ``ClientSettings``). A bad value stops start-up with one line on stderr and
exit code 2. Without a server URL the dashboard uses the default port if a server answers
there, else starts an embedded one, and never leaves it running after exit.
"""

from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from pydantic import ValidationError

from client_core import ClientSettings, Jitter, Strategy
from tui import remembered, web
from tui.app import make_app
from tui.settings import DEFAULT_MAX_DURATION_S, DashboardSettings

PROG = "videosim"

# flag -> ClientSettings field, for the flags that pass straight through
SETTING_FLAGS = {
    "server_url": "server_url",
    "api_key": "api_key",
    "strategy": "strategy",
    "preset": "preset",
    "initial": "initial_s",
    "multiplier": "multiplier",
    "max_delay": "max_delay_s",
    "jitter": "jitter",
    "jitter_ratio": "jitter_ratio",
    "max_attempts": "max_attempts",
    "deadline": "deadline_s",
    "seed": "seed",
}


class SettingsError(Exception):
    """A bad flag or environment value; the message is the whole line shown to the user."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Live dashboard: spawn videosim jobs, watch them poll, compare policies.",
    )
    parser.add_argument("--server-url", help="connect to this server only (no embedded server)")
    parser.add_argument("--api-key", help="sent as X-Api-Key")
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], help="for new jobs")
    parser.add_argument(
        "--preset",
        choices=["default", "original", "fixed"],
        help="starting backoff policy for new jobs; the flags below override its parameters",
    )
    parser.add_argument("--initial", type=float, metavar="S", help="first delay (s)")
    parser.add_argument("--multiplier", type=float, help="growth per poll (>= 1)")
    parser.add_argument("--max-delay", type=float, metavar="S", help="longest delay (s)")
    parser.add_argument("--jitter", choices=[j.value for j in Jitter])
    parser.add_argument("--jitter-ratio", type=float, metavar="R", help="for proportional, 0-1")
    parser.add_argument(
        "--max-attempts",
        "--retries",
        dest="max_attempts",
        type=int,
        metavar="N",
        help="status requests per job before giving up (RETRIES); both names work",
    )
    parser.add_argument("--deadline", type=float, metavar="S", help="seconds before giving up")
    parser.add_argument("--seed", type=int, help="fixes jitter and spawned duration ranges")
    parser.add_argument(
        "--max-duration",
        type=float,
        default=DEFAULT_MAX_DURATION_S,
        metavar="S",
        help="the server's cap on job durations (its --max-duration); the spawn form "
        "refuses longer ones (default %(default)g)",
    )
    parser.add_argument(
        "--no-embedded",
        action="store_true",
        help="never start a server; without --server-url use the default URL",
    )
    parser.add_argument(
        "--embedded-args",
        default="",
        metavar="ARGS",
        help='extra flags for the embedded server, e.g. "--delay 2 --error-rate 0.2"',
    )
    parser.add_argument("--theme", help="a built-in Textual theme, e.g. nord, gruvbox")
    parser.add_argument("--export-dir", default=".", metavar="DIR", help="where e writes")
    parser.add_argument("--reset", action="store_true", help="forget the remembered settings")
    parser.add_argument("--web", action="store_true", help="serve the dashboard to a browser")
    parser.add_argument("--port", type=int, default=web.DEFAULT_PORT, help="for --web")
    parser.add_argument("--host", default=web.DEFAULT_HOST, help="for --web")
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace) -> DashboardSettings:
    """Flags over environment over defaults; SettingsError names the bad value."""
    given = {
        field: getattr(args, flag)
        for flag, field in SETTING_FLAGS.items()
        if getattr(args, flag) is not None
    }
    try:
        client = ClientSettings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "value"
        raise SettingsError(f"invalid setting {field}: {error['msg']}") from None
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
    return DashboardSettings(
        server_url=client.server_url if url_given else None,
        api_key=client.api_key,
        client_options={k: v for k, v in client.client_options().items() if k != "api_key"},
        embedded=not args.no_embedded,
        embedded_args=embedded_args,
        strategy=client.strategy,
        policy=policy,
        spawn_seed=client.seed,
        max_duration_s=args.max_duration,
        export_dir=args.export_dir,
        given=frozenset(client.model_fields_set),
    )


def check_server_url(url: str) -> None:
    """Refuse a URL no request could use before any window opens (the runner's rule)."""
    try:
        parsed = urlsplit(url)
        host, _ = parsed.hostname, parsed.port  # .port raises on a bad port
    except ValueError as exc:
        raise SettingsError(f"invalid setting server_url: {url!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise SettingsError(
            f"invalid setting server_url: must look like http://host:port (got {url!r})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = build_settings(args)
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
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
    remembered.open_session(app, settings.given | ({"theme"} if args.theme else set()))
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
        if note := remembered.close_session(app):
            print(f"{PROG}: {note}", file=sys.stderr)
    return app.return_code or 0
