"""Messages from the dashboard's background workers to the app.

Workers (the server lookup on the UI loop, the polling engine in its own thread) never
touch widgets or the model: they post one of these, and the app's handlers, running on the
UI's loop, change state. The watch pool's output arrives coalesced as
one :class:`PollEventsBatch` per interval, however many jobs are polling.
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


class EngineReady(Message):
    """The polling engine's client is open: jobs can be started and watched."""


class HealthChecked(Message):
    """One GET /healthz round trip; only the newest one matters if several queue up."""

    def __init__(self, ok: bool, latency_s: float | None, error: str | None) -> None:
        super().__init__()
        self.ok = ok
        self.latency_s = latency_s
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HealthChecked)
