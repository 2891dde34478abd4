"""Textual's Footer, without the memory it kept on every screen change.

The footer recomposes whenever the screen's bindings change (a form opened or closed):
its keys are removed and new ones mounted, each bound to the footer's ``compact`` with
``data_bind``. Textual drops a binding of a removed key only when ``compact`` itself
changes, which it never does here, so every recompose kept ten removed keys alive: about
1.5 MiB per spawn form opened and closed, the dashboard's whole growth over a long session
(bench/tui_soak.py). After each recompose this footer has ``compact`` looked at again
(``mutate_reactive``, a public call), which prunes the bindings of removed keys.
"""

from __future__ import annotations

from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    async def recompose(self) -> None:
        await super().recompose()
        self.mutate_reactive(TextualFooter.compact)
