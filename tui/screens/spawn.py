"""The spawn form: how many jobs, how long, which outcome, polled how."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import Function, Integer
from textual.widgets import Button, Input, Label, Select, Static

from client_core import BackoffPolicy, Strategy
from tui.keys import FORM_KEYS
from tui.model import JobSpec, SpawnRequest, parse_duration
from tui.policies import presets

MAX_SPAWN = 10_000
DEFAULT_POLICY = "default"


def _duration_ok(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


class SpawnScreen(ModalScreen[SpawnRequest | None]):
    """Returns a :class:`SpawnRequest`, or None when closed."""

    BINDINGS = [key.binding() for key in FORM_KEYS]

    def __init__(self, defaults: JobSpec) -> None:
        super().__init__()
        self.defaults = defaults
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
                    type="integer",
                    compact=True,
                    tooltip=f"1 to {MAX_SPAWN}",
                    validators=[Integer(minimum=1, maximum=MAX_SPAWN)],
                )
                yield Label("Duration (s)")
                yield Input(
                    "",
                    id="duration",
                    compact=True,
                    placeholder="blank = server default, 3 = fixed, 1-5 = range",
                    validators=[Function(_duration_ok, "a number of seconds or a range like 1-5")],
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

    def on_mount(self) -> None:
        self.query_one("#count", Input).focus()

    def request(self) -> SpawnRequest:
        """The form as a request; ValueError with a message for the first bad field."""
        count_text = self.query_one("#count", Input).value.strip()
        try:
            count = int(count_text)
        except ValueError:
            raise ValueError(f"how many: a whole number from 1 to {MAX_SPAWN}") from None
        if not 1 <= count <= MAX_SPAWN:
            raise ValueError(f"how many: a whole number from 1 to {MAX_SPAWN}")
        low, high = parse_duration(self.query_one("#duration", Input).value)
        outcome = str(self.query_one("#outcome", Select).value)
        return SpawnRequest(
            count=count,
            duration_min_s=low,
            duration_max_s=high,
            outcome=None if outcome == "random" else outcome,
            strategy=Strategy(self.query_one("#strategy", Select).value),
            policy=self.policies[str(self.query_one("#policy", Select).value)],
        )

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        try:
            request = self.request()
        except ValueError as exc:
            self.query_one("#form-error", Static).update(Text(str(exc)))
            return
        self.dismiss(request)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
