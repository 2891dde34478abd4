"""Every key of every view, read from :mod:`tui.keys` (the same lists the footers use)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.keys import KEY_GROUPS
from tui.widgets.footer import Footer


def display_keys(key: str) -> str:
    """``question_mark,f1`` -> ``? / f1``: keys as the user types them."""
    return " / ".join(format_key(part.strip()) for part in key.split(","))


KEY_COLUMN_WIDTH = 12  # the same in every group, so the descriptions line up


def keys_table() -> Group:
    """One titled table per view; the key column stays narrow so the descriptions fit."""
    groups: list[tuple[str, list[tuple[str, str]]]] = [
        (title, [(display_keys(key.key), key.description) for key in keys])
        for title, keys in KEY_GROUPS
    ]
    groups.append(
        (
            "Anywhere",
            [
                ("ctrl+p", "Command palette: every action above, themes, screenshot"),
                ("ctrl+q", "Quit"),
            ],
        )
    )
    parts: list[RenderableType] = []
    for title, rows in groups:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True, width=KEY_COLUMN_WIDTH)
        table.add_column()
        for keys, description in rows:
            table.add_row(keys, Text(description))
        parts += [Text(title, style="bold underline"), table, Text("")]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close", id="close-help"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="form help"):
            yield Label("Keys", classes="form-title")
            yield Static(keys_table())
            yield Static(
                "Mouse: click a row to move the cursor there, a header to sort by it; forms too.",
                classes="dim",
            )
            yield Label(
                "Theme, policy, sort and columns are remembered; videosim --reset forgets.",
                classes="dim",
            )
        yield Footer()

    def on_mount(self) -> None:
        """Focus the text, so the arrows, PageUp/PageDown and Home/End scroll it."""
        self.screen.query_one("#dialog", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss()
