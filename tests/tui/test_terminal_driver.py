"""The dashboard's terminal driver: keys still arrive, and quitting never waits on input.

The driver runs against a real pseudo-terminal; the end-to-end test runs the real dashboard
in one and checks that ``q`` leaves the terminal as it found it.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

from tests.support.live_server import LiveServer
from tests.tui.conftest import fast_settings
from tui.app import make_app
from tui.terminal_driver import PromptLinuxDriver

ROOT = Path(__file__).resolve().parents[2]


class RecordingDriver(PromptLinuxDriver):
    """The driver with a wait for input far longer than any test: if quitting still waited
    one out, the join below would not end in time."""

    INPUT_WAIT_S = 600.0

    def __init__(self, terminal_fd: int) -> None:
        super().__init__(make_app(settings=fast_settings()))
        self.fileno = terminal_fd
        self.received: list[Message] = []

    def process_message(self, message: Message) -> None:
        self.received.append(message)

    def write(self, data: str) -> None:
        """No screen here (and no writer thread): what the driver draws is dropped."""


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (the side a user types into, the side the driver reads)."""
    typed, read = pty.openpty()
    tty.setraw(read)  # as the driver's application mode sets it: keys arrive one by one
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTSTP, signal.SIGCONT)}
    yield typed, read
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    os.close(typed)
    os.close(read)


def test_the_dashboard_uses_the_prompt_driver_in_a_terminal() -> None:
    app = make_app(settings=fast_settings())
    assert LinuxDriver in PromptLinuxDriver.__mro__
    assert app.get_driver_class() is PromptLinuxDriver


async def test_keys_arrive_and_disabling_input_ends_the_thread_without_a_wait(
    terminal: tuple[int, int],
) -> None:
    typed, read = terminal
    driver = RecordingDriver(read)
    driver._wake_read, driver._wake_write = os.pipe()
    thread = threading.Thread(target=driver.run_input_thread, daemon=True)
    driver._key_thread = thread
    thread.start()

    os.write(typed, b"j")
    deadline = time.monotonic() + 10
    while not any(isinstance(m, events.Key) for m in driver.received):
        assert time.monotonic() < deadline, "the key never arrived"
        await asyncio.sleep(0.01)
    key = next(m for m in driver.received if isinstance(m, events.Key))
    assert key.key == "j"

    # An input wait lasts 600 s here, so only the wake pipe ends the thread soon; should it
    # not, a key typed 10 s from now does, and the test fails.
    fired = threading.Event()

    def type_a_key() -> None:
        fired.set()
        os.write(typed, b"z")

    watchdog = threading.Timer(10, type_a_key)
    watchdog.start()
    driver.disable_input()  # on the main thread, as Textual calls it
    watchdog.cancel()
    assert not thread.is_alive()
    assert not fired.is_set(), "disabling input waited for a key"
    for fd in (driver._wake_read, driver._wake_write):
        os.close(fd)


def test_q_in_a_real_terminal_quits_and_restores_it(live_server: LiveServer) -> None:
    typed, read = pty.openpty()
    before = termios.tcgetattr(read)
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "tui", "--server-url", live_server.url, "--no-embedded"],
        stdin=read,
        stdout=read,
        stderr=read,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    screen = bytearray()

    def read_until(done: bytes, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while done not in screen:
            assert time.monotonic() < deadline, f"never saw {done!r}: {bytes(screen[-400:])!r}"
            if select.select([typed], [], [], 0.1)[0]:
                try:
                    screen.extend(os.read(typed, 65536))
                except OSError:
                    return

    try:
        read_until(b"server ok", 30)
        screen.clear()
        os.write(typed, b"q")
        assert dashboard.wait(20) == 0
        read_until(b"\x1b[?1049l", 5)  # left the alternate screen
        after = termios.tcgetattr(read)
        assert after[3] & (termios.ECHO | termios.ICANON) == before[3] & (
            termios.ECHO | termios.ICANON
        )
        assert after == before
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
            dashboard.wait()
        os.close(typed)
        os.close(read)


async def test_a_terminal_that_goes_away_ends_the_input_thread() -> None:
    """A hung-up terminal reads as EOF (or EIO) forever: the thread ends, where a loop
    that waited again at once spun a core, and a dashboard quitting meanwhile never
    finished joining it (found with dashboards left at 70 % CPU after their tmux pane
    was closed)."""
    typed, read = pty.openpty()
    tty.setraw(read)
    driver = RecordingDriver(read)
    driver._wake_read, driver._wake_write = os.pipe()
    thread = threading.Thread(target=driver.run_input_thread, daemon=True)
    try:
        thread.start()
        os.close(typed)  # the terminal's other end is gone: a hang-up
        typed = -1
        deadline = time.monotonic() + 10
        while thread.is_alive():
            assert time.monotonic() < deadline, "the input thread kept going"
            await asyncio.sleep(0.01)
    finally:
        driver.exit_event.set()
        if typed >= 0:
            os.close(typed)
        os.close(read)
        for fd in (driver._wake_read, driver._wake_write):
            os.close(fd)
