"""The column chooser (``t``): a checkbox per column; the choice is remembered between runs."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList, Static

from tui.keys import COLUMN_KEYS
from tui.model import SortColumn
from tui.widgets.footer import Footer


class ColumnChooserScreen(ModalScreen[tuple[SortColumn, ...] | None]):
    """Data down: every column's label and the ones shown now; up: the ticked ones (None
    when closed with esc). At least one column stays ticked."""

    BINDINGS = [k.binding() for k in COLUMN_KEYS]

    def __init__(self, labels: Mapping[SortColumn, str], shown: Collection[SortColumn]) -> None:
        super().__init__()
        self.labels = labels
        self.shown = shown

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form picker"):
            yield Label("Columns", classes="form-title")
            yield SelectionList[SortColumn](
                *((label, key, key in self.shown) for key, label in self.labels.items()),
                id="columns",
            )
            yield Static(
                "Job, Status, Attempt, Next, Outcome always show; others when there is room.",
                id="columns-note",
                classes="dim",
            )
            yield Label("", id="columns-error", classes="form-error")
            with Horizontal(classes="form-buttons"):
                yield Button("Cancel", id="close", compact=True)
                yield Button("Show", id="submit", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.screen.query_one("#columns", SelectionList).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_close()

    def action_submit(self) -> None:
        ticked = self.screen.query_one("#columns", SelectionList).selected
        if not ticked:
            self.screen.query_one("#columns-error", Label).update("Tick at least one column.")
            return
        self.dismiss(tuple(key for key in self.labels if key in ticked))

    def action_close(self) -> None:
        self.dismiss(None)
