"""The operator's tools on top of the dashboard: the event log (``L``) and export (``e``).

:class:`~tui.app.VideoSimApp` derives from :class:`OperatorTools`, so these actions are the
app's own (keys, command palette, help) while their code stays out of the app's core. The
app feeds the event log where it learns things (server answers, start failures, poll
events); every toast reaches it through :meth:`OperatorTools.notify`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from textual.app import App
from textual.notifications import SeverityLevel

from tui import export
from tui.event_log import EventKind, EventLog
from tui.model import JobBoard, Now
from tui.screens.event_log import EventLogScreen
from tui.settings import DashboardSettings


class OperatorTools(App[None]):
    # set by VideoSimApp; declared here for the tools that read them
    board: JobBoard
    settings: DashboardSettings
    clock: Now

    def __init__(self) -> None:
        super().__init__()
        self.event_log = EventLog()  # every toast and state change, for the L screen

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast, from any screen, also goes to the event log (toasts vanish)."""
        self.event_log.add(EventKind.TOAST, message, severity=severity, title=title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_event_log(self) -> None:
        self.push_screen(EventLogScreen(self.event_log))

    def action_export(self) -> None:
        if not len(self.board):
            self.notify("Nothing to export: the board has no jobs yet", severity="warning")
            return
        now = self.clock()
        self.save_export(lambda where, when: export.write_board(self.board, now, where, when))

    def export_job(self, key: str) -> None:
        """The detail view's ``e``: one job's poll history."""
        if (view := self.board.jobs.get(key)) is not None:
            now = self.clock()
            self.save_export(lambda where, when: export.write_job(view, now, where, when))

    def save_export(self, write: Callable[[Path, datetime], list[Path]]) -> None:
        """Write an export and name its files in a toast; a failed write is a toast too."""
        given = self.settings.export_dir
        directory = (Path(given) if given else export.default_directory()).absolute()
        try:
            paths = write(directory, datetime.now())
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error", markup=False)
            return
        names = " and ".join(path.name for path in paths)
        self.notify(f"{names} in {directory}", title="Exported", markup=False)
