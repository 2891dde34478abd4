"""The polling engine: one client, its watch pool, a board of every job, and the health probe.

It runs in a process of its own (``python -m tui.engine_process``, started by
tui.engine_link), so the dashboard's process only renders: thousands of watches cost the
engine's interpreter, never a key press. It keeps its own :class:`~tui.model.JobBoard`,
folds the watch pool's batches into it, and every ``batch_interval_s`` sends one
:class:`~tui.engine_protocol.Delta` with the fields that changed since the previous one.

One client does everything: starts and the detail view's job records go in its
interactive lane, ahead of the background polls (client_core's admission lanes), under one
circuit breaker, and the compare view's batches run on it too; the dashboard's process
opens no connection of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from client_core import PushWait, Route, Strategy, VideoSimClient
from client_core.comparison import first_error, run_comparison
from client_core.scenario_compare import start_timeline
from scenarios import load_scenario
from tui.engine_protocol import (
    Cancel,
    Command,
    ComparisonDone,
    ComparisonProgress,
    Configure,
    Delta,
    EngineMessage,
    FetchRecord,
    Follow,
    Forget,
    Health,
    History,
    Ready,
    RecordAnswer,
    RunComparison,
    StartJobs,
    StopComparison,
    Watch,
)
from tui.gc_pauses import FREEZE_EVERY_S, freeze_survivors, release_frozen
from tui.model import JobBoard, Now, PoolBatch, RowUpdate, RowValues, row_update, row_values
from tui.watch_pool import WatchPool

ORIGINAL_API = "original API, no health route"
PUSH_ROUTES = {Route.STREAM: Strategy.STREAM, Route.BATCH: Strategy.BATCH}


def stream_note(wait: PushWait, now: float) -> str:
    """``event stream connected 62s, heard 2s ago`` (or reconnecting)."""
    if wait.connected_since is None:
        return "event stream reconnecting"
    note = f"event stream connected {now - wait.connected_since:.0f}s"
    if wait.last_heard_at is not None:
        note += f", heard {now - wait.last_heard_at:.0f}s ago"
    return note


# Rows per delta: 10,000 new jobs arrive in a few deltas, each a short pause for the UI.
MAX_ROWS_PER_DELTA = 2_000


class Engine:
    """Owns the watches of one dashboard; ``send`` carries its messages to the dashboard."""

    def __init__(
        self,
        client: VideoSimClient,
        config: Configure,
        send: Callable[[EngineMessage], None],
        *,
        make_client: Callable[[], VideoSimClient],
        clock: Now = time.monotonic,
    ) -> None:
        self._client = client
        self._make_client = make_client
        self._config = config
        self._send = send
        self._clock = clock
        self.board = JobBoard(history_length=config.history_length)
        self.pool = WatchPool(
            client,
            clock=clock,
            start_concurrency=config.start_concurrency,
            batch_interval_s=config.batch_interval_s,
            start_deadline_s=config.start_deadline_s,
        )
        self._sent: dict[str, RowValues] = {}  # row key -> its fields as last sent
        self._starting = 0
        self._sent_counters = (0, 0, 0, 0)  # starting, start failures, 429s, 503s, as last sent
        self._health: Health | None = None
        self._health_sent: Health | None = None
        self._follow: str | None = None
        self._history_sent = -1  # history_count of the followed job last sent; -1: none yet
        self._requests: set[asyncio.Task[None]] = set()  # record fetches in flight
        self._comparisons: dict[int, asyncio.Task[None]] = {}  # by request

    async def run(self) -> None:
        """Until cancelled: the pool's tasks, the health probe and the deltas."""
        self._send(Ready(os.getpid()))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.pool.run(self._fold))
                group.create_task(self._probe_health())
                group.create_task(self._send_deltas())
        finally:
            for task in [*self._requests, *self._comparisons.values()]:
                task.cancel()

    # -- commands from the dashboard -------------------------------------------------------

    def handle(self, command: Command) -> None:
        now = self._clock()
        match command:
            case StartJobs(specs=specs):
                self._starting += len(specs)
                self.pool.start_jobs(specs)
            case Watch() as watch:
                self._forget([watch.key])
                view = self.board.add(
                    watch.key, watch.job_id, watch.spec, watch.started_at, started_by_us=False
                )
                view.attempt, view.skipped = watch.attempt, watch.skipped
                view.requests = watch.requests
                self._sent[watch.key] = row_values(view)  # the dashboard has this row
                self.pool.watch(watch.key, watch.job_id, watch.spec)
            case Cancel(keys=keys):
                for key in keys:
                    self.pool.cancel(key)
                    self.board.cancel(key, now)
            case Forget(keys=keys):
                self._forget(keys)
                release_frozen()
            case Follow(key=key):
                self._follow, self._history_sent = key, -1
            case FetchRecord() as fetch:
                task = asyncio.create_task(self._fetch_record(fetch), name="job record")
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)
            case RunComparison() as comparison:
                task = asyncio.create_task(self._compare(comparison), name="comparison")
                self._comparisons[comparison.request] = task
                task.add_done_callback(lambda _: self._comparisons.pop(comparison.request, None))
            case StopComparison(request=request):
                if (running := self._comparisons.get(request)) is not None:
                    running.cancel()
            case Configure():
                pass  # only the first command configures

    async def _fetch_record(self, fetch: FetchRecord) -> None:
        try:
            record = await self._client.job_record(fetch.job_id)
        except Exception as exc:  # VideoSimError, or anything unexpected: the view shows it
            self._send(RecordAnswer(fetch.request, error=str(exc) or repr(exc)))
        else:
            self._send(RecordAnswer(fetch.request, record=record))

    async def _compare(self, comparison: RunComparison) -> None:
        """Its own jobs and watches, apart from the board's: each set-up on a client of its
        own (its own X-Client-Id, so one set-up's jobs never reach another's event stream
        and the server's record of a job tells what its own set-up saw)."""
        request, done = comparison.request, 0

        def progress(finished: int) -> None:
            nonlocal done
            done += finished
            self._send(ComparisonProgress(request, done))

        try:
            if comparison.scenario is not None:
                await start_timeline(self._config.url, load_scenario(comparison.scenario))
            runs = await run_comparison(
                self._make_client, comparison.presets, comparison.batch, progress, self._clock
            )
        except Exception as exc:  # a start refused, the server gone: the view says why
            error = first_error(exc)
            self._send(ComparisonDone(request, error=str(error) or type(error).__name__))
        else:
            self._send(ComparisonDone(request, runs=runs))

    def _forget(self, keys: list[str]) -> None:
        for key in keys:
            self.pool.cancel(key)
            self._sent.pop(key, None)
        self.board.remove(keys)
        self.board.take_changes()  # nothing to send about rows the dashboard dropped

    # -- what the engine tells the dashboard -------------------------------------------------

    def _fold(self, batch: PoolBatch) -> None:
        self.board.fold(batch.items)
        self._starting = batch.starting

    async def _send_deltas(self) -> None:
        frozen_at = self._clock()
        while True:
            await asyncio.sleep(self._config.batch_interval_s)
            delta = self.delta()
            if delta is not None:
                self._send(delta)
            if self._clock() - frozen_at >= FREEZE_EVERY_S:  # short GC pauses (tui.gc_pauses)
                freeze_survivors()
                frozen_at = self._clock()

    def delta(self) -> Delta | None:
        """What changed since the previous delta; None when nothing did."""
        changed, _removed = self.board.take_changes()
        for key in changed[MAX_ROWS_PER_DELTA:]:  # the rest go with the next delta
            self.board.touch(key)
        rows: dict[str, RowUpdate] = {}
        for key in changed[:MAX_ROWS_PER_DELTA]:
            view = self.board.jobs.get(key)
            if view is None:
                continue
            values = row_values(view)
            update = row_update(values, self._sent.get(key))
            if update is None:
                continue
            rows[key] = update
            self._sent[key] = values
        board = self.board
        counters = (self._starting, board.start_failures, board.rate_limited, board.unavailable)
        health = self._health if self._health != self._health_sent else None
        history = self._new_history()
        if not rows and counters == self._sent_counters and health is None and history is None:
            return None
        self._sent_counters, self._health_sent = counters, self._health
        return Delta(
            rows=rows,
            starting=counters[0],
            start_failures=counters[1],
            rate_limited=counters[2],
            unavailable=counters[3],
            health=health,
            history=history,
        )

    def _new_history(self) -> History | None:
        view = self.board.jobs.get(self._follow) if self._follow is not None else None
        if view is None or view.history_count == self._history_sent:
            return None
        reset = self._history_sent < 0
        new = view.history_count - max(self._history_sent, 0)
        records = list(view.history) if reset else list(view.history)[-new:]
        self._history_sent = view.history_count
        return History(view.key, reset, records)

    async def _probe_health(self) -> None:
        """GET /healthz every interval (the client probes an original-API server, which
        has no health route, with the special job's status instead, and says so)."""
        while True:
            check = await self._client.health()
            note = ""
            if not check.health_route:
                profile = self._client.profile
                note = ORIGINAL_API
                if profile is not None and not profile.native:
                    note = f"{profile.title}, no health route"
            elif check.degraded:
                note = "at its job cap: new starts wait"
            push_note = self._note_push_waits()
            self._health = Health(
                check.ok, check.latency_s, check.error, note, self._client.circuit_open, push_note
            )
            await asyncio.sleep(self._config.health_interval_s)

    def _note_push_waits(self) -> str:
        """Rows whose watch waits for a pushed end show the route (their Next cell says
        "push"); returns how the event stream is doing, for the detail view: a watch that
        sends nothing is visibly alive."""
        stream: PushWait | None = None
        for key, view in self.board.jobs.items():
            if view.finished or view.reason is not None:
                continue  # ended, or it polls: its events say how
            wait = self._client.push_wait(view.job_id)
            if wait is None:
                continue
            if wait.route is Route.STREAM and stream is None:
                stream = wait
            strategy = PUSH_ROUTES.get(wait.route)
            if strategy is not None and view.strategy is not strategy:
                view.strategy = strategy
                self.board.touch(key)
        return "" if stream is None else stream_note(stream, self._client.clock.now())
