"""The event log: what it keeps (model), and what the ``L`` screen shows (pilot)."""

from __future__ import annotations

from itertools import count

from textual.widgets import RichLog

from client_core import DelayReason, Outcome
from tests.tui.conftest import frozen_dashboard, poll, wait_until
from tui.event_log import EventKind, EventLog
from tui.messages import HealthChecked, PollEventsBatch
from tui.model import JobSpec
from tui.screens.event_log import EventLogScreen
from tui.watch_pool import JobStarted, PoolBatch, StartFailed, WatchEvent


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


def test_poll_events_tell_each_circuit_change_in_order() -> None:
    held = poll("a", 3, "", reason=DelayReason.CIRCUIT_OPEN, http_status=None, error="open")
    answered = poll("a", 4, "pending")
    lost = poll("a", 5, "", reason=DelayReason.TRANSPORT_ERROR, http_status=None)
    log = EventLog()
    log.note_polls([answered, lost, held, held, answered, lost])
    assert [entry.message for entry in log] == [
        "circuit open, polls held: open",
        "circuit closed, polling again",
    ]


async def test_the_log_screen_shows_toasts_failures_server_and_circuit_changes() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(140, 30)) as pilot:
        spec = JobSpec()
        held = poll("j1", 2, "", reason=DelayReason.CIRCUIT_OPEN, http_status=None, error="open")
        batch = PoolBatch(
            items=[
                JobStarted("j1", "j1", spec, 1000.0),
                StartFailed(spec, "server answered 503: job cap reached", 1000.0),
                WatchEvent("j1", held, 1000.5),
                WatchEvent("j1", poll("j1", 3, "completed", outcome=Outcome.COMPLETED), 1001.0),
            ],
            starting=0,
        )
        app.post_message(PollEventsBatch(batch))
        app.post_message(HealthChecked(False, None, "connection refused"))
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
            "circuit open, polls held: open",
            "circuit closed, polling again",
            "unreachable: connection refused",
            "toast    Note: hello from a test",
        ]
        await wait_until(pilot, lambda: all(part in shown() for part in expected), "the log")

        app.notify("while the log is open")  # new entries appear without reopening
        await wait_until(pilot, lambda: "while the log is open" in shown(), "a new entry")
        await pilot.press("escape")
        assert not isinstance(app.screen, EventLogScreen)
