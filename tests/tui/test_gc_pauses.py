"""Frozen survivors keep collections short, and what the board lets go of is freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from tui.gc_pauses import freeze_survivors, release_frozen


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_a_frozen_cycle_let_go_of_is_freed_by_release_frozen() -> None:
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle: only the collector frees it
    freeze_survivors()
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is not None  # frozen: a full collection does not look at it
    release_frozen()
    assert gone() is None
    assert gc.get_freeze_count() > 0  # the rest is frozen again
