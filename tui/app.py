"""The dashboard app: owns the model, turns the engine's deltas into state, drives the views.

This process only renders. Start requests, watches and health checks run in the polling
engine, a child process (:mod:`tui.engine`, reached through :mod:`tui.engine_link`), which
sends the rows that changed about every ``batch_interval_s``. The app folds those deltas
into its :class:`~tui.model.JobBoard`; the user's actions (spawn, cancel, clear) change the
board here at once and tell the engine. A ~10 Hz timer then shows the board in the virtual
job table and the summary bar. If the engine dies, the dashboard says so, starts a new
one, and hands it the jobs that were still being watched: the board is kept.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.driver import Driver
from textual.screen import Screen
from textual.widgets import Button, Header, Static
from textual.worker import Worker, WorkerState

from api_profiles import load_profile
from client_core import SPECIAL_JOB_ID, BackoffPolicy, Strategy
from client_core.comparison import BatchJob, PolicyPreset, PolicyRun
from client_core.scenario_compare import ScenarioComparison
from tui import export
from tui.embedded import EmbeddedServer, EmbeddedServerError, server_answers
from tui.engine_controller import MAX_CRASHES, EngineController, EngineNotReady
from tui.engine_link import ClientFactory
from tui.engine_protocol import Configure, Delta, Watch
from tui.event_log import EventKind
from tui.gc_pauses import FREEZE_EVERY_S, freeze_survivors, release_frozen
from tui.keys import MAIN_KEYS
from tui.messages import PollEventsBatch, ServerFailed, ServerResolved
from tui.model import (
    FILTER_CYCLE,
    JobBoard,
    JobSpec,
    JobState,
    Now,
    PoolBatch,
    SortColumn,
    SpawnRequest,
    merge_row,
)
from tui.operator_tools import OperatorTools
from tui.screens.column_chooser import ColumnChooserScreen
from tui.screens.compare import CompareForm, CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.screens.policy_editor import PolicyEditorScreen
from tui.screens.sort_picker import SortChoice, SortPickerScreen
from tui.screens.spawn import SpawnScreen
from tui.screens.watch_ids import WatchIdsScreen
from tui.settings import DashboardSettings
from tui.widgets.footer import Footer
from tui.widgets.job_table import CHOOSABLE_COLUMNS, COLUMN_LABELS, JobTable
from tui.widgets.search_bar import SearchBar
from tui.widgets.summary_bar import ServerHealth, SummaryBar, counts_text, view_text

# q (and ctrl+c) quit from the job table only: in the other views q may be typing a letter
TABLE_ACTIONS = frozenset(k.action for k in MAIN_KEYS) - {"help"}
FAILED_STATES = frozenset({JobState.ERROR, JobState.FAILED})  # what "retry failed" retries


class VideoSimApp(OperatorTools):
    """Spawn jobs, watch them poll, and see what polling costs."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "videosim"
    # enter belongs to the table, which posts JobTable.Selected (handled below)
    BINDINGS = [k.binding() for k in MAIN_KEYS if k.action != "open_detail"]

    def __init__(
        self,
        *,
        settings: DashboardSettings,
        client_factory: ClientFactory | None = None,
        clock: Now = time.monotonic,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.clock = clock
        self.board = JobBoard(history_length=settings.history_length)
        self.defaults = JobSpec(strategy=settings.strategy, policy=settings.policy)
        self.api = load_profile(settings.client_options.profile)  # the job API spoken
        if not self.api.native:
            self.title = f"videosim · {self.api.title}"
        self._to_watch = settings.watch_ids  # watched once the first engine is ready
        self.state_filter: JobState | None = None
        self.sort_column = SortColumn.ADDED
        self.sort_reverse = False
        self.search = ""  # lower case; the table shows rows with this text
        self.columns: tuple[SortColumn, ...] = CHOOSABLE_COLUMNS  # the column chooser's
        self.health = ServerHealth()
        self.health_note = ""  # e.g. "original API, no health route"
        self.push_note = ""  # how the engine's event stream is doing (the detail view shows it)
        self.engine: EngineController | None = None
        self.embedded: EmbeddedServer | None = None
        self._client_factory = client_factory  # given: the engine runs in a thread (tests)
        self._rng = random.Random(settings.spawn_seed)
        self._resort = False
        self._pause_text = ""
        self._finder: Worker[None] | None = None
        self._compare_shown: CompareForm | None = None  # the compare view, as last left

    # -- layout and lifecycle ---------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield SummaryBar(id="summary")
        yield Static(id="pause-banner")
        yield JobTable(id="jobs")
        yield SearchBar(placeholder="search: job id prefix or any text in the row", id="search")
        yield Footer()

    def get_driver_class(self) -> type[Driver]:
        """Textual's choice, with its Linux terminal driver swapped for one whose input
        thread stops at once on quit (see tui.terminal_driver)."""
        driver_class = super().get_driver_class()
        if sys.platform != "win32":
            from textual.drivers.linux_driver import LinuxDriver

            from tui.terminal_driver import PromptLinuxDriver

            if driver_class is LinuxDriver:
                return PromptLinuxDriver
        return driver_class

    def on_mount(self) -> None:
        self.table = self.query_one(JobTable)
        self.summary = self.query_one(SummaryBar)
        self.pause_banner = self.query_one("#pause-banner", Static)
        self.table.show_columns(self.columns)
        self.table.focus()
        self._show_health()
        self.set_interval(self.settings.frame_interval_s, self.refresh_view, name="frame")
        self.set_interval(FREEZE_EVERY_S, freeze_survivors, name="gc freeze")
        if self.settings.connect:
            self._finder = self._find_server()

    async def on_unmount(self) -> None:
        """Stop the engine and close the client before the embedded server goes, then stop it."""
        if self._finder is not None:
            self._finder.cancel()
        engine, self.engine = self.engine, None
        if engine is not None:
            await engine.stop()
        self.stop_embedded()

    def stop_embedded(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()

    # -- background work: posts messages only ---------------------------------------------

    @work(exclusive=True, group="server", exit_on_error=False)
    async def _find_server(self) -> None:
        """The URL given; else the default URL if a server answers there; else start the
        embedded server. Runs on the UI loop: the child must be started from a thread that
        lives as long as the app (see tui.embedded)."""
        settings = self.settings
        if settings.server_url:
            self.post_message(ServerResolved(settings.server_url))
            return
        if not settings.embedded or await server_answers(settings.default_url):
            self.post_message(ServerResolved(settings.default_url))
            return
        self.post_message(ServerResolved("", note="starting embedded server"))
        self.embedded = EmbeddedServer(args=settings.embedded_args)
        self.embedded.spawn()
        try:
            await self.embedded.wait_ready()
        except EmbeddedServerError as exc:
            self.post_message(ServerFailed(str(exc)))
            return
        self.post_message(ServerResolved(self.embedded.url, embedded_pid=self.embedded.pid))

    # -- message handlers: the only code that changes state ---------------------------------

    def on_server_resolved(self, message: ServerResolved) -> None:
        self.health = ServerHealth(
            url=message.url or None, embedded_pid=message.embedded_pid, note=message.note
        )
        self.event_log.add(EventKind.SERVER, message.note or f"using {self.health.where()}")
        self._show_health()
        if message.url and self.engine is None and self.settings.connect:
            self._start_engine(message.url)

    # -- the polling engine (tui.engine_controller calls these) ------------------------------

    def _start_engine(self, url: str) -> None:
        settings = self.settings
        config = Configure(
            url=url,
            client_options=settings.client_options,
            batch_interval_s=settings.batch_interval_s,
            health_interval_s=settings.health_interval_s,
            history_length=settings.history_length,
            start_concurrency=settings.start_concurrency,
            start_deadline_s=settings.start_deadline_s,
        )
        self.engine = EngineController(
            config, self, client_factory=self._client_factory, clock=self.clock
        )
        self.run_worker(self.engine.start(), name="engine", group="engine", exit_on_error=False)

    def engine_ready(self) -> None:
        """A new engine watches what the board still shows as live (after a crash), and
        the first one the ids given with --watch-file."""
        if self.engine is None:
            return
        to_watch, self._to_watch = self._to_watch, ()
        self.watch_ids(list(to_watch))
        for view in self.board:
            if not view.finished and view.job_id:
                self.engine.watch(
                    Watch(
                        view.key,
                        view.job_id,
                        view.spec,
                        view.started_at,
                        attempt=view.attempt,
                        skipped=view.skipped,
                        requests=view.requests,
                    )
                )

    def engine_stopped(self, reason: str, *, restarting: bool) -> None:
        """The engine died: say so (the controller starts another unless it keeps dying)."""
        # Starts the engine had not answered died with it: the server may or may not have
        # created those jobs, so they are not sent again (no duplicates); the user is told.
        lost, self.board.starting = self.board.starting, 0
        if lost:
            reason += f"; {lost} start(s) not answered were lost: spawn them again"
            self.event_log.add(EventKind.START, f"{lost} start(s) lost with the engine")
        if not restarting:
            self.notify(
                f"The polling engine stopped ({reason}) {MAX_CRASHES} times in a minute; "
                "not restarting it. The board is kept.",
                title="Polling engine",
                severity="error",
                timeout=30,
            )
            return
        self.notify(
            f"The polling engine stopped ({reason}); restarting it. The board is kept.",
            title="Polling engine",
            severity="error",
            timeout=10,
        )

    def engine_delta(self, delta: Delta) -> None:
        """Fold one engine delta into the board (the table catches up on the next frame)."""
        board, now = self.board, self.clock()
        for key, update in delta.rows.items():
            merge_row(board, key, update, now)
        board.starting = delta.starting
        if delta.start_failures > board.start_failures:
            failed = [v for v in board if v.status == "not started"]
            reason = failed[-1].last_error if failed else "no reason given"
            self.event_log.add(EventKind.START, reason or "no reason given", severity="error")
            self.notify(
                f"{delta.start_failures - board.start_failures} job(s) did not start: {reason}",
                title="Start failed",
                severity="error",
            )
        board.start_failures = delta.start_failures
        board.rate_limited, board.unavailable = delta.rate_limited, delta.unavailable
        if delta.health is not None:
            health = delta.health
            self.health = replace(
                self.health, ok=health.ok, latency_s=health.latency_s, error=health.error
            )
            self.health_note = health.note
            self.push_note = health.push_note
            if health.ok is not None:
                self.event_log.note_server(health.ok, self.health.where(), health.error)
            self.event_log.note_circuit(health.circuit_open, health.error or "")
            self._show_health()
        if delta.history is not None and (view := board.jobs.get(delta.history.key)):
            if delta.history.reset:
                view.history.clear()
            view.history.extend(delta.history.records)

    def on_server_failed(self, message: ServerFailed) -> None:
        self.health = replace(self.health, ok=False, error=message.error, note="")
        self._show_health()
        self.notify(message.error, title="No server", severity="error", timeout=10)

    def on_poll_events_batch(self, message: PollEventsBatch) -> None:
        self.ingest(message.batch)

    def ingest(self, batch: PoolBatch) -> None:
        """Fold a watch pool batch into the board here (tests and benchmarks feed the
        dashboard this way, without an engine)."""
        self.board.fold(batch.items)
        self.board.starting = batch.starting

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.notify(f"{event.worker.name}: {event.worker.error}", severity="error", timeout=10)

    @on(Button.Pressed, "#spawn-button")
    def _spawn_clicked(self) -> None:
        self.action_spawn()

    @on(JobTable.Selected, "#jobs")
    def _open_selected(self, event: JobTable.Selected) -> None:
        self.open_detail(event.key)

    @on(JobTable.HeaderSelected, "#jobs")
    def _sort_by_header(self, event: JobTable.HeaderSelected) -> None:
        column = event.column
        if column is self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._resort = True
        self.refresh_view()

    @on(SearchBar.Changed, "#search")
    def _search_typed(self, event: SearchBar.Changed) -> None:
        """Live: every key typed narrows (or widens) the table at once."""
        self.search = event.value.strip().lower()
        self._resort = True
        self.refresh_view()

    @on(SearchBar.Closed, "#search")
    def _search_closed(self, event: SearchBar.Closed) -> None:
        search_bar = self.query_one(SearchBar)
        if event.cleared or not self.search:
            search_bar.remove_class("-shown")
        self.table.focus()

    # -- the frame: model -> views ---------------------------------------------------------

    def refresh_view(self) -> None:
        """Push the model's changes into the table and summary; runs at ~10 Hz."""
        if not self.is_running:  # shutting down: the widgets are going away
            return
        now = self.clock()
        changed, removed = self.board.take_changes()
        with self.batch_update():
            self.table.sync(
                self.board,
                changed,
                removed,
                now,
                state_filter=self.state_filter,
                sort_column=self.sort_column,
                reverse=self.sort_reverse,
                search=self.search,
                resort=self._resort,
            )
            self._resort = False
            if self.table.paused:
                self._show_pause_banner()
            self.summary.show(
                counts_text(
                    self.board.counts(),
                    self.board.starting,
                    self.board.start_failures,
                    rate_limited=self.board.rate_limited,
                    unavailable=self.board.unavailable,
                ),
                view_text(
                    self.state_filter, self.sort_column, self.sort_reverse, len(self.table.selected)
                ),
                self.board.rate.per_second(now),
                self.board.rate.series(now),
                self.health,
            )

    def _show_pause_banner(self) -> None:
        waiting = self.table.waiting
        text = (
            f"Paused: the table holds still while polling goes on; {waiting} "
            f"row{'' if waiting == 1 else 's'} changed since. P catches up."
        )
        if self._pause_text != text:
            self._pause_text = text
            self.pause_banner.update(text)

    def _show_health(self) -> None:
        """The header says where the server is and whether it answers; the latency, new
        with every probe, is in the summary bar only: a new header title is a layout pass,
        a repaint of the whole screen (10-30 ms at 200x50) every second."""
        note = f" ({self.health_note})" if self.health_note and self.health.ok else ""
        title = f"{self.health.where()} - {self.health.describe(latency=False)}{note}"
        if self.sub_title != title:
            self.sub_title = title

    # -- what the user can do (also called by the other screens) -----------------------------

    def spawn(self, request: SpawnRequest) -> None:
        if not self.settings.allow_start:
            self.notify(
                f"Spawning starts real {self.api.title} jobs (it may cost money): run with "
                "--allow-start to allow it; w watches jobs that exist",
                title="Not started",
                severity="warning",
            )
            return
        if (engine := self._connected_engine()) is None:
            return
        specs = request.specs(self._rng)
        engine.start_jobs(specs)
        self.board.starting += len(specs)

    def watch_ids(self, job_ids: list[str]) -> None:
        """Watch jobs that exist already, each on a new row, with the default policy."""
        if not job_ids or self._connected_engine() is None:
            return
        for job_id in job_ids:
            self.watch_existing(job_id, replace(self.defaults, job_id=job_id))
        self.refresh_view()
        self.notify(f"Watching {len(job_ids)} existing job(s)")

    def watch_existing(self, job_id: str, spec: JobSpec) -> str | None:
        """Watch a job that already exists (the special job, or a retry) on a new row."""
        if (engine := self._connected_engine()) is None:
            return None
        key = self.board.unique_key(job_id)
        view = self.board.add(key, job_id, spec, self.clock(), started_by_us=False)
        engine.watch(Watch(key, job_id, spec, view.started_at))
        return key

    def cancel_job(self, key: str) -> bool:
        """Stop one watch; False if it had already ended."""
        cancelled = self._cancel(key) > 0
        if cancelled:
            self.refresh_view()
        return cancelled

    def _cancel(self, *keys: str) -> int:
        """Mark watches cancelled here at once and tell the engine in one command."""
        now = self.clock()
        cancelled = [key for key in keys if self.board.cancel(key, now)]
        if self.engine is not None:
            self.engine.cancel(cancelled)
        return len(cancelled)

    def retry_job(self, key: str) -> str | None:
        """A finished job again: re-watch the special job (returns the new row's key), start
        a fresh job for the rest (its row comes when the server answers; a toast says so)."""
        view = self.board.jobs.get(key)
        if view is None:
            return None
        if not view.finished:
            self.notify("That job is still being watched", severity="warning")
            return None
        if view.spec.job_id is not None:
            return self.watch_existing(view.spec.job_id, view.spec)
        if (engine := self._connected_engine()) is not None:
            engine.start_jobs([view.spec])
            self.board.starting += 1
            self.notify("Starting a new job with the same settings; it gets a row of its own")
        return None

    def retry_jobs(self, keys: list[str], *, what: str) -> None:
        """Retry many finished jobs at once: the special job is watched again on new rows,
        the rest start afresh in one start command; one toast says how many."""
        views = [self.board.jobs[key] for key in keys if key in self.board.jobs]
        finished = [view for view in views if view.finished]
        if not finished:
            self.notify(f"No finished {what} job to retry", severity="warning")
            return
        if (engine := self._connected_engine()) is None:
            return
        fresh = [view.spec for view in finished if view.spec.job_id is None]
        for view in finished:
            if view.spec.job_id is not None:
                self.watch_existing(view.spec.job_id, view.spec)
        if fresh:
            engine.start_jobs(fresh)
            self.board.starting += len(fresh)
        self.refresh_view()
        self.notify(f"Retrying {len(finished)} {what} job(s); new jobs get rows of their own")

    def set_defaults(self, strategy: Strategy, policy: BackoffPolicy) -> None:
        self.defaults = JobSpec(strategy=strategy, policy=policy)
        self.notify(f"New jobs: {strategy}, {policy.describe()}", title="Policy saved")

    @property
    def connected(self) -> bool:
        """An engine is running and its client is open: jobs can be started."""
        return self.engine is not None and self.engine.connected

    def _connected_engine(self) -> EngineController | None:
        """The engine, when connected; else None, and a toast says why nothing happens."""
        if self.engine is not None and self.engine.connected:
            return self.engine
        self.notify("Not connected to a server yet", severity="warning")
        return None

    async def fetch_record(self, job_id: str) -> dict[str, Any]:
        """The server's record of a job (see EngineController.fetch_record)."""
        if self.engine is None:
            raise EngineNotReady("not connected to a server")
        return await self.engine.fetch_record(job_id)

    async def compare(
        self,
        presets: Sequence[PolicyPreset],
        batch: Sequence[BatchJob],
        on_progress: Callable[[int], None],
        scenario: str | None = None,
    ) -> list[PolicyRun]:
        """The compare view's run (see EngineController.compare)."""
        if self.engine is None:
            raise EngineNotReady("not connected to a server")
        return await self.engine.compare(presets, batch, on_progress, scenario)

    def on_compare_screen_report_requested(self, message: CompareScreen.ReportRequested) -> None:
        """The compare view's ``e``: the comparison under its scenario as HTML and Markdown."""
        report = ScenarioComparison(message.scenario, list(message.runs), [])
        self.save_export(lambda where, when: export.write_report(report, where, when))

    def open_detail(self, key: str) -> None:
        if key in self.board:
            self.push_screen(self._detail_screen(key))

    def _detail_screen(self, key: str) -> DetailScreen:
        """The detail view of ``key``; the engine sends that job's poll history from now on."""
        if self.engine is not None:
            self.engine.follow(key)
        return DetailScreen(
            key,
            board=self.board,
            clock=self.clock,
            fetch_record=self.fetch_record,
            push_note=lambda: self.push_note,
        )

    def on_detail_screen_cancel_requested(self, message: DetailScreen.CancelRequested) -> None:
        if not self.cancel_job(message.key):
            self.notify("This watch has already ended", severity="warning")

    def on_detail_screen_export_requested(self, message: DetailScreen.ExportRequested) -> None:
        self.export_job(message.key)

    def on_detail_screen_retry_requested(self, message: DetailScreen.RetryRequested) -> None:
        """Retry from the detail view: jump to the new row when it exists already."""
        new_key = self.retry_job(message.key)
        if new_key is not None and isinstance(self.screen, DetailScreen):
            self.switch_screen(self._detail_screen(new_key))

    # -- actions (keys and command palette) --------------------------------------------------

    def action_spawn(self) -> None:
        def spawn_if_given(request: SpawnRequest | None) -> None:
            if request is not None:
                self.spawn(request)

        form = SpawnScreen(
            self.defaults,
            max_duration_s=self.settings.max_duration_s,
            connected=lambda: self.connected,
        )
        self.push_screen(form, spawn_if_given)

    def action_spawn_special(self) -> None:
        if not self.api.native:
            self.notify(f"{self.api.title} has no special job", severity="warning")
            return
        self.watch_existing(SPECIAL_JOB_ID, replace(self.defaults, job_id=SPECIAL_JOB_ID))

    def action_watch_ids(self) -> None:
        def watch_if_given(job_ids: list[str] | None) -> None:
            if job_ids:
                self.watch_ids(job_ids)

        self.push_screen(WatchIdsScreen(self.api.title), watch_if_given)

    def action_open_detail(self) -> None:
        if (key := self.table.cursor_key) is not None:
            self.open_detail(key)

    def action_cancel(self) -> None:
        """The selected watches, or else the one under the cursor."""
        if selected := self.table.selected_keys():
            cancelled = self._cancel(*selected)
            self.refresh_view()
            self.notify(f"Cancelled {cancelled} of {len(selected)} selected watch(es)")
        elif (key := self.table.cursor_key) is not None:
            if self.cancel_job(key):
                self.notify(f"Cancelled the watch of {key}")  # as for several: one toast each
            else:
                self.notify("That watch has already ended", severity="warning")

    def action_cancel_all(self) -> None:
        cancelled = self._cancel(*self.board.live_keys())
        self.refresh_view()
        self.notify(f"Cancelled {cancelled} watch(es)")

    def action_retry(self) -> None:
        """The selected finished jobs, or else the one under the cursor."""
        if selected := self.table.selected_keys():
            self.retry_jobs(selected, what="selected")
        elif (key := self.table.cursor_key) is not None:
            self.retry_job(key)

    def action_retry_failed(self) -> None:
        failed = [view.key for view in self.board if view.state in FAILED_STATES]
        self.retry_jobs(failed, what="failed")

    def action_toggle_select(self) -> None:
        self.table.toggle_selected()

    def action_select_range(self) -> None:
        self.table.select_range()

    def action_select_all(self) -> None:
        self.table.select_all_shown()

    def action_clear_selection(self) -> None:
        """esc on the table: the selection goes, and so does a search kept with enter."""
        self.table.clear_selection()
        if self.search:
            search_bar = self.query_one(SearchBar)
            search_bar.value = ""
            search_bar.remove_class("-shown")
            self.search, self._resort = "", True
            self.refresh_view()

    def action_copy_id(self) -> None:
        """The selected rows' job ids, one a line, or else the one under the cursor."""
        keys = self.table.selected_keys()
        if not keys and self.table.cursor_key is not None:
            keys = [self.table.cursor_key]
        job_ids = [self.board.jobs[key].job_id for key in keys if self.board.jobs[key].job_id]
        if not job_ids:
            self.notify("No job id to copy", severity="warning")
            return
        self.copy_to_clipboard("\n".join(job_ids))
        what = job_ids[0] if len(job_ids) == 1 else f"{len(job_ids)} job ids"
        self.notify(f"Copied {what}", title="Clipboard", markup=False)

    def action_clear_finished(self) -> None:
        removed = self.board.clear_finished()
        if self.engine is not None:
            self.engine.forget(removed)
        self.refresh_view()
        if removed:
            release_frozen()
        self.notify(f"Cleared {len(removed)} finished job(s)")

    def action_cycle_filter(self) -> None:
        position = FILTER_CYCLE.index(self.state_filter)
        self.state_filter = FILTER_CYCLE[(position + 1) % len(FILTER_CYCLE)]
        self._resort = True
        self.refresh_view()  # show it now, not at the next frame

    def action_cycle_sort(self) -> None:
        """The next column on screen, left to right, after insertion order: a hidden
        column is never a sort nobody can see."""
        columns = [SortColumn.ADDED, *(key for key, _, _ in self.table.column_layout())]
        at = columns.index(self.sort_column) if self.sort_column in columns else 0
        self.sort_column = columns[(at + 1) % len(columns)]
        self._resort = True
        self.refresh_view()  # show it now, not at the next frame

    def action_toggle_pause(self) -> None:
        """Freeze the table for reading; the engine and the board carry on. Again: catch up."""
        if self.table.paused:
            self.table.resume()
            self.pause_banner.remove_class("-shown")
            self._resort = True
        else:
            self.table.pause()
            self._pause_text = ""
            self._show_pause_banner()
            self.pause_banner.add_class("-shown")
        self.refresh_view()

    def action_choose_columns(self) -> None:
        def show_if_given(columns: tuple[SortColumn, ...] | None) -> None:
            if columns is not None:
                self.columns = columns
                self.table.show_columns(columns)

        self.push_screen(ColumnChooserScreen(COLUMN_LABELS, self.columns), show_if_given)

    def action_search(self) -> None:
        search_bar = self.query_one(SearchBar)
        search_bar.add_class("-shown")
        search_bar.focus()

    def action_pick_sort(self) -> None:
        def sort_if_given(choice: SortChoice | None) -> None:
            if choice is not None:
                self.sort_column, self.sort_reverse = choice
                self._resort = True
                self.refresh_view()

        self.push_screen(SortPickerScreen((self.sort_column, self.sort_reverse)), sort_if_given)

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._resort = True
        self.refresh_view()  # show it now, not at the next frame

    def action_edit_policy(self) -> None:
        def save_if_given(choice: tuple[Strategy, BackoffPolicy] | None) -> None:
            if choice is not None:
                self.set_defaults(*choice)

        self.push_screen(PolicyEditorScreen(self.defaults), save_if_given)

    def action_compare(self) -> None:
        def keep(shown: CompareForm | None) -> None:
            self._compare_shown = shown

        self.push_screen(CompareScreen(self.compare, self._compare_shown), keep)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Table actions only work (and only show in the footer) on the table's screen."""
        return action not in TABLE_ACTIONS or self.screen is self.screen_stack[0]

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every dashboard action in the command palette, then Textual's own."""
        for key_action in MAIN_KEYS:
            yield SystemCommand(
                key_action.label,
                key_action.description,
                getattr(self, f"action_{key_action.action}"),
            )
        yield from super().get_system_commands(screen)


def make_app(
    *,
    client_factory: ClientFactory | None = None,
    server_url: str | None = None,
    settings: DashboardSettings | None = None,
    clock: Now = time.monotonic,
) -> VideoSimApp:
    """The one way to build the dashboard (the CLI and the tests both use it)."""
    settings = settings or DashboardSettings()
    if server_url is not None:
        settings = replace(settings, server_url=server_url)
    return VideoSimApp(settings=settings, client_factory=client_factory, clock=clock)
