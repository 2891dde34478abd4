"""Every key of every view, read from :mod:`tui.keys` (the same lists the footers use)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.keys import KEY_GROUPS


def display_keys(key: str) -> str:
    """``question_mark,f1`` -> ``? / f1``: keys as the user types them."""
    return " / ".join(format_key(part.strip()) for part in key.split(","))


def keys_table() -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True, min_width=10)
    table.add_column()
    for title, keys in KEY_GROUPS:
        table.add_row(Text(title, style="bold underline"), "")
        for key in keys:
            table.add_row(display_keys(key.key), Text(key.description))
        table.add_row("", "")
    table.add_row(Text("Anywhere", style="bold underline"), "")
    table.add_row("ctrl+p", "Command palette: every action above, themes, screenshot")
    table.add_row("ctrl+q", "Quit")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close", id="close-help"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="form help"):
            yield Label("Keys", classes="form-title")
            yield Static(keys_table())
            yield Label(
                "Mouse: click a row to select it, a header to sort by it; forms are clickable.",
                classes="dim",
            )
            yield Label(
                "Theme, policy and sort are remembered between runs; videosim --reset forgets.",
                classes="dim",
            )

    def action_close(self) -> None:
        self.dismiss()
