"""The session's event log: every toast, start failure, server change and circuit change.

Toasts vanish after a few seconds; an operator who looked away needs the record (lazygit's
command log). The app appends here where it already learns of these things, and the event
log screen (``L``) only reads. Plain Python, no Textual, so it is tested without a terminal.

Server and circuit states are reported many times a second; only their *changes* are worth
a line, so :meth:`EventLog.note_server` and :meth:`EventLog.note_circuit` remember the last
state and log a transition only. The log keeps the newest ``limit`` entries (a session can
run for days); :attr:`EventLog.total` still counts every entry ever added, so a reader can
ask for what is new since it last looked.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

LOG_LIMIT = 10_000
Severity = Literal["information", "warning", "error"]


class EventKind(StrEnum):
    TOAST = "toast"  # a notification the user saw
    START = "start"  # one POST /start that failed for good
    SERVER = "server"  # found, started, lost, back
    CIRCUIT = "circuit"  # the client's circuit breaker opened or closed


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    at: float  # wall-clock seconds (time.time()), shown as local time
    kind: EventKind
    message: str
    severity: Severity = "information"
    title: str = ""

    def clock_time(self) -> str:
        return datetime.fromtimestamp(self.at).strftime("%H:%M:%S")

    def line(self) -> str:
        """One line of plain text, as the screen and an export show it."""
        title = f"{self.title}: " if self.title else ""
        return f"{self.clock_time()}  {self.kind:<7}  {title}{self.message}"


class EventLog:
    """The newest ``limit`` events of this session, oldest first."""

    def __init__(self, limit: int = LOG_LIMIT, wall_clock: Callable[[], float] = time.time):
        self.limit = limit
        self.total = 0  # entries ever added, including those pushed out by the limit
        self._entries: deque[LoggedEvent] = deque(maxlen=limit)
        self._wall_clock = wall_clock
        self._server_ok: bool | None = None  # None: not known yet
        self._circuit_open = False

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LoggedEvent]:
        return iter(self._entries)

    def add(
        self, kind: EventKind, message: str, *, severity: Severity = "information", title: str = ""
    ) -> LoggedEvent:
        entry = LoggedEvent(self._wall_clock(), kind, message, severity, title)
        self._entries.append(entry)
        self.total += 1
        return entry

    def since(self, seen: int) -> list[LoggedEvent]:
        """Entries added after the reader had seen ``seen`` of :attr:`total` (those still
        kept: a reader that fell more than ``limit`` behind gets the newest ``limit``)."""
        new = min(self.total - seen, len(self._entries))
        return list(self._entries)[len(self._entries) - new :] if new > 0 else []

    def note_server(self, ok: bool, where: str, error: str | None = None) -> None:
        """A health answer: logged when the server went from reachable to not, or back."""
        if ok == self._server_ok:
            return
        first = self._server_ok is None
        self._server_ok = ok
        if ok:
            self.add(EventKind.SERVER, f"{where} answers" if first else f"{where} is back")
        else:
            self.add(
                EventKind.SERVER, f"{where} unreachable: {error or 'no answer'}", severity="error"
            )

    def note_circuit(self, is_open: bool, detail: str = "") -> None:
        """Logged when the breaker's state changes."""
        if is_open == self._circuit_open:
            return
        self._circuit_open = is_open
        if is_open:
            reason = f": {detail}" if detail else ""
            self.add(EventKind.CIRCUIT, f"circuit open, polls held{reason}", severity="warning")
        else:
            self.add(EventKind.CIRCUIT, "circuit closed, polling again")
