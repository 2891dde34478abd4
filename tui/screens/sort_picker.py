"""The sort picker (``S``): every column, each way, in one list; enter picks."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tui.keys import PICKER_KEYS
from tui.model import SortColumn
from tui.widgets.footer import Footer

SortChoice = tuple[SortColumn, bool]  # the column, and True for descending


def choices() -> list[SortChoice]:
    """Insertion order first (the default), then each column ascending and descending."""
    return [(SortColumn.ADDED, False), (SortColumn.ADDED, True)] + [
        (column, reverse)
        for column in SortColumn
        if column is not SortColumn.ADDED
        for reverse in (False, True)
    ]


def choice_label(choice: SortChoice) -> str:
    column, reverse = choice
    if column is SortColumn.ADDED:
        return "newest first" if reverse else "added (oldest first)"
    return f"{column} {'▼ descending' if reverse else '▲ ascending'}"


class SortPickerScreen(ModalScreen[SortChoice | None]):
    """Data down: the current sort; up: the choice (None when closed with esc)."""

    BINDINGS = [k.binding() for k in PICKER_KEYS]

    def __init__(self, current: SortChoice) -> None:
        super().__init__()
        self.current = current
        self.choices = choices()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form picker"):
            yield Label("Sort by", classes="form-title")
            yield OptionList(
                *(Option(choice_label(choice)) for choice in self.choices), id="sort-options"
            )
        yield Footer()

    def on_mount(self) -> None:
        options = self.screen.query_one("#sort-options", OptionList)
        if self.current in self.choices:
            options.highlighted = self.choices.index(self.current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[event.option_index])

    def action_close(self) -> None:
        self.dismiss(None)
