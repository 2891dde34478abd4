"""The compare view: one batch, several polling set-ups, what each one cost.

The table gives status requests per job and detection lag per set-up (from the server's
own records, or measured on this client when the server keeps none), the chart shows
requests piling up over time, and one line under the table says what that means.

With a scenario (a built-in name or a file, see docs/scenarios.md) the batch is the
scenario's jobs at their arrival times, the server (which must play that scenario) starts
its fault timeline, the chart marks the fault phases, and ``e`` exports the report.

The view gets what it needs from the app when it opens (a way to run a comparison on the
polling engine's client) and sends one message up: the report to export.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Header, Input, Label, SelectionList, Static
from textual_plotext import PlotextPlot

from client_core.comparison import (
    CLIENT_CLOCK,
    BatchJob,
    PolicyPreset,
    PolicyRun,
    draw_batch,
    presets,
    takeaway,
)
from scenarios import Scenario, ScenarioError, load_scenario
from scenarios import builtin_names as scenario_names
from tui.keys import COMPARE_KEYS
from tui.screens.form_fields import (
    FieldError,
    FieldValidator,
    parse_count,
    parse_durations,
    parse_integer,
)
from tui.widgets.footer import Footer

#: Runs ``presets`` on ``batch`` where the client lives (the app's polling engine), calling
#: back with the watches finished so far, under a scenario when one is named (the server
#: plays it); cancelling it stops the run.
RunComparison = Callable[
    [Sequence[PolicyPreset], Sequence[BatchJob], Callable[[int], None], str | None],
    Awaitable[list[PolicyRun]],
]

MAX_JOBS = 500
#: Narrow enough for 80 columns; the jobs per set-up are in the line above the table.
RESULT_COLUMNS = ("Set-up", "Req/job", "Max", "Lag", "Lag max", "Gave up")
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


@dataclass(frozen=True, slots=True)
class CompareForm:
    """What the view shows: the form as typed and the last results. Leaving the view hands
    it back, and the next visit opens on it."""

    jobs: str = "10"
    durations: str = "1-4"
    seed: str = "7"
    chosen: tuple[str, ...] = tuple(preset.name for preset in presets())
    runs: tuple[PolicyRun, ...] = ()
    scenario: str = ""  # a scenario's name or file; blank: the batch of the fields above
    scenario_run: Scenario | None = None  # the scenario the shown results ran under


def _parse_jobs(text: str) -> int:
    return parse_count(text, "jobs", MAX_JOBS)


def _parse_durations(text: str) -> tuple[float | None, float | None]:
    return parse_durations(text, blank_allowed=False)


def _parse_seed(text: str) -> int:
    return parse_integer(text, "seed")


def _parse_scenario(text: str) -> Scenario | None:
    if not text.strip():
        return None
    try:
        scenario = load_scenario(text.strip())
    except ScenarioError as exc:
        raise FieldError(str(exc)) from None
    if scenario.jobs.count > MAX_JOBS:
        raise FieldError(
            f"scenario {scenario.name} has {scenario.jobs.count} jobs; the view runs at most "
            f"{MAX_JOBS} per set-up (videosim-client compare runs any)"
        )
    return scenario


class CompareProgress(Message):
    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CompareProgress)


class CompareFinished(Message):
    def __init__(
        self,
        runs: list[PolicyRun] | None,
        error: str | None = None,
        scenario: Scenario | None = None,
    ) -> None:
        super().__init__()
        self.runs = runs
        self.error = error
        self.scenario = scenario


def _preset_label(preset: PolicyPreset) -> str:
    """``original (backoff)``; just ``hinted`` where the name is the strategy."""
    strategy = str(preset.strategy)
    return preset.name if preset.name == strategy else f"{preset.name} ({strategy})"


def _lag(value: float | None, bound: bool) -> Text:
    """A lag cell; ``<=`` marks an upper bound (no server record of the end)."""
    if value is None:
        return Text("-", justify="right")
    return Text(f"{'<=' if bound else ''}{value:.2f}s", justify="right")


def _setup_label(run: PolicyRun) -> Text:
    """The set-up's name, and what its watches used when that is not what was asked."""
    label = Text(run.name, style="bold")
    if run.used and run.used_label != run.strategy:
        label.append(f" -> {run.used_label}", style="yellow" if run.fell_back else "dim")
    return label


class CompareScreen(Screen[CompareForm]):
    BINDINGS = [key.binding() for key in COMPARE_KEYS]

    class ReportRequested(Message):
        """Export the shown results under their scenario (HTML and Markdown)."""

        def __init__(self, scenario: Scenario, runs: Sequence[PolicyRun]) -> None:
            super().__init__()
            self.scenario = scenario
            self.runs = runs

    def __init__(self, run_comparison: RunComparison, shown: CompareForm | None = None) -> None:
        super().__init__()
        self._run_comparison = run_comparison
        self._comparing = False
        self._shown = shown or CompareForm()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare-body"):
            with Vertical(id="compare-form"):
                shown = self._shown
                yield Label("Jobs per set-up")
                yield Input(
                    shown.jobs,
                    id="compare-count",
                    compact=True,
                    tooltip=f"1 to {MAX_JOBS}",
                    validators=[FieldValidator(_parse_jobs)],
                )
                yield Label("Durations (s)")
                yield Input(
                    shown.durations,
                    id="compare-duration",
                    compact=True,
                    tooltip="a number, or a range like 1-4 drawn once per job",
                    validators=[FieldValidator(_parse_durations)],
                )
                yield Label("Seed")
                yield Input(
                    shown.seed,
                    id="compare-seed",
                    compact=True,
                    tooltip="any whole number; the same seed draws the same batch",
                    validators=[FieldValidator(_parse_seed)],
                )
                yield Label("Scenario")
                yield Input(
                    shown.scenario,
                    id="compare-scenario",
                    compact=True,
                    placeholder="none",
                    tooltip=f"a built-in ({', '.join(scenario_names())}) or a scenario file: "
                    "its jobs replace the three fields above; the server must play it",
                    validators=[FieldValidator(_parse_scenario)],
                )
                yield Label("Set-ups")
                yield SelectionList[str](
                    *((_preset_label(p), p.name, p.name in shown.chosen) for p in presets()),
                    id="compare-presets",
                    compact=True,
                )
                yield Button("Run", variant="primary", id="compare-run", compact=True)
            with VerticalScroll(id="compare-results"):
                yield Static("Pick set-ups and press Run (ctrl+r).", id="compare-status")
                yield DataTable(
                    id="compare-table", cursor_type="row", zebra_stripes=True, cell_padding=1
                )
                yield Static("", id="takeaway")
                yield PlotextPlot(id="compare-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.screen.query_one("#compare-table", DataTable).add_columns(*RESULT_COLUMNS)
        if self._shown.runs:
            self.show_results(self._shown.runs, self._shown.scenario_run)
        else:
            self._draw_chart([])

    def _status(self, text: Text) -> None:
        self.screen.query_one("#compare-status", Static).update(text)

    @on(Button.Pressed, "#compare-run")
    def action_run(self) -> None:
        if self._comparing:
            self._status(Text("A comparison is running; wait for it to finish.", style="yellow"))
            return
        form = self._form()
        try:
            scenario = _parse_scenario(form.scenario)
            if scenario is None:
                count = _parse_jobs(form.jobs)
                low, high = _parse_durations(form.durations)
                seed = _parse_seed(form.seed)
                assert low is not None and high is not None  # blank_allowed=False
                batch = draw_batch(count, seed, low, high)
            else:
                batch = [BatchJob(None, None, at) for at in scenario.arrival_times()]
        except FieldError as exc:
            self._status(Text(f"Cannot run: {exc}", style="red"))
            return
        chosen_presets = [p for p in presets() if p.name in form.chosen]
        if not chosen_presets:
            self._status(Text("Tick at least one set-up.", style="red"))
            return
        self._set_running(True)
        under = f" under {scenario.name}" if scenario else ""
        self._status(Text(f"Running {len(batch)} jobs x {len(chosen_presets)} set-ups{under}..."))
        self._run(chosen_presets, batch, scenario)

    def _set_running(self, running: bool) -> None:
        self._comparing = running
        self.screen.query_one("#compare-run", Button).disabled = running

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _run(
        self, chosen_presets: list[PolicyPreset], batch: list[BatchJob], scenario: Scenario | None
    ) -> None:
        """The batch runs in the polling engine; progress comes back as messages.

        Leaving the view cancels this worker, and with it every start and watch of the run
        (the cancel is sent on to the engine)."""
        total = len(chosen_presets) * len(batch)

        def progress(done: int) -> None:
            self.post_message(CompareProgress(done, total))

        named = None if scenario is None else self.screen.query_one("#compare-scenario", Input)
        try:
            runs = await self._run_comparison(
                chosen_presets, batch, progress, None if named is None else named.value.strip()
            )
        except Exception as exc:  # not connected, a start refused, the server gone: say so
            self.post_message(CompareFinished(None, str(exc) or type(exc).__name__))
        else:
            self.post_message(CompareFinished(runs, scenario=scenario))

    def on_compare_progress(self, message: CompareProgress) -> None:
        if self._comparing:  # a late progress never hides the result or the failure
            self._status(Text(f"Running: {message.done}/{message.total} watches finished"))

    def on_compare_finished(self, message: CompareFinished) -> None:
        self._set_running(False)
        if message.runs is None:
            self._status(Text(f"The comparison failed: {message.error}", style="red"))
            return
        self.show_results(message.runs, message.scenario)
        # the results have the focus: e exports them (typed into a field, e is a letter)
        self.screen.query_one("#compare-table", DataTable).focus()

    def action_export(self) -> None:
        """``e``: the shown results as a report, when they ran under a scenario."""
        shown = self._shown
        if not shown.runs or shown.scenario_run is None:
            self._status(Text("Run under a scenario first: e exports its report.", style="yellow"))
            return
        self.post_message(self.ReportRequested(shown.scenario_run, shown.runs))

    def _form(self) -> CompareForm:
        """The form as typed now, with the results shown."""
        query = self.screen.query_one
        return CompareForm(
            jobs=query("#compare-count", Input).value,
            durations=query("#compare-duration", Input).value,
            seed=query("#compare-seed", Input).value,
            chosen=tuple(query("#compare-presets", SelectionList).selected),
            runs=self._shown.runs,
            scenario=query("#compare-scenario", Input).value,
            scenario_run=self._shown.scenario_run,
        )

    def action_back(self) -> None:
        self.dismiss(self._form())

    def show_results(self, runs: Sequence[PolicyRun], scenario: Scenario | None = None) -> None:
        """Fill the table, the takeaway and the chart (also used by the snapshot tests)."""
        self._shown = replace(self._shown, runs=tuple(runs), scenario_run=scenario)
        jobs = runs[0].jobs if runs else 0
        if any(run.measured_by == CLIENT_CLOCK for run in runs):
            source = (
                "requests counted by this client (the server keeps no job records); a lag "
                "is at most the time from the last pending answer to the first final one"
            )
        else:
            source = "numbers from the server's job records"
        under = ""
        if scenario is not None:
            under = f" under scenario {scenario.name} (e exports the report)"
        self._status(Text(f"{jobs} jobs per set-up{under}, {source}."))
        table = self.screen.query_one("#compare-table", DataTable)
        table.clear()
        for run in runs:
            table.add_row(
                _setup_label(run),
                Text(f"{run.requests_per_job:.1f}", justify="right"),
                Text(str(max(run.status_requests, default=0)), justify="right"),
                _lag(run.mean_lag, run.lag_is_bound),
                _lag(run.max_lag, run.lag_is_bound),
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
        end_s = max((max(run.request_times, default=0.0) for run in runs), default=0.0)
        for index, run in enumerate(runs):
            times, counts = run.cumulative_requests()
            if not times:  # pushed states, no status request: a line at zero, in the legend
                times, counts = [0.0, max(end_s, 1.0)], [0, 0]
            marker, color = LINE_STYLES[index % len(LINE_STYLES)]
            plt.plot(times, counts, label=run.name, marker=marker, color=color)
        scenario = self._shown.scenario_run
        for phase in scenario.phases if scenario is not None else ():
            plt.vline(phase.start_s, "red")
            plt.vline(phase.end_s, "red")
            plt.text(phase.kind, phase.start_s, 0, color="red")
        plot.refresh()
