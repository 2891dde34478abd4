"""The line above the table: jobs by state, requests per second, and the server's health."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Sparkline, Static

from tui.model import JobState, SortColumn

STATE_STYLES = {
    JobState.PENDING: "yellow",
    JobState.COMPLETED: "green",
    JobState.ERROR: "red",
    JobState.FAILED: "magenta",
    JobState.CANCELLED: "dim",
}


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """What the last GET /healthz said, and where the server is."""

    url: str | None = None
    embedded_pid: int | None = None
    ok: bool | None = None  # None: not checked yet
    latency_s: float | None = None
    error: str | None = None
    note: str = ""  # e.g. "starting embedded server"

    def describe(self, *, latency: bool = True) -> str:
        """One phrase for the summary bar (and, without the latency, the header)."""
        if self.note and self.ok is None:
            return self.note
        if self.url is None and self.error:
            return f"not started: {self.error}"
        if self.ok is None:
            return "connecting"
        if not self.ok:
            return "unreachable, retrying"
        if not latency or self.latency_s is None:
            return "ok"
        return f"ok {self.latency_s * 1000:.0f} ms"

    def where(self) -> str:
        if self.url is None:
            return "no server"
        if self.embedded_pid is not None:
            return f"embedded server {self.url.removeprefix('http://')} (pid {self.embedded_pid})"
        return f"server {self.url}"


def counts_text(
    counts: Counter[JobState],
    starting: int,
    start_failures: int,
    *,
    rate_limited: int = 0,
    unavailable: int = 0,
) -> Text:
    """Jobs by state; then, when there are any, starts in flight, failed starts, and the
    status answers that were 429 (rate limited) or 503 (unavailable)."""
    parts: list[tuple[str, str, str]] = [
        (str(state), str(counts.get(state, 0)), STATE_STYLES[state]) for state in JobState
    ]
    if starting:
        parts.append(("starting", str(starting), "cyan"))
    if start_failures:
        parts.append(("not started", str(start_failures), "bold red"))
    if rate_limited:
        parts.append(("429", str(rate_limited), "yellow"))
    if unavailable:
        parts.append(("503", str(unavailable), "yellow"))
    text = Text()
    for index, (label, number, style) in enumerate(parts):
        if index:
            text.append("  ")
        text.append(f"{label} ", style="dim")
        text.append(number, style=style)
    return text


def view_text(
    state_filter: JobState | None, column: SortColumn, reverse: bool, selected: int = 0
) -> Text:
    text = Text()
    if selected:
        text.append(f"{selected} selected", style="bold")
        text.append(" · ", style="dim")
    text.append("filter ", style="dim")
    text.append(f"{state_filter or 'all'}", style="bold")
    # a visible separator: spaces alone vanish in some renderings of a screenshot
    text.append(" · sort ", style="dim")
    text.append(f"{column}{' desc' if reverse else ''}", style="bold")
    return text


class SpawnButton(Button, can_focus=False):
    """The mouse's way to spawn (the keyboard has ``n``). It never takes the focus, so
    the table's keys (j, k, c, enter...) always act on the rows the screen shows."""


class SummaryBar(Vertical):
    """Two lines: counts and server health; request rate, its sparkline, filter and sort."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: dict[str, tuple[object, ...]] = {}  # widget id -> what is on screen

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(id="counts")
            yield Static(id="health")
        with Horizontal():
            yield SpawnButton("+ Spawn", id="spawn-button", compact=True, tooltip="Spawn jobs (n)")
            yield Static(id="rate-label")
            yield Sparkline([0.0], id="rate")
            yield Static(id="view")

    def show(
        self,
        counts: Text,
        view: Text,
        rate: float,
        series: list[float],
        health: ServerHealth,
    ) -> None:
        """Update each part only when its content changed (no repaint for nothing)."""
        self._set("counts", counts)
        self._set("view", view)
        self._set("rate-label", Text(f"{rate:>5.0f} req/s ", "bold"))
        if list(self._sparkline.data or []) != series:
            self._sparkline.data = series
        status = health.describe()
        style = "green" if health.ok else ("bold red" if health.ok is False else "yellow")
        self._set("health", Text(f"server {status}", style))
        if self._statics["health"].tooltip != status:  # cut short on narrow screens
            self._statics["health"].tooltip = status

    def on_mount(self) -> None:
        self._statics = {static.id or "": static for static in self.query(Static)}
        self._sparkline = self.query_one("#rate", Sparkline)

    def _set(self, name: str, content: Text) -> None:
        signature = (content.plain, str(content.style), tuple(content.spans))
        shown = self._shown.get(name)
        if shown != signature:
            self._shown[name] = signature
            # A layout pass re-renders the whole screen, the table included; only a new
            # width needs one (the rate and the latency change every second, not their width).
            resized = shown is None or cell_len(str(shown[0])) != content.cell_len
            self._statics[name].update(content, layout=resized)
