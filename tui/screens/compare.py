"""The compare view: one batch, several polling set-ups, what each one cost.

The table gives status requests per job and detection lag per set-up (from the server's
own records), the chart shows requests piling up over time, and one line under the table
says what that means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.validation import Function, Integer
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, SelectionList, Static
from textual_plotext import PlotextPlot

from tui.compare import BatchJob, PolicyRun, draw_batch, run_comparison, takeaway
from tui.keys import COMPARE_KEYS
from tui.model import parse_duration
from tui.policies import PolicyPreset, presets

if TYPE_CHECKING:
    from tui.app import VideoSimApp

RESULT_COLUMNS = (
    "Set-up",
    "Strategy",
    "Jobs",
    "Req/job",
    "Max req",
    "Lag avg",
    "Lag max",
    "Gave up",
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


def _duration_ok(text: str) -> bool:
    try:
        low, _ = parse_duration(text)
    except ValueError:
        return False
    return low is not None


def _lag(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.2f}s", justify="right")


class CompareScreen(Screen[None]):
    BINDINGS = [key.binding() for key in COMPARE_KEYS]

    @property
    def dashboard(self) -> VideoSimApp:
        return cast("VideoSimApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-body"):
            with Vertical(id="compare-form"):
                yield Label("Jobs per set-up")
                yield Input("10", id="compare-count", validators=[Integer(minimum=1, maximum=500)])
                yield Label("Durations (s), drawn once")
                yield Input(
                    "1-4",
                    id="compare-duration",
                    validators=[Function(_duration_ok, "a number or a range like 1-4")],
                )
                yield Label("Seed")
                yield Input("7", id="compare-seed", validators=[Integer()])
                yield Label("Set-ups")
                yield SelectionList[str](
                    *((f"{p.name} ({p.strategy})", p.name, True) for p in presets()),
                    id="compare-presets",
                )
                yield Button("Run", variant="primary", id="compare-run")
            with Vertical(id="compare-results"):
                yield Static("Pick set-ups and press Run (ctrl+r).", id="compare-status")
                yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="takeaway")
                yield PlotextPlot(id="compare-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-table", DataTable).add_columns(*RESULT_COLUMNS)
        self._draw_chart([])

    @on(Button.Pressed, "#compare-run")
    def action_run(self) -> None:
        status = self.query_one("#compare-status", Static)
        if not self.dashboard.connected:
            status.update(Text("Not connected to a server yet.", style="red"))
            return
        try:
            count = int(self.query_one("#compare-count", Input).value)
            low, high = parse_duration(self.query_one("#compare-duration", Input).value)
            seed = int(self.query_one("#compare-seed", Input).value)
            if low is None or high is None or not 1 <= count <= 500:
                raise ValueError("jobs: 1-500, durations: a number or a range like 1-4")
        except ValueError as exc:
            status.update(Text(f"Cannot run: {exc}", style="red"))
            return
        chosen = set(self.query_one("#compare-presets", SelectionList).selected)
        chosen_presets = [p for p in presets() if p.name in chosen]
        if not chosen_presets:
            status.update(Text("Tick at least one set-up.", style="red"))
            return
        batch = draw_batch(count, seed, low, high)
        self.query_one("#compare-run", Button).disabled = True
        status.update(Text(f"Running {count} jobs x {len(chosen_presets)} set-ups..."))
        self._run(chosen_presets, batch)

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _run(self, chosen_presets: list[PolicyPreset], batch: list[BatchJob]) -> None:
        """The batch runs on the polling engine's loop; progress comes back as messages."""
        total = len(chosen_presets) * len(batch)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.post_message(CompareProgress(done, total))

        try:
            runs = await self.dashboard.call_client(
                lambda client: run_comparison(client, chosen_presets, batch, progress)
            )
        except Exception as exc:  # the server went away, a job vanished: say so, keep the view
            self.post_message(CompareFinished(None, str(exc) or repr(exc)))
        else:
            self.post_message(CompareFinished(runs))

    def on_compare_progress(self, message: CompareProgress) -> None:
        self.query_one("#compare-status", Static).update(
            Text(f"Running: {message.done}/{message.total} watches finished")
        )

    def on_compare_finished(self, message: CompareFinished) -> None:
        self.query_one("#compare-run", Button).disabled = False
        if message.runs is None:
            self.query_one("#compare-status", Static).update(
                Text(f"The comparison failed: {message.error}", style="red")
            )
            return
        self.show_results(message.runs)

    def action_back(self) -> None:
        self.dismiss()

    def show_results(self, runs: Sequence[PolicyRun]) -> None:
        """Fill the table, the takeaway and the chart (also used by the snapshot tests)."""
        jobs = runs[0].jobs if runs else 0
        self.query_one("#compare-status", Static).update(
            Text(f"{jobs} jobs per set-up, numbers from the server's job records.")
        )
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for run in runs:
            table.add_row(
                Text(run.name, style="bold"),
                Text(run.strategy),
                Text(str(run.jobs), justify="right"),
                Text(f"{run.requests_per_job:.1f}", justify="right"),
                Text(str(max(run.status_requests, default=0)), justify="right"),
                _lag(run.mean_lag),
                _lag(run.max_lag),
                Text(str(run.missed), justify="right", style="bold red" if run.missed else ""),
            )
        self.query_one("#takeaway", Static).update(Text(takeaway(runs)))
        self._draw_chart(runs)

    def _draw_chart(self, runs: Sequence[PolicyRun]) -> None:
        plot = self.query_one("#compare-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Status requests so far, per set-up")
        plt.xlabel("seconds since the batch started")
        for run in runs:
            times, counts = run.cumulative_requests()
            if times:
                plt.plot(times, counts, label=run.name, marker="braille")
        plot.refresh()
