"""The spawn form: how many jobs, how long, which outcome, polled how.

The form checks what it can before anything is sent: counts and durations against the
server's limits, as you type, and that the dashboard is connected. On any problem it stays
open with the message under the fields, so nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from client_core import BackoffPolicy, Strategy
from client_core.comparison import presets
from tui.keys import SPAWN_KEYS
from tui.model import JobSpec, SpawnRequest
from tui.screens.form_fields import (
    FieldError,
    FieldValidator,
    parse_count,
    parse_durations,
)
from tui.settings import DEFAULT_MAX_DURATION_S
from tui.widgets.footer import Footer

MAX_SPAWN = 10_000
DEFAULT_POLICY = "default"
NOT_CONNECTED = "Not connected to a server yet: the form stays open; spawn again once it is."


class SpawnScreen(ModalScreen[SpawnRequest | None]):
    """Returns a :class:`SpawnRequest`, or None when closed."""

    BINDINGS = [key.binding() for key in SPAWN_KEYS]

    def __init__(
        self,
        defaults: JobSpec,
        *,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
        connected: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__()
        self.defaults = defaults
        self.max_duration_s = max_duration_s  # the server's limit on duration_s
        self._connected = connected  # asked on submit: can jobs be started now?
        # Backoff policies by option value; the strategy is chosen on its own.
        self.policies: dict[str, BackoffPolicy] = {DEFAULT_POLICY: defaults.policy}
        self.policies.update({preset.name: preset.policy for preset in presets()})

    def compose(self) -> ComposeResult:
        policy_options = [(f"default: {self.defaults.policy.describe()}", DEFAULT_POLICY)]
        policy_options += [(f"{p.name}: {p.policy.describe()}", p.name) for p in presets()]
        with VerticalScroll(id="dialog", classes="form"):
            yield Label("Spawn jobs", classes="form-title")
            with Grid(classes="form-grid"):
                yield Label("How many")
                yield Input(
                    "1",
                    id="count",
                    compact=True,
                    tooltip=f"1 to {MAX_SPAWN:,}",
                    validators=[FieldValidator(self._count)],
                )
                yield Label("Duration (s)")
                yield Input(
                    "",
                    id="duration",
                    compact=True,
                    placeholder="blank = server default, 3 = fixed, 1-5 = range",
                    tooltip=f"seconds, at most {self.max_duration_s:g} (the server's limit)",
                    validators=[FieldValidator(self._durations)],
                )
                yield Label("Outcome")
                yield Select(
                    [("random", "random"), ("completed", "completed"), ("error", "error")],
                    value="random",
                    allow_blank=False,
                    compact=True,
                    id="outcome",
                )
                yield Label("Strategy")
                yield Select(
                    [(str(s), s) for s in Strategy],
                    value=self.defaults.strategy,
                    allow_blank=False,
                    compact=True,
                    id="strategy",
                )
                yield Label("Policy")
                yield Select(
                    policy_options,
                    value=DEFAULT_POLICY,
                    allow_blank=False,
                    compact=True,
                    id="policy",
                )
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="form-buttons"):
                yield Button("Spawn", variant="primary", id="submit", compact=True)
                yield Button("Cancel", id="close", compact=True)
        yield Footer()  # this form's keys (the table's keys, q among them, do not apply here)

    def on_mount(self) -> None:
        self.screen.query_one("#count", Input).focus()

    def _count(self, text: str) -> int:
        return parse_count(text, "how many", MAX_SPAWN)

    def _durations(self, text: str) -> tuple[float | None, float | None]:
        return parse_durations(text, max_s=self.max_duration_s)

    def request(self) -> SpawnRequest:
        """The form as a request; FieldError with one line for the first bad field."""
        count = self._count(self.screen.query_one("#count", Input).value)
        low, high = self._durations(self.screen.query_one("#duration", Input).value)
        outcome = str(self.screen.query_one("#outcome", Select).value)
        return SpawnRequest(
            count=count,
            duration_min_s=low,
            duration_max_s=high,
            outcome=None if outcome == "random" else outcome,
            strategy=Strategy(str(self.screen.query_one("#strategy", Select).value)),
            policy=self.policies[str(self.screen.query_one("#policy", Select).value)],
        )

    @on(Input.Changed)
    def _show_first_problem(self) -> None:
        """As you type: the first bad field's message, or nothing."""
        try:
            self.request()
        except FieldError as exc:
            self._show_error(str(exc))
        else:
            self._show_error("")

    def _show_error(self, message: str) -> None:
        self.screen.query_one("#form-error", Static).update(Text(message))

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        try:
            request = self.request()
        except FieldError as exc:
            self._show_error(str(exc))
            return
        if not self._connected():
            self._show_error(NOT_CONNECTED)
            return
        self.dismiss(request)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
