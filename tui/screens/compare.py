"""The compare view: one batch, several polling set-ups, what each one cost.

The table gives status requests per job and detection lag per set-up (from the server's
own records, or measured on this client when the server keeps none), the chart shows
requests piling up over time, and one line under the table says what that means.

The view gets what it needs from the app when it opens (a way to run a comparison on the
polling engine's client) and sends nothing back: a comparison is the view's own business.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, SelectionList, Static
from textual_plotext import PlotextPlot

from tui.compare import (
    CLIENT_CLOCK,
    BatchJob,
    PolicyRun,
    draw_batch,
    takeaway,
)
from tui.keys import COMPARE_KEYS
from tui.policies import PolicyPreset, presets
from tui.screens.form_fields import FieldError, parse_count, parse_durations

#: Runs ``presets`` on ``batch`` where the client lives (the app's polling engine), calling
#: back with the watches finished so far; cancelling it stops the run.
RunComparison = Callable[
    [Sequence[PolicyPreset], Sequence[BatchJob], Callable[[int], None]],
    Awaitable[list[PolicyRun]],
]

MAX_JOBS = 500
#: Narrow enough for 80 columns; the jobs per set-up are in the line above the table.
RESULT_COLUMNS = ("Set-up", "Req/job", "Max", "Lag avg", "Lag max", "Gave up")
#: One marker and one colour per chart line: told apart in 16 colours, 256, or none.
LINE_STYLES = (
    ("*", "cyan+"),
    ("+", "magenta+"),
    ("x", "yellow"),
    ("o", "green+"),
    ("#", "red+"),
    ("@", "blue+"),
    ("%", "white"),
    ("&", "orange"),
)


class CompareProgress(Message):
    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CompareProgress)


class CompareFinished(Message):
    def __init__(self, runs: list[PolicyRun] | None, error: str | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.error = error


def _preset_label(preset: PolicyPreset) -> str:
    """``original (backoff)``; just ``hinted`` where the name is the strategy."""
    strategy = str(preset.strategy)
    return preset.name if preset.name == strategy else f"{preset.name} ({strategy})"


def _lag(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.2f}s", justify="right")


class CompareScreen(Screen[None]):
    BINDINGS = [key.binding() for key in COMPARE_KEYS]

    def __init__(self, run_comparison: RunComparison) -> None:
        super().__init__()
        self._run_comparison = run_comparison
        self._comparing = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-body"):
            with Vertical(id="compare-form"):
                yield Label("Jobs per set-up")
                yield Input(
                    "10",
                    id="compare-count",
                    compact=True,
                    type="integer",
                    tooltip=f"1 to {MAX_JOBS}",
                )
                yield Label("Durations (s)")
                yield Input(
                    "1-4",
                    id="compare-duration",
                    compact=True,
                    tooltip="a number, or a range like 1-4 drawn once per job",
                )
                yield Label("Seed")
                yield Input("7", id="compare-seed", compact=True, type="integer")
                yield Label("Set-ups")
                yield SelectionList[str](
                    *((_preset_label(p), p.name, True) for p in presets()),
                    id="compare-presets",
                    compact=True,
                )
                yield Button("Run", variant="primary", id="compare-run", compact=True)
            with Vertical(id="compare-results"):
                yield Static("Pick set-ups and press Run (ctrl+r).", id="compare-status")
                yield DataTable(
                    id="compare-table", cursor_type="row", zebra_stripes=True, cell_padding=1
                )
                yield Static("", id="takeaway")
                yield PlotextPlot(id="compare-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.screen.query_one("#compare-table", DataTable).add_columns(*RESULT_COLUMNS)
        self._draw_chart([])

    def _status(self, text: Text) -> None:
        self.screen.query_one("#compare-status", Static).update(text)

    @on(Button.Pressed, "#compare-run")
    def action_run(self) -> None:
        if self._comparing:
            self._status(Text("A comparison is running; wait for it to finish.", style="yellow"))
            return
        try:
            count = parse_count(
                self.screen.query_one("#compare-count", Input).value, "jobs", MAX_JOBS
            )
            low, high = parse_durations(
                self.screen.query_one("#compare-duration", Input).value, blank_allowed=False
            )
            seed = parse_count(
                self.screen.query_one("#compare-seed", Input).value, "seed", None, minimum=0
            )
        except FieldError as exc:
            self._status(Text(f"Cannot run: {exc}", style="red"))
            return
        assert low is not None and high is not None  # blank_allowed=False
        chosen = set(self.screen.query_one("#compare-presets", SelectionList).selected)
        chosen_presets = [p for p in presets() if p.name in chosen]
        if not chosen_presets:
            self._status(Text("Tick at least one set-up.", style="red"))
            return
        batch = draw_batch(count, seed, low, high)
        self._set_running(True)
        self._status(Text(f"Running {count} jobs x {len(chosen_presets)} set-ups..."))
        self._run(chosen_presets, batch)

    def _set_running(self, running: bool) -> None:
        self._comparing = running
        self.screen.query_one("#compare-run", Button).disabled = running

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _run(self, chosen_presets: list[PolicyPreset], batch: list[BatchJob]) -> None:
        """The batch runs in the polling engine; progress comes back as messages.

        Leaving the view cancels this worker, and with it every start and watch of the run
        (the cancel is sent on to the engine)."""
        total = len(chosen_presets) * len(batch)

        def progress(done: int) -> None:
            self.post_message(CompareProgress(done, total))

        try:
            runs = await self._run_comparison(chosen_presets, batch, progress)
        except Exception as exc:  # not connected, a start refused, the server gone: say so
            self.post_message(CompareFinished(None, str(exc) or type(exc).__name__))
        else:
            self.post_message(CompareFinished(runs))

    def on_compare_progress(self, message: CompareProgress) -> None:
        if self._comparing:  # a late progress never hides the result or the failure
            self._status(Text(f"Running: {message.done}/{message.total} watches finished"))

    def on_compare_finished(self, message: CompareFinished) -> None:
        self._set_running(False)
        if message.runs is None:
            self._status(Text(f"The comparison failed: {message.error}", style="red"))
            return
        self.show_results(message.runs)

    def action_back(self) -> None:
        self.dismiss()

    def show_results(self, runs: Sequence[PolicyRun]) -> None:
        """Fill the table, the takeaway and the chart (also used by the snapshot tests)."""
        jobs = runs[0].jobs if runs else 0
        if any(run.measured_by == CLIENT_CLOCK for run in runs):
            source = "measured by this client (the server keeps no job records)"
        else:
            source = "numbers from the server's job records"
        self._status(Text(f"{jobs} jobs per set-up, {source}."))
        table = self.screen.query_one("#compare-table", DataTable)
        table.clear()
        for run in runs:
            table.add_row(
                Text(run.name, style="bold"),
                Text(f"{run.requests_per_job:.1f}", justify="right"),
                Text(str(max(run.status_requests, default=0)), justify="right"),
                _lag(run.mean_lag),
                _lag(run.max_lag),
                Text(str(run.missed), justify="right", style="bold red" if run.missed else ""),
            )
        self.screen.query_one("#takeaway", Static).update(Text(takeaway(runs)))
        self._draw_chart(runs)

    def _draw_chart(self, runs: Sequence[PolicyRun]) -> None:
        plot = self.screen.query_one("#compare-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Status requests so far, per set-up")
        plt.xlabel("seconds since the batch started")
        for index, run in enumerate(runs):
            times, counts = run.cumulative_requests()
            marker, color = LINE_STYLES[index % len(LINE_STYLES)]
            if times:
                plt.plot(times, counts, label=run.name, marker=marker, color=color)
        plot.refresh()
