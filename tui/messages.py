"""Messages from the dashboard's background work to the app.

The server lookup (a worker on the UI loop) posts ServerResolved or ServerFailed. The
polling engine speaks through its link instead (tui.engine_link, tui.engine_protocol).
:class:`PollEventsBatch` carries a watch pool batch to fold into the board directly: the
benchmarks and tests feed the dashboard that way, without an engine.
"""

from __future__ import annotations

from textual.message import Message

from tui.watch_pool import PoolBatch


class PollEventsBatch(Message):
    """Starts, start failures and poll events since the previous batch, in arrival order."""

    def __init__(self, batch: PoolBatch) -> None:
        super().__init__()
        self.batch = batch


class ServerResolved(Message):
    """The dashboard knows which server to use (found, given, or embedded and ready)."""

    def __init__(self, url: str, *, embedded_pid: int | None = None, note: str = "") -> None:
        super().__init__()
        self.url = url
        self.embedded_pid = embedded_pid
        self.note = note


class ServerFailed(Message):
    """No server could be used (the embedded one did not start); one line says why."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
