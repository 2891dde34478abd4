"""One job up close: every poll the dashboard made, and the server's own record of the job.

The poll history comes from the model (what the client saw and why it waited); the record
comes from GET /jobs/{id} (what the server saw: requests received, detection lag). Side by
side they show the cost of a polling strategy from both ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Static

from tui.keys import DETAIL_KEYS
from tui.model import JobBoard, Now, PollRecord, WatchedJob
from tui.widgets.footer import Footer
from tui.widgets.job_table import OUTCOME_STYLES, PUSHED_STRATEGIES, STATUS_STYLES

#: The server's record of a job id (the polling engine fetches it).
FetchRecord = Callable[[str], Awaitable[dict[str, Any]]]

# Short labels: at 80 columns the reason ("retry-after", "pushed") is what must fit.
HISTORY_COLUMNS = ("t", "#", "HTTP", "Status", "Next", "Why")
RECORD_FIELDS = (
    "job_id",
    "result",
    "outcome",
    "duration_s",
    "status_requests",
    "detection_lag_s",
    "created_at",
    "finishes_at",
    "first_final_seen_at",
    "first_final_channel",
)


class RecordLoaded(Message):
    def __init__(self, record: dict[str, Any] | None, error: str | None = None) -> None:
        super().__init__()
        self.record = record
        self.error = error


def why_text(record: PollRecord) -> str:
    """Why the next poll came when it did, with the server's words when it had any."""
    why = str(record.reason)
    if record.eta_s is not None:
        why += f" (eta {record.eta_s:.2f}s)"
    if record.error:
        why += f": {record.error}"
    return why


def history_row(record: PollRecord) -> tuple[Text, ...]:
    """One poll as table cells; server text stays plain Text."""
    why = why_text(record)
    delay = "-" if record.next_delay_s is None else f"{record.next_delay_s:.2f}s"
    return (
        Text(f"+{record.at_s:.2f}s"),
        Text(str(record.attempt), justify="right"),
        Text("-" if record.http_status is None else str(record.http_status)),
        Text(record.status or "no answer", style=STATUS_STYLES.get(record.status, "magenta")),
        Text(delay, justify="right"),
        Text(why),
    )


def summary_text(view: WatchedJob, now: float, push_note: str = "") -> Text:
    text = Text()
    text.append(view.job_id, style="bold")
    text.append(f"  ({view.key})\n" if view.key != view.job_id else "\n", style="dim")
    text.append("status ", style="dim")
    text.append(view.status or "no answer", style=STATUS_STYLES.get(view.status, "magenta"))
    text.append("  outcome ", style="dim")
    if view.outcome is None:
        text.append("watching", style="yellow")
    else:
        text.append(str(view.outcome), style=OUTCOME_STYLES.get(view.outcome, ""))
    text.append(f"  attempt {view.attempt}  requests {view.requests}", style="")
    text.append(f"  elapsed {view.elapsed(now):.1f}s\n")
    spec = view.spec
    duration = "server default" if spec.duration_s is None else f"{spec.duration_s:g}s"
    text.append("asked for ", style="dim")
    text.append(f"duration {duration}, outcome {spec.outcome or 'random'}, {spec.strategy}, ")
    text.append(spec.policy.describe())
    if not view.finished and view.reason is None and view.strategy in PUSHED_STRATEGIES:
        text.append("\nwatched by push ", style="dim")
        text.append(f"({view.strategy}) for {view.elapsed(now):.0f}s", style="cyan")
        text.append(": no poll is due, the server sends the end", style="dim")
        if push_note:
            text.append(f"; {push_note}", style="cyan")
    if view.last_error:
        text.append("\nlast error ", style="dim")
        text.append(view.last_error, style="red")
    return text


def record_text(record: dict[str, Any]) -> Text:
    """The server's record, times shown relative to the job's creation."""
    text = Text()
    created = record.get("created_at")
    for name in RECORD_FIELDS:
        value = record.get(name)
        if isinstance(value, float) and name.endswith("_at") and created is not None:
            shown = f"+{value - created:.3f}s" if name != "created_at" else f"{value:.3f}"
        elif isinstance(value, float):
            shown = f"{value:.3f}"
        else:
            shown = "-" if value is None else str(value)
        text.append(f"{name:<20}", style="dim")
        text.append(f"{shown}\n")
    requests = record.get("requests") or []
    text.append(f"\nstatus requests the server saw ({len(requests)}):\n", style="bold")
    for request in requests:
        at = request.get("at")
        offset = f"{at - created:+8.3f}s" if at is not None and created is not None else "?"
        retry_after = request.get("retry_after_s")
        hint = "" if retry_after is None else f"  retry-after {retry_after:g}s"
        text.append(f"{offset}  {request.get('code')}{hint}\n")
    return text


class DetailScreen(Screen[None]):
    """Opened with Enter on a row; Escape goes back.

    It reads the board it is given (the app's model) and fetches the record through the
    ``fetch_record`` it is given; cancel and retry go up to the app as messages."""

    BINDINGS = [key.binding() for key in DETAIL_KEYS]

    class CancelRequested(Message):
        """The user asked to cancel this job's watch."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class RetryRequested(Message):
        """The user asked for this job again (the app answers by opening the new row's
        detail, or with a toast while the new job starts)."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class ExportRequested(Message):
        """The user asked to export this job's poll history to files."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(
        self,
        key: str,
        *,
        board: JobBoard,
        clock: Now,
        fetch_record: FetchRecord,
        push_note: Callable[[], str] = str,
    ) -> None:
        super().__init__()
        self.key = key
        self._board = board
        self._push_note = push_note  # how the event stream is doing, read when drawn
        self._clock = clock
        self._fetch_record = fetch_record
        self._last_record: PollRecord | None = None  # newest history row shown
        self._shown: list[PollRecord] = []  # the history table's rows, in order
        self._record_final = False  # the record was fetched after the job ended

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="detail-summary")
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="history-pane"):
                yield Label("Poll history (client side)", classes="pane-title")
                yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
                # The Why cell is cut where the pane is narrow: the highlighted poll's
                # reason is shown here whole, wrapped.
                yield Static(id="poll-reason")
            with VerticalScroll(id="record-pane"):
                yield Label("Server record (GET /jobs/{id})", classes="pane-title")
                yield Static("loading...", id="record")
        yield Footer()

    def on_mount(self) -> None:
        history = self.screen.query_one("#history", DataTable)
        history.add_columns(*HISTORY_COLUMNS)
        self.refresh_view()
        self.set_interval(0.25, self.refresh_view)
        self.action_reload_record()

    @property
    def view(self) -> WatchedJob | None:
        return self._board.jobs.get(self.key)

    def refresh_view(self) -> None:
        view = self.view
        summary = self.screen.query_one("#detail-summary", Static)
        if view is None:
            summary.update(Text("This job was cleared from the table.", style="dim"))
            return
        summary.update(summary_text(view, self._clock(), self._push_note()))
        new_records: list[PollRecord] = []
        for record in reversed(view.history):
            if record is self._last_record:
                break
            new_records.append(record)
        if new_records:
            history = self.screen.query_one("#history", DataTable)
            for record in reversed(new_records):
                history.add_row(*history_row(record))
                self._shown.append(record)
            self._last_record = new_records[0]
            history.move_cursor(row=history.row_count - 1)
        if view.finished and not self._record_final:
            self._record_final = True
            self.action_reload_record()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "history" and 0 <= event.cursor_row < len(self._shown):
            record = self._shown[event.cursor_row]
            reason = Text(f"poll {record.attempt}: ", style="dim")
            reason.append(why_text(record))
            self.screen.query_one("#poll-reason", Static).update(reason)

    def action_reload_record(self) -> None:
        view = self.view
        if view is not None:
            self._load_record(view.job_id)

    @work(exclusive=True, group="record", exit_on_error=False)
    async def _load_record(self, job_id: str) -> None:
        try:
            record = await self._fetch_record(job_id)
        except Exception as exc:  # not connected, VideoSimError, server gone: show it, never crash
            self.post_message(RecordLoaded(None, str(exc) or repr(exc)))
        else:
            self.post_message(RecordLoaded(record))

    def on_record_loaded(self, message: RecordLoaded) -> None:
        record = self.screen.query_one("#record", Static)
        if message.record is None:
            record.update(Text(f"could not load the record: {message.error}", style="red"))
        else:
            record.update(record_text(message.record))

    def action_back(self) -> None:
        self.dismiss()

    def action_cancel(self) -> None:
        self.post_message(self.CancelRequested(self.key))

    def action_retry(self) -> None:
        self.post_message(self.RetryRequested(self.key))

    def action_export(self) -> None:
        self.post_message(self.ExportRequested(self.key))
