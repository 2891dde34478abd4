"""Run calls in groups: whatever arrives while one group runs goes in the next one.

Under load, one SQLite commit (and its fsync) or one Redis round trip serves every
request that queued meanwhile; when idle, a call runs at once, alone. Each caller
awaits its own item, so "answered" still means "written".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class GroupedCalls(Generic[Item, Outcome]):
    """``run_group(items)`` returns one outcome per item, in order; an exception it raises
    goes to every caller of the group."""

    def __init__(self, run_group: Callable[[list[Item]], Awaitable[Sequence[Outcome]]]) -> None:
        self._run_group = run_group
        self._queue: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def call(self, item: Item) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        return await future

    async def drain(self) -> None:
        """Return once everything queued so far has run."""
        while self._runner is not None:
            await asyncio.shield(self._runner)

    async def _run(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue, []
                try:
                    outcomes = await self._run_group([item for item, _ in group])
                except Exception as error:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._runner = None
