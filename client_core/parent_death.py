"""A child process that ends when the one that started it does (Linux), without
``preexec_fn``.

``preexec_fn`` runs Python between fork and exec, which is unsafe in a parent with threads
(the dashboard has Textual's input thread, the engine's reader, the embedded server's).
Instead the child asks for the parent-death signal itself, first thing, and then checks
that its parent is still the one that started it: had the parent died in between, no
signal would ever come, so it ends at once. A child that is not Python of ours (the
server, which knows no client code) is started through ``python
client_core/parent_death.py PID SIGNAL -- command ...`` (:func:`guarded`), which does that
and then execs the command; the signal request survives the exec.

The kernel sends the signal when the *thread* that started the child ends: start children
from a thread that lives as long as the parent (the event loop's).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Get ``signum`` when the parent goes away; if it already has, get it now."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)


def guarded(command: Sequence[str], signum: int = signal.SIGTERM) -> list[str]:
    """``command`` started so that it dies with this process."""
    # Run as a file, not ``-m``: the package's __init__ (httpx and all) is not needed here
    # and would cost a third of a second before the command even starts.
    return [sys.executable, __file__, str(os.getpid()), str(signum), "--", *command]


def main(argv: Sequence[str]) -> None:
    parent, signum, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: python parent_death.py PID SIGNAL -- command ...")
    die_with_parent(int(parent), int(signum))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
