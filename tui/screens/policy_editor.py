"""The policy editor: the default strategy and backoff policy for new jobs.

Every keystroke rebuilds the policy; a bad value shows its message inline and disables
Save, a good one shows the schedule it produces, so the effect of a parameter is visible
before any job runs.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import Function, Number
from textual.widgets import Button, Input, Label, Select, Static

from client_core import POLICY_FIELDS, BackoffPolicy, Jitter, Strategy
from tui.keys import POLICY_KEYS
from tui.model import JobSpec
from tui.policies import policy_from_text, policy_to_text, strategy_preview
from tui.widgets.footer import Footer

FIELD_HELP = {
    "initial_s": "first delay (s)",
    "multiplier": "growth per poll (>= 1)",
    "max_delay_s": "longest delay (s)",
    "jitter_ratio": "for proportional, 0-1",
    "max_attempts": "polls before giving up; blank = no budget",
    "deadline_s": "seconds before giving up; blank = none",
    "seed": "fixes the jitter; blank = random",
}


def _blank_or_int(text: str) -> bool:
    return not text.strip() or text.strip().lstrip("-").isdigit()


def _blank_or_number(text: str) -> bool:
    if not text.strip():
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _validators(name: str) -> list[Function | Number]:
    if name in ("max_attempts", "seed"):
        return [Function(_blank_or_int, f"{name}: a whole number, or blank")]
    if name == "deadline_s":
        return [Function(_blank_or_number, f"{name}: a number of seconds, or blank")]
    return [Number(failure_description=f"{name}: must be a number")]


class PolicyEditorScreen(ModalScreen[tuple[Strategy, BackoffPolicy] | None]):
    """Returns (strategy, policy) on Save, None on Cancel."""

    BINDINGS = [key.binding() for key in POLICY_KEYS]

    def __init__(self, defaults: JobSpec) -> None:
        super().__init__()
        self.defaults = defaults
        self.policy: BackoffPolicy | None = defaults.policy

    def compose(self) -> ComposeResult:
        text = policy_to_text(self.defaults.policy)
        with VerticalScroll(id="dialog", classes="form"):
            yield Label("Default policy for new jobs", classes="form-title")
            with Grid(classes="form-grid"):
                yield Label("strategy")
                yield Select(
                    [(str(s), s) for s in Strategy],
                    value=self.defaults.strategy,
                    allow_blank=False,
                    compact=True,
                    id="strategy",
                )
                for name in POLICY_FIELDS:
                    yield Label(name)
                    if name == "jitter":
                        yield Select(
                            [(str(j), str(j)) for j in Jitter],
                            value=text[name],
                            allow_blank=False,
                            compact=True,
                            id="jitter",
                        )
                    else:
                        yield Input(
                            text[name],
                            id=name,
                            compact=True,
                            placeholder=FIELD_HELP.get(name, ""),
                            validators=_validators(name),
                            tooltip=FIELD_HELP.get(name),
                        )
            yield Static("", id="schedule")
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="form-buttons"):
                yield Button("Save", variant="primary", id="submit", compact=True)
                yield Button("Cancel", id="close", compact=True)
        yield Footer()  # this form's keys (the table's keys, q among them, do not apply here)

    def on_mount(self) -> None:
        self.screen.query_one("#initial_s", Input).focus()
        self.revalidate()

    def fields(self) -> dict[str, str]:
        values = {
            name: self.screen.query_one(f"#{name}", Input).value
            for name in POLICY_FIELDS
            if name != "jitter"
        }
        values["jitter"] = str(self.screen.query_one("#jitter", Select).value)
        return values

    @on(Input.Changed)
    @on(Select.Changed)
    def revalidate(self) -> None:
        """Rebuild the policy from the fields; show its schedule or the first problem."""
        error = self.screen.query_one("#form-error", Static)
        schedule = self.screen.query_one("#schedule", Static)
        try:
            self.policy = policy_from_text(self.fields())
        except ValueError as exc:
            self.policy = None
            error.update(Text(str(exc), style="bold red"))
            schedule.update(Text("schedule: fix the value above", style="dim"))
        else:
            error.update("")
            strategy = Strategy(str(self.screen.query_one("#strategy", Select).value))
            schedule.update(Text(strategy_preview(strategy, self.policy)))
        self.screen.query_one("#submit", Button).disabled = self.policy is None

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        self.revalidate()
        if self.policy is None:
            self.notify("Fix the highlighted value first", severity="error")
            return
        self.dismiss((Strategy(str(self.screen.query_one("#strategy", Select).value)), self.policy))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
