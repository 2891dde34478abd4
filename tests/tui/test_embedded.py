"""The embedded default: with no URL the dashboard runs its own server, and never leaves it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from client_core import Outcome
from client_core.local_server import free_port
from tests.support.live_server import LiveServer
from tests.tui.conftest import connected, fast_settings, wait_until
from tests.tui.test_dashboard_live import quick_jobs
from tui.app import make_app
from tui.embedded import EmbeddedServer, EmbeddedServerError

REPO = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting to be reaped by whoever adopted it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_no_url_starts_an_embedded_server_and_stops_it_on_exit() -> None:
    nobody_home = f"http://127.0.0.1:{free_port()}"  # the "default" port, unused on purpose
    settings = fast_settings(
        embedded=True, default_url=nobody_home, embedded_args=("--delay", "0.3")
    )
    app = make_app(settings=settings)
    async with app.run_test(size=(110, 30)) as pilot:
        await connected(pilot)
        await wait_until(pilot, lambda: app.health.ok is True, "the embedded server")
        assert app.embedded is not None and app.embedded.pid is not None
        pid = app.embedded.pid
        assert app.embedded.url != nobody_home
        assert "-m server" in " ".join(psutil.Process(pid).cmdline())
        assert f"embedded server 127.0.0.1:{app.embedded.port} (pid {pid})" in app.sub_title
        app.spawn(quick_jobs(1))
        await wait_until(
            pilot, lambda: len(app.board) == 1 and next(iter(app.board)).finished, "a job"
        )
        assert next(iter(app.board)).outcome is Outcome.COMPLETED
    assert gone(pid)
    assert not app.embedded.running


async def test_a_crash_in_the_app_still_stops_the_embedded_server() -> None:
    settings = fast_settings(embedded=True, default_url=f"http://127.0.0.1:{free_port()}")
    app = make_app(settings=settings)
    pid = None

    def explode() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        async with app.run_test() as pilot:
            await connected(pilot)
            assert app.embedded is not None
            pid = app.embedded.pid
            app.call_later(explode)
            await pilot.pause(0.5)
    assert pid is not None and gone(pid)


async def test_a_server_on_the_default_url_is_used_as_is(live_server: LiveServer) -> None:
    app = make_app(settings=fast_settings(embedded=True, default_url=live_server.url))
    async with app.run_test() as pilot:
        await connected(pilot)
        await wait_until(pilot, lambda: app.health.ok is True, "the server")
        assert app.embedded is None
        assert f"server {live_server.url}" in app.sub_title


async def test_an_embedded_server_that_cannot_start_is_one_clear_line() -> None:
    settings = fast_settings(
        embedded=True,
        default_url=f"http://127.0.0.1:{free_port()}",
        embedded_args=("--delay", "abc"),
    )
    app = make_app(settings=settings)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.health.error is not None, "the start-up error")
        assert "delay" in (app.health.error or "")
        assert "not started" in app.sub_title
        assert not app.connected
        await pilot.press("n", "enter")  # spawning without a server is refused, not a crash
        assert len(app.board) == 0


def test_the_child_dies_when_the_dashboard_is_killed() -> None:
    """Even SIGKILL of the dashboard (no finally, no atexit) takes the child server along."""
    script = (
        "import asyncio, time\n"
        "from tui.embedded import EmbeddedServer\n"
        "server = EmbeddedServer(args=['--delay', '0.3'])\n"
        "server.spawn()\n"
        "asyncio.run(server.wait_ready())\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not gone(child)
    finally:
        parent.kill()
        parent.wait(timeout=5)
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)


async def test_wait_ready_reports_why_the_child_exited() -> None:
    server = EmbeddedServer(args=["--port", "70000"])
    server.spawn()
    try:
        with pytest.raises(EmbeddedServerError, match=r"exited with code 2: .*port"):
            await server.wait_ready(timeout_s=20)
    finally:
        server.stop()
    server.stop()  # stopping twice is fine
