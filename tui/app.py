"""The dashboard app: owns the model, turns worker messages into state, and drives the views.

Data flows one way. Background work only posts messages: finding or starting the server
runs in a worker on the UI loop; start requests, watches and health checks run in the
polling engine (:mod:`tui.engine`), a thread worker with an event loop of its own. The
message handlers below are the only code that changes the :class:`~tui.model.JobBoard`.
A ~10 Hz timer then pushes the model's changes into the table and the summary bar.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header
from textual.worker import Worker, WorkerState

from client_core import BackoffPolicy, Outcome, Strategy, VideoSimClient
from tui.embedded import EmbeddedServer, EmbeddedServerError, server_answers
from tui.engine import ClientFactory, EngineNotReady, PollingEngine
from tui.event_log import EventKind
from tui.keys import MAIN_KEYS
from tui.messages import EngineReady, HealthChecked, PollEventsBatch, ServerFailed, ServerResolved
from tui.model import (
    FILTER_CYCLE,
    SPECIAL_JOB_ID,
    JobBoard,
    JobSpec,
    JobState,
    SortColumn,
    SpawnRequest,
)
from tui.operator_tools import OperatorTools
from tui.screens.compare import CompareScreen
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.screens.policy_editor import PolicyEditorScreen
from tui.screens.spawn import SpawnScreen
from tui.settings import DashboardSettings
from tui.watch_pool import (
    Clock,
    JobStarted,
    PoolBatch,
    StartFailed,
    WatchCrashed,
    WatchEvent,
)
from tui.widgets.job_table import JobTable
from tui.widgets.summary_bar import ServerHealth, SummaryBar, counts_text, view_text

T = TypeVar("T")
TABLE_ACTIONS = frozenset(k.action for k in MAIN_KEYS) - {"help", "quit"}
ENGINE_WORKER = "polling engine"


def default_client_factory(settings: DashboardSettings) -> ClientFactory:
    def create(url: str) -> VideoSimClient:
        return VideoSimClient(url, api_key=settings.api_key, **settings.client_options)  # type: ignore[arg-type]

    return create


class VideoSimApp(OperatorTools):
    """Spawn jobs, watch them poll, and see what polling costs."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "videosim"
    # enter belongs to the table, which posts RowSelected (handled below)
    BINDINGS = [k.binding() for k in MAIN_KEYS if k.action != "open_detail"]

    def __init__(
        self,
        *,
        client_factory: ClientFactory,
        settings: DashboardSettings,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.clock = clock
        self.board = JobBoard(history_length=settings.history_length)
        self.defaults = JobSpec(strategy=settings.strategy, policy=settings.policy)
        self.state_filter: JobState | None = None
        self.sort_column = SortColumn.ADDED
        self.sort_reverse = False
        self.health = ServerHealth()
        self.engine: PollingEngine | None = None
        self.connected = False  # the engine's client is open
        self.embedded: EmbeddedServer | None = None
        self.starting = 0  # start requests not answered yet
        self._client_factory = client_factory
        self._rng = random.Random(settings.spawn_seed)
        self._resort = False
        self._finder: Worker[None] | None = None

    # -- layout and lifecycle ---------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield SummaryBar(id="summary")
        yield JobTable(id="jobs")
        yield Footer()

    def on_mount(self) -> None:
        self.table = self.query_one(JobTable)
        self.summary = self.query_one(SummaryBar)
        self.table.focus()
        self._show_health()
        self.set_interval(self.settings.frame_interval_s, self.refresh_view, name="frame")
        if self.settings.connect:
            self._finder = self._find_server()

    async def on_unmount(self) -> None:
        """Stop polling and close the client before the embedded server goes, then stop it."""
        if self._finder is not None:
            self._finder.cancel()
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop)
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
            self.engine = PollingEngine(
                message.url,
                self._client_factory,
                self.post_message,
                clock=self.clock,
                start_concurrency=self.settings.start_concurrency,
                batch_interval_s=self.settings.batch_interval_s,
                health_interval_s=self.settings.health_interval_s,
            )
            self.run_worker(self.engine.run, name=ENGINE_WORKER, thread=True, exit_on_error=False)

    def on_server_failed(self, message: ServerFailed) -> None:
        self.health = replace(self.health, ok=False, error=message.error, note="")
        self._show_health()
        self.notify(message.error, title="No server", severity="error", timeout=10)

    def on_engine_ready(self, message: EngineReady) -> None:
        self.connected = True

    def on_health_checked(self, message: HealthChecked) -> None:
        self.health = replace(
            self.health, ok=message.ok, latency_s=message.latency_s, error=message.error
        )
        self.event_log.note_server(message.ok, self.health.where(), message.error)
        self._show_health()

    def on_poll_events_batch(self, message: PollEventsBatch) -> None:
        self.ingest(message.batch)

    def ingest(self, batch: PoolBatch) -> None:
        """Fold a batch into the model (the table catches up on the next frame)."""
        board = self.board
        for item in batch.items:
            match item:
                case WatchEvent(key=key, event=event, at=at):
                    board.apply(key, event, at)
                case JobStarted(key=key, job_id=job_id, spec=spec, at=at):
                    board.add(key, job_id, spec, at)
                case StartFailed(error=error):
                    board.record_start_failure()
                    self.event_log.add(EventKind.START, error, severity="error")
                case WatchCrashed(key=key, error=error, at=at):
                    board.fail(key, Outcome.UNREACHABLE, error, at)
        self.starting = batch.starting
        self.event_log.note_polls(i.event for i in batch.items if isinstance(i, WatchEvent))
        failures = [item for item in batch.items if isinstance(item, StartFailed)]
        if failures:
            self.notify(
                f"{len(failures)} job(s) did not start: {failures[-1].error}",
                title="Start failed",
                severity="error",
            )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            if event.worker.name == ENGINE_WORKER:
                self.connected = False
            self.notify(f"{event.worker.name}: {event.worker.error}", severity="error", timeout=10)

    @on(Button.Pressed, "#spawn-button")
    def _spawn_clicked(self) -> None:
        self.action_spawn()

    @on(DataTable.RowSelected, "#jobs")
    def _open_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.open_detail(event.row_key.value)

    @on(DataTable.HeaderSelected, "#jobs")
    def _sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        column = SortColumn(str(event.column_key.value))
        if column is self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._resort = True
        self.refresh_view()

    # -- the frame: model -> views ---------------------------------------------------------

    def refresh_view(self) -> None:
        """Push the model's changes into the table and summary; runs at ~10 Hz."""
        if not self.is_running:  # shutting down: the widgets are going away
            return
        now = self.clock()
        changed, removed = self.board.take_changes()
        with self.batch_update():
            if self._resort:
                self.table.show_matching(self.board, self.state_filter, now)
            self.table.sync(
                self.board,
                changed,
                removed,
                now,
                state_filter=self.state_filter,
                sort_column=self.sort_column,
                reverse=self.sort_reverse,
                resort=self._resort,
            )
            self._resort = False
            self.summary.show(
                counts_text(self.board.counts(), self.starting, self.board.start_failures),
                view_text(self.state_filter, self.sort_column, self.sort_reverse),
                self.board.rate.per_second(now),
                self.board.rate.series(now),
                self.health,
            )

    def _show_health(self) -> None:
        self.sub_title = f"{self.health.where()} - {self.health.describe()}"

    # -- what the user can do (also called by the other screens) -----------------------------

    def spawn(self, request: SpawnRequest) -> None:
        if (engine := self._require_engine()) is None:
            return
        specs = request.specs(self._rng)
        engine.start_jobs(specs)
        self.starting += len(specs)

    def watch_existing(self, job_id: str, spec: JobSpec) -> str | None:
        """Watch a job that already exists (the special job, or a retry) on a new row."""
        if (engine := self._require_engine()) is None:
            return None
        key = self.board.unique_key(job_id)
        self.board.add(key, job_id, spec, self.clock(), started_by_us=False)
        engine.watch(key, job_id, spec)
        return key

    def cancel_job(self, key: str) -> bool:
        """Stop one watch; False if it had already ended."""
        cancelled = self._cancel(key)
        if cancelled:
            self.refresh_view()
        return cancelled

    def _cancel(self, key: str) -> bool:
        if not self.board.cancel(key, self.clock()):
            return False
        if self.engine is not None and self.connected:
            self.engine.cancel(key)
        return True

    def retry_job(self, key: str) -> None:
        """A finished job again: re-watch the special job, start a fresh job for the rest."""
        view = self.board.jobs.get(key)
        if view is None:
            return
        if not view.finished:
            self.notify("That job is still being watched", severity="warning")
            return
        if view.spec.job_id is not None:
            self.watch_existing(view.spec.job_id, view.spec)
        elif (engine := self._require_engine()) is not None:
            engine.start_jobs([view.spec])
            self.starting += 1

    def set_defaults(self, strategy: Strategy, policy: BackoffPolicy) -> None:
        self.defaults = JobSpec(strategy=strategy, policy=policy)
        self.notify(f"New jobs: {strategy}, {policy.describe()}", title="Policy saved")

    def _require_engine(self) -> PollingEngine | None:
        if self.engine is None or not self.connected:
            self.notify("Not connected to a server yet", severity="warning")
            return None
        return self.engine

    async def call_client(
        self, request: Callable[[VideoSimClient], Awaitable[T]], *, quick: bool = False
    ) -> T:
        """Run ``request(client)`` on the engine's loop (for the detail and compare views;
        ``quick``: a single request someone waits for, kept clear of the polls); raises
        EngineNotReady when there is no connection."""
        if self.engine is None:
            raise EngineNotReady("not connected to a server")
        return await self.engine.call(request, quick=quick)

    def open_detail(self, key: str) -> None:
        if key in self.board:
            self.push_screen(DetailScreen(key))

    # -- actions (keys and command palette) --------------------------------------------------

    def action_spawn(self) -> None:
        def spawn_if_given(request: SpawnRequest | None) -> None:
            if request is not None:
                self.spawn(request)

        self.push_screen(SpawnScreen(self.defaults), spawn_if_given)

    def action_spawn_special(self) -> None:
        self.watch_existing(SPECIAL_JOB_ID, replace(self.defaults, job_id=SPECIAL_JOB_ID))

    def action_open_detail(self) -> None:
        if (key := self.table.cursor_key) is not None:
            self.open_detail(key)

    def action_cancel(self) -> None:
        if (key := self.table.cursor_key) is not None and not self.cancel_job(key):
            self.notify("That watch has already ended", severity="warning")

    def action_cancel_all(self) -> None:
        cancelled = sum(self._cancel(key) for key in self.board.live_keys())
        self.refresh_view()
        self.notify(f"Cancelled {cancelled} watch(es)")

    def action_retry(self) -> None:
        if (key := self.table.cursor_key) is not None:
            self.retry_job(key)

    def action_clear_finished(self) -> None:
        removed = self.board.clear_finished()
        self.refresh_view()
        self.notify(f"Cleared {len(removed)} finished job(s)")

    def action_cycle_filter(self) -> None:
        position = FILTER_CYCLE.index(self.state_filter)
        self.state_filter = FILTER_CYCLE[(position + 1) % len(FILTER_CYCLE)]
        self._resort = True
        self.refresh_view()  # show it now, not at the next frame

    def action_cycle_sort(self) -> None:
        columns = list(SortColumn)
        self.sort_column = columns[(columns.index(self.sort_column) + 1) % len(columns)]
        self._resort = True
        self.refresh_view()  # show it now, not at the next frame

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
        self.push_screen(CompareScreen())

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Table actions only work (and only show in the footer) on the table's screen."""
        return action not in TABLE_ACTIONS or self.screen is self.screen_stack[0]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
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
    clock: Clock = time.monotonic,
) -> VideoSimApp:
    """The one way to build the dashboard (the CLI and the tests both use it)."""
    settings = settings or DashboardSettings()
    if server_url is not None:
        settings = replace(settings, server_url=server_url)
    return VideoSimApp(
        client_factory=client_factory or default_client_factory(settings),
        settings=settings,
        clock=clock,
    )
