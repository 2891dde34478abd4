"""``videosim --web`` in a real browser: headless Chromium loads the page, keys spawn jobs,
and the table in the page shows them.

The page draws the terminal on a canvas (xterm.js), so there is no DOM text to read. The
test reads what the browser itself received instead: every websocket frame of terminal
output is fed, in order, to a terminal emulator (pyte) of the size the page reported,
which gives the screen the page is showing, line by line.

No browser is downloaded: the test drives the system's Chromium (Debian's ``chromium``;
``.ci/run`` installs it). When it is missing or cannot start, the test fails, never skips.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pyte
import pytest
from playwright.sync_api import Page, WebSocket, sync_playwright

from tests.support.live_server import LiveServer, free_port
from tui.cli import main
from tui.settings import DashboardSettings
from tui.web import session_arguments, session_command, shared_server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
VIEWPORT = {"width": 1200, "height": 700}
# WEB_SCREENSHOT=docs/web.png regenerates the docs' picture from this test
SCREENSHOT = os.environ.get("WEB_SCREENSHOT")


class BrowserTerminal:
    """The screen the page shows, rebuilt from the terminal output it received."""

    def __init__(self) -> None:
        self.screen: pyte.Screen | None = None
        self._stream: pyte.ByteStream | None = None
        self._pending: list[bytes] = []

    def attach(self, socket: WebSocket) -> None:
        socket.on("framesent", self._sent)
        socket.on("framereceived", self._received)

    def _sent(self, payload: str | bytes) -> None:
        """The page says its size (``["resize", {...}]``) before any output arrives."""
        if isinstance(payload, str) and payload.startswith('["resize"'):
            size = json.loads(payload)[1]
            if self.screen is None:
                self.screen = pyte.Screen(size["width"], size["height"])
                self._stream = pyte.ByteStream(self.screen)
            else:
                self.screen.resize(size["height"], size["width"])

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):  # terminal output; str frames are metadata
            self._pending.append(payload)

    def text(self) -> str:
        if self._stream is not None:
            for chunk in self._pending:
                self._stream.feed(chunk)
            self._pending.clear()
        return "\n".join(self.screen.display) if self.screen is not None else ""


def wait_for(
    page: Page,
    terminal: BrowserTerminal,
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = 30,
) -> None:
    """Let the page run until ``condition`` holds; fail with ``what`` and the screen."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {what}:\n{terminal.text()}"
            )
        page.wait_for_timeout(100)


@pytest.fixture
def web_dashboard(live_server_factory: Callable[..., LiveServer]) -> Iterator[tuple[str, str]]:
    """``videosim --web`` on a free port, its tabs connected to a real server."""
    server = live_server_factory("--delay", "60")
    port = free_port()
    command = [sys.executable, "-m", "tui", "--web", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--server-url", server.url, "--seed", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("videosim --web did not start serving") from None
                time.sleep(0.1)
        yield url, server.url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def count_field(terminal: BrowserTerminal) -> str | None:
    """What the spawn form's "How many" field shows, or None when the form is not shown."""
    for line in terminal.text().splitlines():
        if "How many" in line:
            return line.split("How many", 1)[1].strip(" █▌▐")
    return None


def server_job_ids(server_url: str) -> list[str]:
    answer = httpx.get(f"{server_url}/jobs", timeout=5).json()
    jobs = answer["jobs"] if isinstance(answer, dict) else answer
    return [job["job_id"] for job in jobs]


@pytest.mark.timeout(120)
def test_browser_spawns_jobs_with_keys_and_the_table_shows_them(
    web_dashboard: tuple[str, str], tmp_path: Path
) -> None:
    url, server_url = web_dashboard
    assert shutil.which(CHROMIUM), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    terminal = BrowserTerminal()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.on("websocket", terminal.attach)
            page.goto(url)
            wait_for(page, terminal, lambda: "Outcome" in terminal.text(), "the job table's header")
            wait_for(page, terminal, lambda: "server ok" in terminal.text(), "the server's health")
            page.click(".textual-terminal")  # keys go to the focused terminal

            # each key waits for the screen to answer the one before, as a person would
            page.keyboard.press("n")
            wait_for(page, terminal, lambda: "Spawn jobs" in terminal.text(), "the spawn form")
            wait_for(page, terminal, lambda: count_field(terminal) == "1", "the count 1")
            page.keyboard.press("Backspace")
            wait_for(page, terminal, lambda: count_field(terminal) == "", "an empty count")
            page.keyboard.press("3")
            wait_for(page, terminal, lambda: count_field(terminal) == "3", "the count 3")
            page.keyboard.press("Control+s")
            wait_for(page, terminal, lambda: "pending 3" in terminal.text(), "3 jobs pending")
            page.keyboard.press("s")
            wait_for(page, terminal, lambda: "pending 4" in terminal.text(), "the special job")

            prefixes = [job_id[:8] for job_id in server_job_ids(server_url)]
            assert len(prefixes) == 3
            screen = terminal.text()
            for shown in [*prefixes, "special"]:
                assert shown in screen, f"{shown} is not in the table:\n{screen}"
            page.screenshot(path=SCREENSHOT or tmp_path / "web.png")
        finally:
            browser.close()


def test_a_tab_runs_the_same_command_line_without_the_web_flags() -> None:
    argv = ["--web", "--port=9001", "--theme", "nord", "--host", "0.0.0.0", "--seed", "4"]
    assert session_arguments(argv) == ["--theme", "nord", "--seed", "4"]
    command = shlex.split(session_command(["--web", "--port", "9001"], "http://h:1"))
    assert command == [sys.executable, "-m", "tui", "--server-url", "http://h:1"]


def test_a_port_in_use_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = ["--web", "--host", "127.0.0.1", "--port", port, "--server-url", "http://h:1"]
        assert main(argv) == 2
    said = capsys.readouterr()
    assert said.err == f"videosim: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert said.out == ""  # no banner before the error


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_refused_not_wrapped(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--web", "--port", port, "--server-url", "http://h:1"])
    assert exited.value.code == 2
    said = capsys.readouterr()
    assert said.err.count("\n") == 1 and "a port number from 0 to 65535" in said.err
    assert said.out == ""


def test_port_0_serves_on_a_free_port_and_says_which() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "--web", "--host", "127.0.0.1", "--port", "0",
         "--server-url", "http://127.0.0.1:9"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = ""
        while (line := process.stdout.readline()) and "http://" not in line.split("'")[-1]:
            pass  # the banner's last line names the address (wrapped or not)
        address = line.split("'")[-1].strip().removeprefix("on ")
        assert address.startswith("http://127.0.0.1:") and not address.endswith(":0"), line
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(address, timeout=5).status_code == 200
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_tabs_share_one_embedded_server_when_none_answers() -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}"
    server = shared_server(DashboardSettings(default_url=nothing_there))
    assert server is not None
    try:
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        command = session_command(["--web"], server.url)
        assert command.endswith(f"--server-url {server.url}")
    finally:
        server.stop()
    assert shared_server(DashboardSettings(server_url="http://given:1")) is None
    assert shared_server(DashboardSettings(default_url=nothing_there, embedded=False)) is None
