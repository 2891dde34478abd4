"""The search box under the job table (``/``): the table shows the rows that match as the
user types; ``esc`` clears the search, ``enter`` keeps it and goes back to the table."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Input

from tui.keys import SEARCH_KEYS


class SearchBar(Input):
    BINDINGS = [k.binding() for k in SEARCH_KEYS]

    class Closed(Message):
        """The user left the search box; ``cleared``: with esc, which empties it."""

        def __init__(self, search_bar: SearchBar, cleared: bool) -> None:
            super().__init__()
            self.search_bar = search_bar
            self.cleared = cleared

        @property
        def control(self) -> SearchBar:
            return self.search_bar

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Closed(self, cleared=True))

    def action_done(self) -> None:
        self.post_message(self.Closed(self, cleared=False))
