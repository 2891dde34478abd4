"""The dashboard's screens and forms driven with the pilot, on the fake client (no server)."""

from __future__ import annotations

from textual.widgets import Input, Static

from tests.tui.conftest import frozen_dashboard
from tui.screens.policy_editor import PolicyEditorScreen

SIZE = (110, 34)


async def test_policy_preview_lists_one_delay_per_allowed_poll() -> None:
    app = frozen_dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert isinstance(app.screen, PolicyEditorScreen)
        app.screen.query_one("#max_attempts", Input).value = "5"
        app.screen.query_one("#jitter_ratio", Input).value = "0.1"
        await pilot.pause()
        preview = str(app.screen.query_one("#schedule", Static).render())
        delays_line, polls_line = preview.splitlines()
        assert len(delays_line.removeprefix("delays").split(":")[1].split()) == 5 + 1  # and "s"
        assert polls_line.endswith("gives up after poll 5")
