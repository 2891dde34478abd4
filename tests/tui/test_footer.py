"""The footer recomposes on every screen change; the keys it removes must go with it."""

from __future__ import annotations

import gc

from textual.widgets import Footer as TextualFooter

from tests.tui.conftest import frozen_dashboard


def live_footer_keys() -> int:
    gc.unfreeze()  # the dashboard freezes survivors; count them too
    gc.collect()
    return sum(type(o).__name__ == "FooterKey" for o in gc.get_objects())


async def test_opening_and_closing_forms_leaves_no_footer_keys_behind() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for _ in range(3):
            await pilot.press("n", "escape")
            await pilot.pause()
        settled = live_footer_keys()
        for _ in range(10):
            await pilot.press("n", "escape")
            await pilot.pause()
        await pilot.pause(0.3)
        assert isinstance(app.screen.query_one(TextualFooter), TextualFooter)
        # Textual's own footer kept ten more keys per form opened (100 here)
        assert live_footer_keys() <= settled + 15
