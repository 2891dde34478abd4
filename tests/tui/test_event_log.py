"""The event log: what it keeps (model), and what the ``L`` screen shows (pilot)."""

from __future__ import annotations

from itertools import count

from textual.widgets import RichLog

from client_core import Outcome
from tests.tui.conftest import frozen_dashboard, wait_until
from tui.engine_protocol import Delta, Health
from tui.event_log import EventKind, EventLog
from tui.model import RowUpdate
from tui.screens.event_log import EventLogScreen


def ticking_clock() -> count[float]:
    return count(1_700_000_000.0)


def test_keeps_the_newest_entries_and_tells_a_reader_what_is_new() -> None:
    clock = ticking_clock()
    log = EventLog(limit=3, wall_clock=lambda: next(clock))
    for n in range(5):
        log.add(EventKind.TOAST, f"toast {n}")
    assert [entry.message for entry in log] == ["toast 2", "toast 3", "toast 4"]
    assert log.total == 5
    assert [entry.message for entry in log.since(3)] == ["toast 3", "toast 4"]
    assert log.since(5) == []
    assert len(log.since(0)) == 3  # a reader far behind gets what is still kept
    assert log.since(4)[0].line().endswith("toast    toast 4")


def test_server_and_circuit_are_logged_when_they_change_only() -> None:
    log = EventLog()
    for ok in (True, True, False, False, True):
        log.note_server(ok, "server http://h:1", None if ok else "connection refused")
    log.note_circuit(True, "5 transport failures")
    log.note_circuit(True)
    log.note_circuit(False)
    assert [entry.message for entry in log] == [
        "server http://h:1 answers",
        "server http://h:1 unreachable: connection refused",
        "server http://h:1 is back",
        "circuit open, polls held: 5 transport failures",
        "circuit closed, polling again",
    ]
    assert [entry.severity for entry in log][1] == "error"


async def test_the_log_screen_shows_toasts_failures_server_and_circuit_changes() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(140, 30)) as pilot:
        failed = RowUpdate(
            job_id="",
            status="not started",
            outcome=Outcome.REJECTED,
            last_error="server answered 503: job cap reached",
        )
        app.engine_delta(Delta(rows={"j0": failed}, start_failures=1))
        app.engine_delta(Delta(health=Health(True, 0.001, circuit_open=True)))
        app.engine_delta(Delta(health=Health(True, 0.001, circuit_open=False)))
        app.engine_delta(Delta(health=Health(False, None, "connection refused")))
        await pilot.pause()
        app.notify("hello from a test", title="Note")

        await pilot.press("L")
        assert isinstance(app.screen, EventLogScreen)
        view = app.screen.query_one(RichLog)

        def shown() -> str:
            return "\n".join(line.text for line in view.lines)

        expected = [
            "start    server answered 503: job cap reached",
            "Start failed: 1 job(s) did not start",
            "circuit open, polls held",
            "circuit closed, polling again",
            "unreachable: connection refused",
            "toast    Note: hello from a test",
        ]
        await wait_until(pilot, lambda: all(part in shown() for part in expected), "the log")

        app.notify("while the log is open")  # new entries appear without reopening
        await wait_until(pilot, lambda: "while the log is open" in shown(), "a new entry")
        await pilot.press("escape")
        assert not isinstance(app.screen, EventLogScreen)
