"""Load the dashboard: thousands of live jobs, a burst of events, and keypress latency.

Two measurements, both through the app's real code paths in a headless Textual pilot:

- ``live``: a real server (``python -m server --no-hints`` child, jobs long enough to stay
  pending). The app spawns ``--spawn`` jobs on an empty board, then the rest up to
  ``--jobs`` while the first ones poll (starts/s both times). Then, over a steady window
  while every job polls about every ``--poll-every`` s (far more than one process can
  send, so the rate measured is what the engine manages): status requests/s, CPU of the
  UI thread and of the engine process, each frame's model -> table sync, each screen
  update's layout and rendering (CPU), each ``PollEventsBatch``. Then key latency: key
  event -> handled and -> repainted, and the pilot way (press + pause, an upper bound).
  ``--profile`` samples the UI thread with pyinstrument over the window (sampling slows
  it down: compare profiled runs with each other only).
- ``burst``: no server; N synthetic jobs, then one ``PollEventsBatch`` message carrying M
  poll events, posted like the watch pool posts them. Reports the time until the message
  is handled and the table shows the last event.

    .venv/bin/python bench/tui_load.py                    # 2000 live jobs, 20000-event burst
    .venv/bin/python bench/tui_load.py --only live --profile /tmp/ui.html
    .venv/bin/python bench/tui_load.py --jobs 500 --burst 5000 --seconds 5

Timings depend on the machine; compare runs made on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from pyinstrument import Profiler
from textual import events
from textual.screen import Screen

from client_core import BackoffPolicy, ClientOptions, DelayReason, Jitter, PollEvent, Strategy
from tui.app import VideoSimApp, make_app
from tui.embedded import EmbeddedServer
from tui.messages import PollEventsBatch
from tui.model import JobSpec, SortColumn, SpawnRequest
from tui.settings import DashboardSettings
from tui.watch_pool import JobStarted, PoolBatch, WatchEvent

SIZE = (120, 40)
KEYS = ("f", "f", "f", "f", "f", "f", "o", "down", "down", "up", "O", "o")


class Timings:
    """Wall time of every call of one app method, patched on the class (so the frame timer,
    which holds the bound method from mount time, calls the timed version too)."""

    def __init__(self, name: str) -> None:
        self.samples: list[float] = []
        self.name = name
        self.original: Callable[..., Any] = getattr(VideoSimApp, name)

        def timed(app: VideoSimApp, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return self.original(app, *args, **kwargs)
            finally:
                self.samples.append(time.perf_counter() - began)

        setattr(VideoSimApp, name, timed)

    def restore(self) -> None:
        setattr(VideoSimApp, self.name, self.original)

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        ms = sorted(sample * 1000 for sample in self.samples)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        return (
            f"n={len(ms)} median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, "
            f"max {ms[-1]:.1f} ms"
        )


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    began = time.perf_counter()
    while not condition():
        if time.perf_counter() - began > timeout_s:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.perf_counter() - began


async def keypress_latency(pilot: Any) -> list[float]:
    """The pilot way: press, then ``await pilot.pause()``. Includes the pilot's own waits
    for an idle process, so it is an upper bound (a busy process is never idle)."""
    samples = []
    for key in KEYS:
        began = time.perf_counter()
        await pilot.press(key)
        await pilot.pause()
        samples.append(time.perf_counter() - began)
    return samples


async def key_to_display(app: VideoSimApp) -> tuple[list[float], list[float]]:
    """Key event sent to the app -> the first screen update composed after it was handled.

    Wraps ``App._display`` (called with each composed screen update) to timestamp repaints;
    the key's effect is checked on the app's state, so the repaint found includes it.
    Returns (sent -> handled, sent -> repainted) per key."""
    displays: list[float] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            displays.append(time.perf_counter())
        original(screen, renderable)

    def view_state() -> tuple[object, ...]:
        return (app.state_filter, app.sort_column, app.sort_reverse, app.table.cursor_row)

    async def one_key(key: str) -> None:
        before = view_state()
        driver = app._driver
        assert driver is not None
        sent = time.perf_counter()
        driver.send_message(events.Key(key, key if len(key) == 1 else None))
        await wait_until(lambda: view_state() != before, 10, f"key {key}")
        handled = time.perf_counter()
        await wait_until(lambda: bool(displays) and displays[-1] > handled, 10, "a repaint")
        handled_after.append(handled - sent)
        repainted_after.append(displays[-1] - sent)

    app._display = display  # type: ignore[method-assign]
    handled_after: list[float] = []
    repainted_after: list[float] = []
    try:
        for key in KEYS:
            await one_key(key)
            await asyncio.sleep(0.05)
    finally:
        app._display = original  # type: ignore[method-assign]
    return handled_after, repainted_after


def latency_summary(samples: list[float]) -> str:
    ms = sorted(sample * 1000 for sample in samples)
    return (
        f"n={len(ms)} median {statistics.median(ms):.1f} ms, "
        f"p95 {ms[min(len(ms) - 1, int(len(ms) * 0.95))]:.1f} ms, max {ms[-1]:.1f} ms"
    )


def steady_policy(poll_every_s: float) -> BackoffPolicy:
    """Every job polls about every ``poll_every_s`` (+/-20%); 0 = the library default
    (0.25 s x1.6 up to 10 s), whose 2,000 jobs ask for only ~200 requests/s once settled."""
    if poll_every_s <= 0:
        return BackoffPolicy()
    return BackoffPolicy(
        initial_s=poll_every_s,
        multiplier=1.0,
        max_delay_s=poll_every_s,
        jitter=Jitter.PROPORTIONAL,
        jitter_ratio=0.2,
    )


class ScreenUpdates:
    """CPU time of each screen update: Textual's layout + compositing, where the table's
    lines are rendered. Wraps ``Screen._on_timer_update`` (private; the screen's update
    timer calls it whenever a widget asked for a refresh)."""

    def __init__(self) -> None:
        self.cpu_ms: list[float] = []
        self.original = Screen._on_timer_update
        original, cpu_ms = self.original, self.cpu_ms

        def on_timer_update(screen: Screen[Any]) -> None:
            began = time.thread_time()
            original(screen)
            cpu_ms.append((time.thread_time() - began) * 1000)

        Screen._on_timer_update = on_timer_update  # type: ignore[method-assign]

    def restore(self) -> None:
        Screen._on_timer_update = self.original  # type: ignore[method-assign]


def top_frames(session: Any, count: int = 25) -> list[tuple[float, str]]:
    """Functions by inclusive time (each stack counted once), as (% of the window, name)."""
    inclusive: dict[str, float] = {}

    def visit(frame: Any, above: frozenset[str]) -> None:
        where = f"{frame.file_path_short}:{frame.line_no}" if frame.file_path_short else ""
        name = f"{frame.function}  {where}"
        if name not in above:
            inclusive[name] = inclusive.get(name, 0.0) + frame.time
        for child in frame.children:
            visit(child, above | {name})

    visit(session.root_frame(), frozenset())
    ranked = sorted(inclusive.items(), key=lambda item: item[1], reverse=True)[:count]
    return [(100 * seconds / session.duration, name) for name, seconds in ranked]


def report_profile(profiler: Profiler, path: str) -> None:
    """Save the HTML and the session (``pyinstrument --load``), print the top frames."""
    Path(path).write_text(profiler.output_html())
    session = profiler.last_session
    if session is None:
        return
    session.save(str(Path(path).with_suffix(".pyisession")))
    print(f"live: UI thread profile saved to {path}; top frames (inclusive):")
    for share, name in top_frames(session, count=40):
        print(f"  {share:5.1f}%  {name}")


async def spawn_and_wait(
    app: VideoSimApp, count: int, policy: BackoffPolicy, duration_s: float
) -> float:
    """Spawn ``count`` jobs through the app's spawn path; seconds until all are on the board."""
    target = len(app.board) + count
    began = time.perf_counter()
    app.spawn(
        SpawnRequest(
            count=count,
            duration_min_s=duration_s,
            duration_max_s=duration_s,
            strategy=Strategy.BACKOFF,
            policy=policy,
        )
    )
    await wait_until(
        lambda: len(app.board) >= target and app.board.starting == 0, 900, "the starts"
    )
    return time.perf_counter() - began


async def live(
    url: str,
    jobs: int,
    spawn: int,
    duration_s: float,
    seconds: float,
    policy: BackoffPolicy,
    profile: str | None,
    client_options: ClientOptions,
) -> None:
    settings = DashboardSettings(
        server_url=url,
        strategy=Strategy.BACKOFF,
        policy=policy,
        start_concurrency=32,
        client_options=client_options,
    )
    frames, batches = Timings("refresh_view"), Timings("engine_delta")
    screen = ScreenUpdates()
    app = make_app(settings=settings)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.connected, 20, "the client")
            first = min(spawn, jobs)
            spawn_s = await spawn_and_wait(app, first, policy, duration_s)
            print(
                f"live: spawn {first} jobs, empty board: {spawn_s:.1f} s "
                f"({first / spawn_s:.0f} starts/s)"
            )
            if jobs > first:
                more_s = await spawn_and_wait(app, jobs - first, policy, duration_s)
                print(
                    f"live: spawn {jobs - first} more while {first} poll: {more_s:.1f} s "
                    f"({(jobs - first) / more_s:.0f} starts/s)"
                )
            await wait_until(lambda: app.table.row_count == jobs, 60, "all rows")
            await asyncio.sleep(2)  # let the last starts' first polls settle
            assert app.engine is not None and app.engine.pid is not None
            engine = psutil.Process(app.engine.pid)

            def engine_cpu() -> float:
                times = engine.cpu_times()
                return float(times.user + times.system)

            ui_cpu = time.thread_time
            for timings in (frames, batches):
                timings.samples.clear()
            screen.cpu_ms.clear()
            profiler = Profiler(interval=0.001, async_mode="disabled") if profile else None
            requests_before = sum(view.requests for view in app.board)
            ui_before, engine_before, began = ui_cpu(), engine_cpu(), time.perf_counter()
            if profiler is not None:
                profiler.start()
            await asyncio.sleep(seconds)
            if profiler is not None:
                profiler.stop()
            wall = time.perf_counter() - began
            requests = sum(view.requests for view in app.board) - requests_before
            live_jobs = sum(not view.finished for view in app.board)
            print(
                f"live: {live_jobs} jobs polling, {requests / wall:.0f} status requests/s over "
                f"{wall:.0f} s; CPU: UI thread {100 * (ui_cpu() - ui_before) / wall:.0f}%, "
                f"engine process {100 * (engine_cpu() - engine_before) / wall:.0f}%"
            )
            print(f"live: frame (table + summary refresh)  {frames.summary()}")
            print(f"live: screen updates (layout + render) {cpu_summary(screen.cpu_ms, wall)}")
            print(f"live: engine delta handling           {batches.summary()}")
            if profiler is not None and profile is not None:
                report_profile(profiler, profile)
            record_s = await record_latency(app)
            print(f"live: detail view's job record (GET /jobs/id)  {latency_summary(record_s)}")
            handled, repainted = await key_to_display(app)
            print(f"live: keys {' '.join(KEYS)}")
            print(f"live: key event -> handled     {latency_summary(handled)}")
            print(f"live: key event -> repainted   {latency_summary(repainted)}")
            latency = await keypress_latency(pilot)
            print(f"live: pilot press + pause                  {latency_summary(latency)}")
    finally:
        for patch in (frames, batches, screen):
            patch.restore()


async def record_latency(app: VideoSimApp, count: int = 5) -> list[float]:
    """What the detail view waits for its server record while every job polls."""
    job_ids = [view.job_id for view in list(app.board)[:count]]
    samples = []
    for job_id in job_ids:
        began = time.perf_counter()
        await app.call_client(lambda client, job_id=job_id: client.job_record(job_id), quick=True)
        samples.append(time.perf_counter() - began)
    return samples


def cpu_summary(cpu_ms: list[float], wall_s: float) -> str:
    if not cpu_ms:
        return "none"
    ms = sorted(cpu_ms)
    return (
        f"{len(ms) / wall_s:.1f}/s, CPU median {statistics.median(ms):.1f} ms, "
        f"p95 {ms[min(len(ms) - 1, int(len(ms) * 0.95))]:.1f} ms, "
        f"{sum(ms) / wall_s / 10:.0f}% of a core"
    )


async def live_with_server(args: argparse.Namespace) -> None:
    server = EmbeddedServer(args=["--delay", str(args.duration), "--seed", "1", "--no-hints"])
    server.spawn()
    try:
        await server.wait_ready()
        policy = steady_policy(args.poll_every)
        client_options = ClientOptions()
        if args.max_in_flight:
            client_options = replace(client_options, max_in_flight=args.max_in_flight)
        print(f"live: policy {policy.describe()}; server --no-hints, jobs of {args.duration:g} s")
        await live(
            server.url,
            args.jobs,
            args.spawn,
            args.duration,
            args.seconds,
            policy,
            args.profile,
            client_options,
        )
    finally:
        server.stop()


def synthetic_event(job_id: str, attempt: int, next_delay_s: float = 2.0) -> PollEvent:
    return PollEvent(
        job_id=job_id,
        attempt=attempt,
        status="pending",
        outcome=None,
        next_delay_s=next_delay_s,
        reason=DelayReason.SCHEDULE,
        elapsed_s=float(attempt),
        strategy=Strategy.BACKOFF,
        http_status=200,
    )


async def frames(jobs: int, seconds: float, events_per_s: int) -> None:
    """The UI's cost alone, without an engine competing for the interpreter: ``jobs``
    synthetic live jobs (every visible countdown and elapsed time ticks), and poll events
    for random jobs at ``events_per_s``, posted every 0.1 s the way the pool posts them.
    Reports the CPU time of each frame's model -> table sync and of each screen update."""
    clock = time.monotonic
    frame_timings = Timings("refresh_view")
    screen = ScreenUpdates()
    app = make_app(settings=DashboardSettings(connect=False), clock=clock)
    rng = random.Random(1)
    try:
        async with app.run_test(size=SIZE):
            ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(jobs)]
            started = [JobStarted(job_id, job_id, JobSpec(), clock()) for job_id in ids]
            app.post_message(PollEventsBatch(PoolBatch(items=list(started))))
            await wait_until(lambda: app.table.row_count == jobs, 60, "rows")
            attempts = dict.fromkeys(ids, 0)
            frame_timings.samples.clear()
            screen.cpu_ms.clear()
            cpu_before, began = time.thread_time(), time.perf_counter()
            while time.perf_counter() - began < seconds:
                items = []
                for job_id in rng.sample(ids, min(jobs, events_per_s // 10)):
                    attempts[job_id] += 1
                    event = synthetic_event(job_id, attempts[job_id], rng.uniform(5.0, 10.0))
                    items.append(WatchEvent(job_id, event, clock()))
                app.post_message(PollEventsBatch(PoolBatch(items=items)))
                await asyncio.sleep(0.1)
            wall = time.perf_counter() - began
            cpu = time.thread_time() - cpu_before
            print(
                f"frames: {jobs} live jobs, {events_per_s} poll events/s, no engine: "
                f"UI thread {100 * cpu / wall:.0f}% of a core"
            )
            print(f"frames: model -> table sync  {frame_timings.summary()}")
            print(f"frames: screen updates       {cpu_summary(screen.cpu_ms, wall)}")
    finally:
        frame_timings.restore()
        screen.restore()


async def burst(jobs: int, events: int) -> None:
    clock = time.monotonic
    frames, ingests = Timings("refresh_view"), Timings("ingest")
    app = make_app(settings=DashboardSettings(connect=False), clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(jobs)]
        started = [JobStarted(job_id, job_id, JobSpec(), clock()) for job_id in ids]
        began = time.perf_counter()
        app.post_message(PollEventsBatch(PoolBatch(items=list(started))))
        add_s = await wait_until(lambda: app.table.row_count == jobs, 60, "rows")
        print(f"burst: {jobs} new jobs in one batch, on screen in {add_s * 1000:.0f} ms")
        rounds = max(1, events // jobs)
        items = [
            WatchEvent(job_id, synthetic_event(job_id, attempt), clock())
            for attempt in range(1, rounds + 1)
            for job_id in ids
        ]
        first_key, last_key = ids[0], ids[-1]
        frames.samples.clear()
        ingests.samples.clear()
        began = time.perf_counter()
        app.post_message(PollEventsBatch(PoolBatch(items=list(items))))
        await wait_until(
            lambda: app.table.get_cell(first_key, SortColumn.ATTEMPT).plain == str(rounds),
            60,
            "the burst",
        )
        await pilot.pause()
        burst_s = time.perf_counter() - began
        print(
            f"burst: {len(items)} events in one PollEventsBatch -> table shows them and "
            f"screen composed in {burst_s * 1000:.0f} ms "
            f"(ingest {ingests.summary()}; frames {frames.summary()})"
        )
        began = time.perf_counter()
        await pilot.press("ctrl+end")  # rows off screen catch up when they scroll into view
        await wait_until(
            lambda: app.table.get_cell(last_key, SortColumn.ATTEMPT).plain == str(rounds),
            10,
            "the last row",
        )
        print(
            f"burst: scroll to the last row -> it shows its newest values in "
            f"{(time.perf_counter() - began) * 1000:.0f} ms"
        )
        await pilot.press("ctrl+home")
        handled, repainted = await key_to_display(app)
        print(f"burst: key event -> handled, {jobs} rows    {latency_summary(handled)}")
        print(f"burst: key event -> repainted, {jobs} rows  {latency_summary(repainted)}")
        latency = await keypress_latency(pilot)
        print(f"burst: pilot press + pause, {jobs} rows     {latency_summary(latency)}")
    frames.restore()
    ingests.restore()


async def screenshot(path: str) -> None:
    """The picture in docs/tui.md: a real server, a dozen jobs of every kind, mid-run."""
    server = EmbeddedServer(args=["--delay", "4", "--seed", "3"])
    server.spawn()
    try:
        await server.wait_ready()
        settings = DashboardSettings(
            server_url=server.url,
            strategy=Strategy.BACKOFF,
            policy=BackoffPolicy(initial_s=0.5, multiplier=1.6, max_delay_s=4.0),
            spawn_seed=3,
        )
        app = make_app(settings=settings)
        async with app.run_test(size=(110, 30)) as pilot:
            await wait_until(lambda: app.connected and app.health.ok is True, 20, "the server")
            for strategy, count, low, high in (
                (Strategy.BACKOFF, 6, 1.0, 9.0),
                (Strategy.HINTED, 3, 2.0, 8.0),
                (Strategy.LONG_POLL, 3, 2.0, 12.0),
            ):
                app.spawn(
                    SpawnRequest(
                        count=count,
                        duration_min_s=low,
                        duration_max_s=high,
                        strategy=strategy,
                        policy=settings.policy,
                    )
                )
            await asyncio.sleep(0.5)
            app.watch_existing(
                "special-pending-job",
                JobSpec(
                    strategy=Strategy.BACKOFF,
                    policy=BackoffPolicy.original(retries=3),
                    job_id="special-pending-job",
                ),
            )
            await asyncio.sleep(4.5)
            await pilot.press("down", "down")
            await pilot.press("c")
            await asyncio.sleep(0.5)
            await pilot.pause()
            app.save_screenshot(Path(path).name, path=str(Path(path).parent))
            print(f"saved {path}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="live jobs (and burst rows)")
    parser.add_argument(
        "--spawn", type=int, default=1000, help="live: jobs spawned on the empty board first"
    )
    parser.add_argument("--duration", type=float, default=400.0, help="live jobs' duration (s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady-state window (s)")
    parser.add_argument(
        "--poll-every",
        type=float,
        default=1.0,
        metavar="S",
        help="live: each job polls about every S s (0: the library default backoff)",
    )
    parser.add_argument(
        "--profile", metavar="HTML", help="live: pyinstrument the UI thread over the window"
    )
    parser.add_argument(
        "--max-in-flight", type=int, metavar="N", help="live: the client's in-flight cap"
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        metavar="S",
        help="live: sys.setswitchinterval(S) for the run (the GIL hand-over interval)",
    )
    parser.add_argument("--burst", type=int, default=20000, help="events in the burst")
    parser.add_argument("--events", type=int, default=300, help="frames: poll events per second")
    parser.add_argument("--only", choices=["live", "burst", "frames"])
    parser.add_argument(
        "--screenshot", metavar="SVG", help="only save a screenshot, e.g. docs/dashboard.svg"
    )
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.screenshot:
        asyncio.run(screenshot(args.screenshot))
        return
    if args.only in (None, "burst"):
        asyncio.run(burst(args.jobs, args.burst))
    if args.only in (None, "frames"):
        asyncio.run(frames(args.jobs, args.seconds, args.events))
    if args.only in (None, "live"):
        asyncio.run(live_with_server(args))


if __name__ == "__main__":
    main()
