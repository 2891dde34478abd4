"""Load the dashboard: thousands of live jobs, a burst of events, and keypress latency.

Two measurements, both through the app's real code paths in a headless Textual pilot:

- ``live``: a real server (``python -m server`` child), N jobs spawned through the spawn
  path (POST /start in the watch pool's workers), each watched by ``client_core``. Reports
  how long until every row is on screen, then the cost of each frame (the ~10 Hz table and
  summary refresh) and of each coalesced ``PollEventsBatch`` while all N jobs poll, then
  keypress-to-screen latency (press, ``await pilot.pause()``: the key is handled and the
  screen composed).
- ``burst``: no server; N synthetic jobs, then one ``PollEventsBatch`` message carrying M
  poll events, posted like the watch pool posts them. Reports the time until the message
  is handled and the table shows the last event.

    .venv/bin/python bench/tui_load.py                    # 2000 live jobs, 20000-event burst
    .venv/bin/python bench/tui_load.py --jobs 500 --burst 5000 --seconds 5

Timings depend on the machine; compare runs made on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events

from client_core import BackoffPolicy, DelayReason, PollEvent, Strategy
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


async def live(jobs: int, duration_s: float, seconds: float) -> None:
    server = EmbeddedServer(args=["--delay", str(duration_s), "--seed", "1", "--no-hints"])
    server.start()
    try:
        await server.wait_ready()
        policy = BackoffPolicy()  # the library default: 0.25 s x1.6 up to 10 s, +/-20%
        settings = DashboardSettings(
            server_url=server.url,
            strategy=Strategy.BACKOFF,
            policy=policy,
            start_concurrency=32,
        )
        frames, batches = Timings("refresh_view"), Timings("ingest")
        app = make_app(settings=settings)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.connected, 20, "the client")
            app.spawn(
                SpawnRequest(
                    count=jobs,
                    duration_min_s=duration_s,
                    duration_max_s=duration_s,
                    strategy=Strategy.BACKOFF,
                    policy=policy,
                )
            )
            spawn_s = await wait_until(lambda: app.table.row_count == jobs, 600, "all rows")
            print(
                f"live: {jobs} jobs started and on screen in {spawn_s:.2f} s "
                f"({jobs / spawn_s:.0f} starts/s)"
            )
            frames.samples.clear()
            batches.samples.clear()
            requests_before = sum(view.requests for view in app.board)
            await asyncio.sleep(seconds)
            requests = sum(view.requests for view in app.board) - requests_before
            live_jobs = sum(not view.finished for view in app.board)
            print(
                f"live: {live_jobs} jobs polling, {requests / seconds:.0f} status requests/s "
                f"over {seconds:.0f} s"
            )
            print(f"live: frame (table + summary refresh)  {frames.summary()}")
            print(f"live: PollEventsBatch handling        {batches.summary()}")
            handled, repainted = await key_to_display(app)
            print(f"live: keys {' '.join(KEYS)}")
            print(f"live: key event -> handled     {latency_summary(handled)}")
            print(f"live: key event -> repainted   {latency_summary(repainted)}")
            latency = await keypress_latency(pilot)
            print(f"live: pilot press + pause                  {latency_summary(latency)}")
    finally:
        frames.restore()
        batches.restore()
        server.stop()


def synthetic_event(job_id: str, attempt: int) -> PollEvent:
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
    server.start()
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
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=60.0, help="live jobs' duration (s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady-state window (s)")
    parser.add_argument("--burst", type=int, default=20000, help="events in the burst")
    parser.add_argument("--only", choices=["live", "burst"])
    parser.add_argument(
        "--screenshot", metavar="SVG", help="only save a screenshot, e.g. docs/dashboard.svg"
    )
    args = parser.parse_args()
    if args.screenshot:
        asyncio.run(screenshot(args.screenshot))
        return
    if args.only != "live":
        asyncio.run(burst(args.jobs, args.burst))
    if args.only != "burst":
        asyncio.run(live(args.jobs, args.duration, args.seconds))


if __name__ == "__main__":
    main()
