"""Watch jobs that exist already (``w``): paste their ids, one per line (or separated by
spaces or commas). Nothing is started: on a paid API this is how to follow jobs started
elsewhere."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static, TextArea

from client_core import job_ids_in
from tui.keys import WATCH_IDS_KEYS
from tui.widgets.footer import Footer

MAX_IDS = 10_000  # at once; the board holds many more


class WatchIdsScreen(ModalScreen[list[str] | None]):
    """Data down: the API spoken (its name, for the title); up: the ids (None on esc)."""

    BINDINGS = [k.binding() for k in WATCH_IDS_KEYS]

    def __init__(self, api: str) -> None:
        super().__init__()
        self.api = api

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form"):
            yield Label(f"Watch existing {self.api} jobs", classes="form-title")
            yield TextArea(id="ids", soft_wrap=True, show_line_numbers=False)
            yield Static(
                "One id per line (or separated by spaces or commas). Nothing is started.",
                classes="dim",
            )
            yield Label("", id="ids-error", classes="form-error")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="close", compact=True)
                yield Button("Watch", id="submit", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.screen.query_one("#ids", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_close()

    def action_submit(self) -> None:
        ids = job_ids_in(self.screen.query_one("#ids", TextArea).text)
        error = self.screen.query_one("#ids-error", Label)
        if not ids:
            error.update("Paste at least one job id.")
            return
        if len(ids) > MAX_IDS:
            error.update(f"At most {MAX_IDS:,} ids at once (got {len(ids):,}).")
            return
        self.dismiss(ids)

    def action_close(self) -> None:
        self.dismiss(None)
