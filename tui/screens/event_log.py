"""The event log screen (``L``): the session's record of toasts, failures and state changes.

It reads :class:`tui.event_log.EventLog` and appends what is new four times a second, so an
operator can leave it open and watch a server go away and come back.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Label, RichLog

from tui.event_log import EventLog, LoggedEvent
from tui.keys import EVENT_LOG_KEYS
from tui.widgets.footer import Footer

SEVERITY_STYLES = {"information": "", "warning": "yellow", "error": "red"}
REFRESH_S = 0.25


def event_text(entry: LoggedEvent) -> Text:
    """One entry as a line; the message is server text, so never parsed as markup."""
    text = Text()
    text.append(entry.clock_time(), style="dim")
    text.append(f"  {entry.kind:<7}  ", style="bold")
    if entry.title:
        text.append(f"{entry.title}: ", style="bold")
    text.append(entry.message, style=SEVERITY_STYLES[entry.severity])
    return text


class EventLogScreen(Screen[None]):
    BINDINGS = [key.binding() for key in EVENT_LOG_KEYS]

    def __init__(self, log: EventLog) -> None:
        super().__init__()
        self.log_model = log
        self._seen = 0  # how many of log.total this screen has shown
        self._empty_note = False  # the "nothing yet" line is showing

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(
            "Event log: toasts, start failures, server and circuit changes", classes="pane-title"
        )
        yield RichLog(id="event-log", max_lines=self.log_model.limit, wrap=True)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_log()
        self.set_interval(REFRESH_S, self.refresh_log)
        self.screen.query_one(RichLog).focus()

    def refresh_log(self) -> None:
        new = self.log_model.since(self._seen)
        self._seen = self.log_model.total
        view = self.screen.query_one(RichLog)
        if new and self._empty_note:
            view.clear()
            self._empty_note = False
        for entry in new:
            view.write(event_text(entry))
        if not self._seen and not self._empty_note:
            view.write(Text("Nothing yet this session.", style="dim"))
            self._empty_note = True

    def action_back(self) -> None:
        self.dismiss()
