"""Dashboard: how the table copes with thousands of jobs, headless, through the app's own code.

Everything runs in Textual's headless pilot (``App.run_test``) on an app built by
``tui.app.make_app``, fed the same way the watch pool feeds it (``PollEventsBatch``).

- Boards of growing size (no server): N jobs arrive in one batch; then a burst of one
  ``PollEvent`` per job arrives in one batch, and we time until the first row shows the
  new attempt and the screen is composed (the app refreshes the table at ~10 Hz, so up
  to one frame interval is part of what a user waits). Then keypress latency.
- Live (real server, no hints or long-poll): N pending jobs (made beforehand by the load
  generator) handed to the app, whose engine watches them on a fixed schedule (one poll
  every 10 s, +/-20 %). Once each job has been polled, keys are pressed and the status
  requests over one interval are counted against the plan (jobs / interval); the section
  fails below 80 % of it, so the row is measured while the engine really polls.

Keypress latency is measured two ways: the pilot's ``press`` + ``pause`` (waits until the
app is idle: an upper bound), and key event -> the first screen update composed after the
key took effect (by timestamping ``App._display``, Textual's hook for each composed
update; in headless mode that includes compositing but not writing to a terminal).
Each is compared with the same measurement on a board of ten jobs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from textual import events

from bench.load_generator import default_tool, generate_load
from bench.report import Column, SectionResult, Table, ratio
from bench.server_process import ServerProcess
from client_core import BackoffPolicy, DelayReason, PollEvent, Strategy
from client_core.comparison_report import percentile
from tui.app import VideoSimApp, make_app
from tui.messages import PollEventsBatch
from tui.model import JobSpec, SortColumn
from tui.settings import DashboardSettings
from tui.watch_pool import JobStarted, PoolBatch, WatchEvent

SCREEN = (120, 40)
# Cursor moves, then filter / sort changes that re-lay out the whole table.
KEYS = ("down", "down", "up", "f", "f", "f", "f", "f", "f", "o", "O", "o")
PILOT_KEYS = ("down", "up", "o", "O")  # each press + pause costs ~0.1-1 s of waiting for idle
BURSTS = 3  # bursts per board; the median is reported
WAIT_S = 60.0  # cap on every wait below


@dataclass(frozen=True, slots=True)
class DashboardSizes:
    boards: tuple[int, ...]  # jobs on the board, smallest first (the baseline)
    live_jobs: int  # 0 = skip the live measurement


FULL = DashboardSizes(boards=(10, 2_000), live_jobs=2_000)
QUICK = DashboardSizes(boards=(10, 100), live_jobs=50)


# --- timing helpers ------------------------------------------------------------------------


class CallTimer:
    """Wall time of every call of one app method, wrapped on the instance before mount
    (so timers registered at mount, like the frame refresh, call the timed version)."""

    def __init__(self, app: VideoSimApp, name: str) -> None:
        self.samples: list[float] = []
        original: Callable[..., Any] = getattr(app, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.samples.append(time.perf_counter() - began)

        setattr(app, name, timed)

    def ms(self) -> list[float]:
        return [sample * 1000 for sample in self.samples]


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.002)


def view_state(app: VideoSimApp) -> tuple[object, ...]:
    return (app.state_filter, app.sort_column, app.sort_reverse, app.table.cursor_row)


class ScreenUpdates:
    """When the screen first showed something: checked as each update is composed.

    Wraps ``App._display`` (private; Textual calls it with every composed screen update,
    headless included) and evaluates the awaited condition right there, so the time
    returned is that of the first composed update in which the condition held.
    """

    def __init__(self, app: VideoSimApp) -> None:
        self._app = app
        self._condition: Callable[[], bool] | None = None
        self._shown_at: float | None = None
        self._shown = asyncio.Event()
        original = getattr(app, "_display", None)
        self.available = original is not None
        if original is None:
            return

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is not None and self._condition is not None and self._condition():
                self._shown_at = time.perf_counter()
                self._condition = None
                self._shown.set()

        app._display = display  # type: ignore[method-assign]

    async def first_showing(self, condition: Callable[[], bool], what: str) -> float:
        """perf_counter() of the first composed update after now in which ``condition``."""
        if not self.available:  # no hook in this Textual: when the state shows it
            await wait_until(condition, what)
            return time.perf_counter()
        self._shown.clear()
        self._condition = condition
        try:
            await asyncio.wait_for(self._shown.wait(), timeout=WAIT_S)
        except TimeoutError:
            raise RuntimeError(f"no screen update showed {what} within {WAIT_S:g} s") from None
        assert self._shown_at is not None
        return self._shown_at


async def pilot_key_latency(pilot: Any) -> list[float]:
    """``pilot.press`` + ``pilot.pause`` per key, in ms (waits for the app to go idle)."""
    samples = []
    for key in PILOT_KEYS:
        began = time.perf_counter()
        await pilot.press(key)
        await pilot.pause()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def key_to_frame_latency(app: VideoSimApp, screen: ScreenUpdates) -> list[float] | None:
    """Key event sent -> first composed screen update showing its effect, in ms."""
    driver = app._driver
    if not screen.available or driver is None:
        return None
    samples = []
    for key in KEYS:
        before = view_state(app)
        sent = time.perf_counter()
        driver.send_message(events.Key(key, key if len(key) == 1 else None))
        shown = await screen.first_showing(
            lambda before=before: view_state(app) != before, f"key {key}"
        )
        samples.append((shown - sent) * 1000)
        await asyncio.sleep(0.02)
    return samples


# --- boards without a server ---------------------------------------------------------------


def pending_event(job_id: str, attempt: int) -> PollEvent:
    return PollEvent(
        job_id=job_id,
        attempt=attempt,
        status="pending",
        outcome=None,
        next_delay_s=2.0,
        reason=DelayReason.SCHEDULE,
        elapsed_s=float(attempt),
        strategy=Strategy.BACKOFF,
        http_status=200,
    )


async def measure_board(jobs: int) -> dict[str, Any]:
    """Add ``jobs`` rows in one batch, then one event per job in one batch, then keys."""
    app = make_app(settings=DashboardSettings(connect=False))
    frames = CallTimer(app, "refresh_view")
    ingests = CallTimer(app, "ingest")
    screen = ScreenUpdates(app)
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(jobs)]
    async with app.run_test(size=SCREEN) as pilot:
        await pilot.pause()
        now = app.clock()
        started = [JobStarted(job_id, job_id, JobSpec(), now) for job_id in ids]
        began = time.perf_counter()
        app.post_message(PollEventsBatch(PoolBatch(items=list(started))))
        shown = await screen.first_showing(lambda: app.table.row_count == jobs, "every row")
        add_ms = (shown - began) * 1000

        first = ids[0]  # sorted by arrival, so on screen
        bursts: list[dict[str, float | None]] = []
        for attempt in range(1, BURSTS + 1):
            frames.samples.clear()
            ingests.samples.clear()
            burst = [
                WatchEvent(job_id, pending_event(job_id, attempt), app.clock()) for job_id in ids
            ]
            began = time.perf_counter()
            app.post_message(PollEventsBatch(PoolBatch(items=burst)))
            text = str(attempt)
            shown = await screen.first_showing(
                lambda text=text: app.table.get_cell(first, SortColumn.ATTEMPT).plain == text,
                "the burst",
            )
            bursts.append(
                {
                    "to_screen_ms": (shown - began) * 1000,
                    "ingest_ms": sum(ingests.ms()),
                    "slowest_frame_ms": max(frames.ms(), default=None),
                }
            )

        await asyncio.sleep(0.2)  # let the last burst's frames pass
        to_frame = await key_to_frame_latency(app, screen)
        by_pilot = await pilot_key_latency(pilot)
    return {
        "jobs": jobs,
        "add_ms": add_ms,
        "burst_ms": _median_of(bursts, "to_screen_ms"),
        "burst_ingest_ms": _median_of(bursts, "ingest_ms"),
        "burst_frame_ms": _median_of(bursts, "slowest_frame_ms"),
        "bursts": bursts,
        "key_to_frame_ms": to_frame,
        "pilot_key_ms": by_pilot,
    }


# --- live ----------------------------------------------------------------------------------


def engine_ready(app: VideoSimApp) -> bool:
    """The app's client is open and can start jobs."""
    if hasattr(app, "connected"):
        return bool(app.connected)
    return getattr(app, "pool", None) is not None


def create_jobs(base_url: str, jobs: int) -> list[str]:
    """``jobs`` pending jobs made by the load generator, faster than the app's own spawn
    path (~100 starts/s with a busy UI; ``bench/tui_load.py`` measures that one)."""
    count_url = f"{base_url}/healthz"
    generate_load(
        default_tool(),
        f"{base_url}/start",
        connections=16,
        seconds=WAIT_S,
        method="POST",
        stop_after=jobs,
        count_so_far=lambda: int(httpx.get(count_url, timeout=5).json()["jobs"]),
    )
    ids: list[str] = []
    with httpx.Client(base_url=base_url, timeout=10) as http:
        while len(ids) < jobs:
            page = http.get("/jobs", params={"offset": len(ids), "limit": 1000}).json()
            if not page["jobs"]:
                raise RuntimeError(f"only {len(ids)} jobs were created, {jobs} needed")
            ids += [job["job_id"] for job in page["jobs"]]
    return ids[:jobs]


LIVE_INTERVAL_S = 10.0  # each live job polls this often (+/-20 %): plan = jobs / interval
LIVE_MIN_SHARE = 0.8  # the section fails when the engine achieves less of the plan


async def measure_live(base_url: str, job_ids: list[str]) -> dict[str, Any]:
    """The app watches every job on a fixed schedule; once each has had its first poll,
    keys are pressed and the status requests over one poll interval are counted against
    the plan (jobs / interval): the row is only "live" if the engine keeps polling."""
    policy = BackoffPolicy(
        initial_s=LIVE_INTERVAL_S, multiplier=1.0, max_delay_s=LIVE_INTERVAL_S, jitter_ratio=0.2
    )
    spec = JobSpec(strategy=Strategy.BACKOFF, policy=policy)
    app = make_app(settings=DashboardSettings(server_url=base_url, strategy=Strategy.BACKOFF))
    screen = ScreenUpdates(app)
    frames = CallTimer(app, "refresh_view")
    ingests = CallTimer(app, "engine_delta")
    jobs = len(job_ids)
    async with app.run_test(size=SCREEN):
        await wait_until(lambda: engine_ready(app), "the client")
        began = time.perf_counter()
        for job_id in job_ids:
            app.watch_existing(job_id, replace(spec, job_id=job_id))
        rows_at = await screen.first_showing(lambda: app.table.row_count == jobs, "every row")
        await wait_until(lambda: all(view.attempt > 0 for view in app.board), "first polls")
        polled_after_s = time.perf_counter() - began
        requests_before = sum(view.requests for view in app.board)
        measuring = time.perf_counter()
        to_frame = await key_to_frame_latency(app, screen)
        await asyncio.sleep(max(0.0, LIVE_INTERVAL_S - (time.perf_counter() - measuring)))
        window = time.perf_counter() - measuring
        requests = sum(view.requests for view in app.board) - requests_before
        live = sum(not view.finished for view in app.board)
    return {
        "jobs": jobs,
        "live": live,
        "rows_on_screen_s": rows_at - began,
        "polled": jobs,
        "polled_after_s": polled_after_s,
        "requests_per_s": requests / window,
        "planned_per_s": live / LIVE_INTERVAL_S,
        "frame_ms": frames.ms(),
        "ingest_ms": ingests.ms(),
        "key_to_frame_ms": to_frame,
        "pilot_key_ms": None,  # never idle while polling: press + pause only hits its caps
    }


def live_section(jobs: int) -> dict[str, Any]:
    # every job stays pending throughout; no hints or long-poll: the schedule is the plan
    flags = ("--seed", "1", "--delay", "600", "--no-hints", "--long-poll-max", "0")
    with ServerProcess.videosim(*flags) as server:
        job_ids = create_jobs(server.url, jobs)
        return asyncio.run(measure_live(server.url, job_ids))


# --- the section -----------------------------------------------------------------------------


def _median_of(rows: list[dict[str, float | None]], key: str) -> float | None:
    return _median([value for row in rows if (value := row[key]) is not None])


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _max(values: list[float] | None) -> float | None:
    return max(values) if values else None


def run(quick: bool = False) -> SectionResult:
    sizes = QUICK if quick else FULL
    result = SectionResult(
        name="tui",
        title="Dashboard: event bursts and keypress latency with thousands of jobs (headless)",
        parameters={
            "boards": list(sizes.boards),
            "live_jobs": sizes.live_jobs,
            "screen": list(SCREEN),
            "keys": list(KEYS),
            "frame_interval_s": DashboardSettings().frame_interval_s,
        },
    )
    boards = [asyncio.run(measure_board(jobs)) for jobs in sizes.boards]
    baseline = boards[0]
    burst = Table(
        title=f"Event burst: one PollEvent per job in one batch -> first row updated and "
        f"screen composed (median of {BURSTS})",
        columns=[
            Column("jobs", "jobs on board", "{:,}"),
            Column("add_ms", "add all rows ms", "{:,.0f}"),
            Column("burst_ms", "burst -> screen ms", "{:,.0f}"),
            Column("burst_ingest_ms", "ingest ms", "{:,.1f}"),
            Column("burst_frame_ms", "slowest frame ms", "{:,.1f}"),
            Column("burst_vs_small", "burst vs smallest", "{:.1f}x"),
        ],
        caption="burst -> screen includes waiting for the next ~10 Hz frame; ingest: model "
        "update; frame: table + summary refresh",
    )
    keys = Table(
        title=f"Keypress -> screen ({len(KEYS)} keys: cursor, filter, sort)",
        columns=[
            Column("board", "board"),
            Column("frame_p50", "key->frame p50 ms", "{:.1f}"),
            Column("frame_max", "key->frame max ms", "{:.1f}"),
            Column("frame_vs_small", "p50 vs smallest", "{:.1f}x"),
            Column("pilot_p50", f"pilot press+pause p50 ms ({len(PILOT_KEYS)} keys)", "{:.1f}"),
            Column("pilot_max", "pilot max ms", "{:.1f}"),
        ],
        caption="key->frame: key event sent until the first composed update after it took "
        "effect; pilot: press + pause (waits for idle, an upper bound)",
    )
    base_frame = _median(baseline["key_to_frame_ms"])
    for board in boards:
        burst.add(
            jobs=board["jobs"],
            add_ms=board["add_ms"],
            burst_ms=board["burst_ms"],
            burst_ingest_ms=board["burst_ingest_ms"],
            burst_frame_ms=board["burst_frame_ms"],
            burst_vs_small=ratio(board["burst_ms"], baseline["burst_ms"]),
        )
        keys.add(**_key_row(f"{board['jobs']:,} jobs, idle", board, base_frame))
    if sizes.live_jobs:
        live = live_section(sizes.live_jobs)
        achieved, planned = live["requests_per_s"], live["planned_per_s"]
        label = (
            f"{live['live']:,} live jobs polling ({achieved:.0f} of {planned:.0f} planned req/s)"
        )
        keys.add(**_key_row(label, live, base_frame))
        if achieved < LIVE_MIN_SHARE * planned:  # the row is printed, then the run fails
            result.failures.append(
                f"live row not polling: {achieved:.0f} status requests/s, "
                f"below {LIVE_MIN_SHARE:.0%} of the {planned:.0f}/s planned"
            )
        result.details["live"] = live
        frame_ms, ingest_ms = live["frame_ms"], live["ingest_ms"]
        result.notes.append(
            f"live: {live['jobs']:,} pending jobs (created beforehand) handed to the app: all "
            f"rows on screen after {live['rows_on_screen_s']:.2f} s, every job polled once "
            f"after {live['polled_after_s']:.1f} s; then keys and one poll interval "
            f"({LIVE_INTERVAL_S:.0f} s): {live['requests_per_s']:.0f} status requests/s of "
            f"{live['planned_per_s']:.0f} planned; frames took "
            f"median {_median(frame_ms) or 0:.1f} ms, max {_max(frame_ms) or 0:.1f} ms; "
            f"batches median {_median(ingest_ms) or 0:.1f} ms, "
            f"p95 {percentile(ingest_ms, 95) or 0:.1f} ms"
        )
    result.tables += [burst, keys]
    result.details["boards"] = boards
    return result


def _key_row(label: str, measured: dict[str, Any], base_frame: float | None) -> dict[str, Any]:
    frame = measured["key_to_frame_ms"]
    return {
        "board": label,
        "frame_p50": _median(frame),
        "frame_max": _max(frame),
        "frame_vs_small": ratio(_median(frame), base_frame),
        "pilot_p50": _median(measured["pilot_key_ms"]),
        "pilot_max": _max(measured["pilot_key_ms"]),
    }
