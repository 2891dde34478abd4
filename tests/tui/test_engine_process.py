"""The polling engine as the real child process: it polls for the dashboard, survives as a
board when it crashes (a new engine takes the live jobs over), and never outlives the
dashboard, even one killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from client_core import Outcome
from tests.support.live_server import LiveServer, free_port
from tests.tui.conftest import connected, fast_settings, wait_until
from tests.tui.test_dashboard_live import SIZE, long_jobs
from tui.app import make_app

ROOT = Path(__file__).resolve().parents[2]


async def test_an_engine_crash_restarts_it_and_keeps_the_board(live_server: LiveServer) -> None:
    app = make_app(server_url=live_server.url, settings=fast_settings())
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        first_pid = app.engine.pid
        assert first_pid is not None and first_pid != os.getpid()
        assert psutil.Process(first_pid).cmdline()[-1] == "tui.engine_process"
        app.spawn(long_jobs(3))
        await wait_until(
            pilot,
            lambda: len(app.board) == 3 and all(v.attempt >= 2 for v in app.board),
            "three jobs polling",
        )
        keys = sorted(app.board.jobs)
        cancelled = keys[0]
        app.cancel_job(cancelled)

        os.kill(first_pid, signal.SIGKILL)
        await wait_until(pilot, lambda: not app.connected, "the crash to be noticed")
        assert any("polling engine stopped" in n.message for n in app._notifications)
        await wait_until(
            pilot, lambda: app.connected and app.engine.pid != first_pid, "a new engine"
        )
        attempts = {key: app.board[key].attempt for key in keys[1:]}
        await wait_until(
            pilot,
            lambda: all(app.board[key].attempt > attempts[key] + 1 for key in keys[1:]),
            "the live jobs to poll again under the new engine",
        )
        assert sorted(app.board.jobs) == keys
        assert app.board[cancelled].outcome is Outcome.CANCELLED
        assert not _running(first_pid)
        second_pid = app.engine.pid
        assert second_pid is not None and _running(second_pid)
    assert not _running(second_pid)  # quitting the dashboard ends its engine


CHILD = """
import json, sys
from tui.app import make_app
from tui.settings import DashboardSettings

settings = DashboardSettings(default_url=sys.argv[1], health_interval_s=0.2)
app = make_app(settings=settings)

def report() -> None:
    embedded = app.embedded
    if app.engine and app.engine.pid and embedded and embedded.pid and app.connected:
        print(json.dumps({"engine": app.engine.pid, "server": embedded.pid}), flush=True)
    else:
        app.set_timer(0.1, report)

app.call_later(report)
app.run(headless=True)
"""


def test_killing_the_dashboard_takes_the_engine_and_the_embedded_server_along() -> None:
    nobody_there = f"http://127.0.0.1:{free_port()}"
    dashboard = subprocess.Popen(
        [sys.executable, "-c", CHILD, nobody_there],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert dashboard.stdout is not None
        line = dashboard.stdout.readline()
        assert line, "the dashboard did not report its children"
        children = json.loads(line)
        for pid in children.values():
            assert psutil.pid_exists(pid)
        dashboard.send_signal(signal.SIGKILL)
        dashboard.wait(10)
        deadline = time.monotonic() + 10
        alive = list(children.values())
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if _running(pid)]
            time.sleep(0.05)
        assert alive == [], f"still running after the dashboard was killed: {alive}"
    finally:
        if dashboard.poll() is None:
            dashboard.kill()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_job_that_cannot_start_gets_a_row_with_its_reason_and_can_be_retried(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory("--max-jobs", "2")
    app = make_app(server_url=server.url, settings=fast_settings(start_deadline_s=1.0))
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        app.spawn(long_jobs(4))
        await wait_until(
            pilot, lambda: len(app.board) == 4 and app.board.starting == 0, "a row for every job"
        )
        not_started = [v for v in app.board if v.status == "not started"]
        assert not_started and all(v.last_error for v in not_started)
        assert all(v.outcome is Outcome.REJECTED for v in not_started)
        assert app.board.start_failures == len(not_started)
        started = [v for v in app.board if v.job_id]
        assert len(started) + len(not_started) == 4
        assert "not started" in app.table.get_cell(not_started[0].key, "status").plain

        app.retry_job(not_started[0].key)  # still full: another row says so, none is lost
        await wait_until(
            pilot, lambda: len(app.board) == 5 and app.board.starting == 0, "the retry"
        )
