"""Web mode (``videosim --web``): the same dashboard in a browser, served by textual-serve.

textual-serve starts one dashboard process per browser tab, with a command line it is
given, and relays that process's terminal over a websocket to xterm.js in the page. So the
command for a tab is simply this dashboard's own command line without the web flags: every
other flag (server URL, policy, theme) means the same in the browser as in a terminal.

Tabs share one server. Without ``--server-url`` web mode does once what each dashboard
would do on its own: use the default URL if a server answers there, else start one
embedded server for every tab (stopped when web mode stops), and hand its URL to each tab.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Sequence

from textual_serve.server import Server

import settings_cli
from client_core.local_server import free_port
from tui.embedded import EmbeddedServer, EmbeddedServerError, server_answers
from tui.settings import DashboardSettings

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8000
TITLE = "videosim"

# flags web mode handles once -> how many values follow them; a tab must not see them
WEB_FLAGS = {"--web": 0, "--port": 1, "--host": 1, "--reset": 0}


class WebModeError(Exception):
    """Web mode cannot start; the message is the whole line shown to the user."""


def session_arguments(argv: Sequence[str]) -> list[str]:
    """The CLI arguments a browser tab's dashboard runs with: ``argv`` minus the web flags
    (both ``--port 8001`` and ``--port=8001`` forms)."""
    kept: list[str] = []
    skip = 0
    for argument in argv:
        if skip:
            skip -= 1
            continue
        name = argument.split("=", 1)[0]
        if name in WEB_FLAGS:
            skip = 0 if "=" in argument else WEB_FLAGS[name]
            continue
        kept.append(argument)
    return kept


def session_command(argv: Sequence[str], server_url: str | None = None) -> str:
    """The shell command textual-serve runs for each tab (this interpreter, so a venv works)."""
    arguments = session_arguments(argv)
    if server_url is not None:
        arguments += ["--server-url", server_url]
    return shlex.join([sys.executable, "-m", "tui", *arguments])


def shared_server(settings: DashboardSettings) -> EmbeddedServer | None:
    """The embedded server every tab uses, or None when the tabs find their server alone
    (a URL was given, the default URL answers, or embedding is switched off)."""
    if settings.server_url or not settings.embedded:
        return None
    if asyncio.run(server_answers(settings.default_url)):
        return None
    server = EmbeddedServer(args=settings.embedded_args)
    try:
        server.start()
    except EmbeddedServerError as exc:
        raise WebModeError(f"the embedded server did not start: {exc}") from None
    return server


def serve(
    argv: Sequence[str],
    settings: DashboardSettings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> None:
    """Serve the dashboard on http://host:port until Ctrl+C or SIGTERM. A port that
    cannot be listened on is refused before anything starts; port 0 becomes a free port
    first, so the banner shows the address the browser needs."""
    if (problem := settings_cli.listen_problem(host, port)) is not None:
        raise WebModeError(problem)
    if port == 0:
        port = free_port(host)
    embedded = shared_server(settings)
    try:
        command = session_command(argv, embedded.url if embedded else None)
        Server(command, host=host, port=port, title=TITLE).serve()
    except OSError as exc:  # the port is taken, or the host is not ours
        raise WebModeError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        if embedded is not None:
            embedded.stop()


def run(argv: Sequence[str], settings: DashboardSettings, *, host: str, port: int) -> int:
    """The CLI's ``--web``: serve, or one line on stderr and exit code 2."""
    try:
        serve(argv, settings, host=host, port=port)
    except WebModeError as exc:
        print(f"videosim: {exc}", file=sys.stderr)
        return 2
    return 0
