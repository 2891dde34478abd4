"""Short garbage-collector pauses with tens of thousands of long-lived objects.

CPython's full collection walks every tracked object. With 10,000 jobs on the board (and
in the engine, their tasks and poll histories) that walk took 300-600 ms every couple of
seconds: the dashboard froze for that long, which was most of its slow key presses. Jobs,
rows and histories live as long as the board; they are freed by reference counting when
they go, not by the cycle collector. So once a second the young generations are collected
and every survivor is frozen (``gc.freeze``): full collections then only walk what was
created since, and a pause costs milliseconds.

A frozen object is never looked at by the collector again, so one that later becomes part
of an unreachable cycle would stay forever. :func:`release_frozen` unfreezes everything and
runs one full collection: called when many rows go at once (the user cleared finished
jobs, a moment when a short pause is expected), so a long session does not grow by what
it let go of. It then hands the freed heap back to the system (glibc's ``malloc_trim``):
10,000 rows freed leave their pages with the allocator, and each round of spawning and
clearing left the process's resident memory a little higher (bench/tui_soak.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable

FREEZE_EVERY_S = 1.0


def freeze_survivors() -> None:
    """Collect the young generations (young cyclic garbage goes now), freeze the rest."""
    gc.collect(1)
    gc.freeze()


def release_frozen() -> None:
    """Unfreeze, collect everything once (cycles among the frozen go now), give the freed
    heap back to the system, freeze again."""
    gc.unfreeze()
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
    gc.freeze()


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (Linux); None elsewhere (musl, macOS): nothing to trim."""
    library = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if library is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(library).malloc_trim
    except AttributeError:
        return None
    return trim


_malloc_trim = _find_malloc_trim()
