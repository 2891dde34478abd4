"""Run one awaitable unless an event fires first, leaving no task behind; stop a task.

A watcher sleeps or waits on a request, but must stop at once when the
caller's cancel event is set (and, while the circuit is open, wake as soon as
the gate closes). ``run_unless`` races the work against those events and
always cancels and awaits the losers, so no stray task or "never awaited"
warning outlives it, even when the surrounding task is itself cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_unless(
    work: Coroutine[Any, Any, T], *events: asyncio.Event | None
) -> tuple[bool, T | None]:
    """Await ``work`` unless one of ``events`` is set first.

    Returns ``(True, result)`` when the work finished, ``(False, None)`` when an
    event won (the work is then cancelled). Exceptions from the work propagate.
    """
    watched = [event for event in events if event is not None]
    if not watched:
        return True, await work
    if any(event.is_set() for event in watched):
        work.close()
        return False, None

    main = asyncio.ensure_future(work)
    waiters = [asyncio.ensure_future(event.wait()) for event in watched]
    try:
        await asyncio.wait([main, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        losers = [task for task in (main, *waiters) if not task.done()]
        for task in losers:
            task.cancel()
        if losers:
            await asyncio.gather(*losers, return_exceptions=True)
    if main.cancelled():
        return False, None
    return True, main.result()


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task (if it still runs) and wait until it has ended."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
