"""Children that die with their parent, started without preexec_fn."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from client_core.parent_death import guarded


def test_a_child_whose_parent_is_already_gone_ends_at_once(tmp_path: Path) -> None:
    """The guard checks the parent it was given: a parent that died before the signal was
    asked for would never send it, and the child would live on."""
    marker = tmp_path / "ran"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"]
    not_its_parent = "1"
    guard = guarded(command)
    guard[2] = not_its_parent  # as if started by a parent that has gone since
    finished = subprocess.run(guard, timeout=30)
    assert finished.returncode == -signal.SIGTERM
    assert not marker.exists()
    ran = subprocess.run(guarded(command), timeout=30)
    assert ran.returncode == 0 and marker.exists()
