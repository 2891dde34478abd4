"""The live job table: a virtual view of the :class:`~tui.model.JobBoard`.

No widget row exists per job. The table keeps an index, the keys the filter shows in the
sort order, and draws only the lines on screen (Textual's line API): each line is the
job's cells as text, rendered once into a :class:`~textual.strip.Strip` and cached by its
content, so a frame costs the same with 20 jobs or 20,000 and a key press never waits for
rows to be added or removed. Filter and sort rebuild the index from the model (a list
comprehension and a sort, ~10 ms for 10,000 jobs); the cursor is a job's key, so it stays
on its job when rows move.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import NamedTuple

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from client_core import SPECIAL_JOB_ID, DelayReason, Outcome, Strategy
from tui.keys import TABLE_KEYS
from tui.model import (
    JobBoard,
    JobState,
    SortColumn,
    WatchedJob,
    matches,
    matches_text,
    progress_of,
    sort_key,
)


class ColumnSpec(NamedTuple):
    """A column: its key (also the sort key), label, and width. ``widest``: the column
    grows into spare room up to that many cells. ``gives_way``: None for the columns a
    user watches (always shown); otherwise the order in which the others get room when
    the terminal is too narrow for all of them (1 first)."""

    key: SortColumn
    label: str
    width: int
    widest: int | None = None
    gives_way: int | None = None


# Widths are fixed for a given terminal width, so no update ever re-measures a column.
# At 80 columns the watched ones (job, status, attempt, next, outcome) and the first two
# that give way fit, so nothing scrolls sideways.
COLUMN_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec(SortColumn.JOB, "Job", 10, widest=38),  # a whole uuid and "#n" given room
    ColumnSpec(SortColumn.STATUS, "Status", 11),
    ColumnSpec(SortColumn.HTTP, "HTTP", 9, gives_way=4),
    ColumnSpec(SortColumn.ATTEMPT, "Attempt", 9),
    ColumnSpec(SortColumn.SKIPPED, "Skipped", 9, gives_way=5),
    ColumnSpec(SortColumn.NEXT, "Next", 7),
    ColumnSpec(SortColumn.PROGRESS, "Progress", 10, gives_way=6),
    ColumnSpec(SortColumn.STRATEGY, "Strategy", 10, gives_way=3),
    ColumnSpec(SortColumn.ELAPSED, "Elapsed", 9, gives_way=2),
    ColumnSpec(SortColumn.REQUESTS, "Requests", 10, gives_way=1),
    ColumnSpec(SortColumn.OUTCOME, "Outcome", 11),
    # the last error takes whatever room is left at the end of the line
    ColumnSpec(SortColumn.ERROR, "Last error", 16, widest=10_000, gives_way=7),
)
CHOOSABLE_COLUMNS: tuple[SortColumn, ...] = tuple(spec.key for spec in COLUMN_SPECS)
COLUMN_LABELS = {spec.key: spec.label for spec in COLUMN_SPECS}
Layout = tuple[tuple[SortColumn, str, int], ...]  # (key, label, width) of each column shown


def layout_for(width: int, columns: Collection[SortColumn]) -> Layout:
    """The chosen columns' widths for a table ``width`` cells wide: the watched columns
    always, at their widths; then each other column that still fits, in the order they
    give way; then the growing columns (the job id, the last error) take the rest. Shown
    columns keep the order of :data:`COLUMN_SPECS`."""
    chosen = [spec for spec in COLUMN_SPECS if spec.key in columns]
    shown = {spec.key for spec in chosen if spec.gives_way is None}
    spare = width - sum(spec.width + 1 for spec in chosen if spec.key in shown) - 1
    optional = sorted((spec for spec in chosen if spec.gives_way is not None),
                      key=lambda spec: spec.gives_way or 0)  # fmt: skip
    for spec in optional:
        if spare >= spec.width + 1:
            shown.add(spec.key)
            spare -= spec.width + 1
    layout: list[tuple[SortColumn, str, int]] = []
    for spec in chosen:
        if spec.key not in shown:
            continue
        grow = max(0, min(spare, (spec.widest or spec.width) - spec.width))
        spare -= grow
        layout.append((spec.key, spec.label, spec.width + grow))
    return tuple(layout)


def line_width(layout: Layout) -> int:
    """Cells a line of this layout takes: a space before each column, one after the last."""
    return sum(width + 1 for _, _, width in layout) + 1


PROGRESS_BAR_CELLS = 5


def progress_text(progress: float | None) -> str:
    """``███░░  62%``: a bar and the percentage, from the server's progress hint."""
    if progress is None:
        return ""
    share = max(0.0, min(1.0, progress))
    filled = round(share * PROGRESS_BAR_CELLS)
    bar = "█" * filled + "░" * (PROGRESS_BAR_CELLS - filled)
    return f"{bar}{share * 100:4.0f}%"


RIGHT_ALIGNED = frozenset({SortColumn.ATTEMPT, SortColumn.SKIPPED, SortColumn.REQUESTS})
PUSHED_STRATEGIES = frozenset({Strategy.STREAM, Strategy.BATCH})
SELECTED_MARK = "●"  # in the gutter before a selected row's first cell
LINES_KEPT = 2_000  # rendered lines cached (a screenful is ~50)
REBUILD_EVERY_S = 0.5  # re-sort/re-filter on model changes at most this often (keys: at once)

STATUS_STYLES = {"pending": "yellow", "completed": "green", "error": "red"}
OUTCOME_STYLES = {
    Outcome.COMPLETED: "bold green",
    Outcome.ERROR: "bold red",
    Outcome.TIMED_OUT: "bold yellow",
    Outcome.CANCELLED: "dim",
    Outcome.UNREACHABLE: "bold magenta",
    Outcome.NOT_FOUND: "red",
    Outcome.REJECTED: "red",
}


def id_prefix(job_id: str, room: int) -> str:
    """The uuid's first groups that fit in ``room`` cells (the first group at least), so a
    cut never falls inside a group: ``3f2a9c1e``, ``3f2a9c1e-5b7d``, ... the whole id."""
    groups = job_id.split("-")
    shown = groups[0][:8]
    for group in groups[1:]:
        longer = f"{shown}-{group}"
        if len(longer) > room:
            break
        shown = longer
    return shown


def short_id(view: WatchedJob, width: int = 10) -> str:
    """As much of the uuid as ``width`` allows (8 characters at least); ``special`` for the
    special job; ``#n`` for re-watches."""
    _, hash_mark, number = view.key.partition("#")
    if not view.job_id:
        base = "-"  # never started
    elif view.job_id == SPECIAL_JOB_ID:
        base = "special"
    else:
        base = id_prefix(view.job_id, width - (len(number) + 1 if hash_mark else 0))
    return f"{base}#{number}" if hash_mark else base


def cell_text(view: WatchedJob, column: str, now: float, width: int = 10) -> str:
    """The plain text of one cell (``width``: the job column's, for how much id fits)."""
    match column:
        case SortColumn.JOB:
            return short_id(view, width)
        case SortColumn.STATUS:
            if view.status:
                return view.status
            return "no answer" if view.http_status is None else f"HTTP {view.http_status}"
        case SortColumn.HTTP:
            if view.http_status is None:
                return "-" if view.attempt else ""
            if view.reason is DelayReason.RETRY_AFTER and view.next_delay_s is not None:
                return f"{view.http_status} ra{view.next_delay_s:.0f}s"
            return str(view.http_status)
        case SortColumn.ATTEMPT:
            return str(view.attempt)
        case SortColumn.SKIPPED:
            return str(view.skipped) if view.skipped else ""
        case SortColumn.NEXT:
            if view.finished:
                return "-"
            if view.reason is DelayReason.LONG_POLL:
                return "held"
            if view.reason is None and view.strategy in PUSHED_STRATEGIES:
                return "push"  # no poll planned: the server pushes the end
            countdown = view.countdown(now)
            if countdown is None:
                return "..."  # no answer yet
            return f"{countdown:.1f}s" if countdown > 0 else "now"
        case SortColumn.STRATEGY:
            return str(view.strategy)
        case SortColumn.ELAPSED:
            return f"{view.elapsed(now):.1f}s"
        case SortColumn.REQUESTS:
            return str(view.requests)
        case SortColumn.OUTCOME:
            if view.outcome is not None:
                return str(view.outcome)
            return "retrying" if view.last_error else ""
        case SortColumn.PROGRESS:
            return progress_text(progress_of(view))
        case SortColumn.ERROR:
            return view.last_error or ""
    raise KeyError(column)


def cell_style(view: WatchedJob, column: str) -> str:
    if column == SortColumn.STATUS:
        return STATUS_STYLES.get(view.status, "magenta")
    if column == SortColumn.HTTP:
        code = view.http_status
        return "" if code is None or code < 400 else "bold red"
    if column == SortColumn.SKIPPED:
        return "yellow"
    if column == SortColumn.OUTCOME:
        return OUTCOME_STYLES.get(view.outcome, "magenta") if view.outcome else "magenta"
    if column == SortColumn.JOB:
        return "bold"
    if column == SortColumn.PROGRESS:
        return "green" if view.outcome is Outcome.COMPLETED else "cyan"
    if column == SortColumn.ERROR:
        return "red"
    return ""


@lru_cache(maxsize=64)
def parse_style(text: str) -> Style:
    return Style.parse(text) if text else Style()


def fit(text: str, width: int, right: bool = False) -> str:
    """Pad or cut to exactly ``width`` cells (cell text is ASCII, except server text)."""
    if len(text) > width:
        return text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


class ViewSettings(NamedTuple):
    """What the index shows: the status filter, the sort, and the search text."""

    state_filter: JobState | None
    sort_column: SortColumn
    reverse: bool
    search: str  # lower case; "" shows every row


class JobTable(ScrollView, can_focus=True):
    """Rows are jobs, drawn from the board; the first line is the header."""

    COMPONENT_CLASSES = {
        "job-table--header",
        "job-table--cursor",
        "job-table--odd-row",
        "job-table--hint",
        "job-table--selected",
    }
    DEFAULT_CSS = """
    JobTable {
        height: 1fr;
        background: $surface;
    }
    JobTable > .job-table--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    JobTable > .job-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    JobTable:blur > .job-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
        text-style: none;
    }
    JobTable > .job-table--odd-row {
        background: $surface-lighten-1;
    }
    JobTable > .job-table--selected {
        background: $accent 35%;
        color: $foreground;
    }
    JobTable > .job-table--hint {
        color: $text-muted;
        text-style: italic;
    }
    """
    BINDINGS = [k.binding() for k in TABLE_KEYS]

    class Selected(Message):
        """Enter (or a click on the cursor's row) on a job."""

        def __init__(self, table: JobTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> JobTable:
            return self.table

    class HeaderSelected(Message):
        """A click on a column's label."""

        def __init__(self, table: JobTable, column: SortColumn) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> JobTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.board = JobBoard()
        self.now = 0.0
        self.order: list[str] = []  # the index: keys the filter shows, in sort order
        self._position: dict[str, int] = {}
        self._cursor_key: str | None = None
        self._cursor_row = 0  # where the cursor was, for when its job leaves the index
        self.columns: tuple[SortColumn, ...] = CHOOSABLE_COLUMNS  # the user's choice
        self._layout: tuple[int, tuple[SortColumn, ...], Layout] | None = None
        self.selected: set[str] = set()  # row keys, kept across filter, sort and search
        self._anchor: str | None = None  # the last row toggled: where a range starts
        self._view_settings = ViewSettings(None, SortColumn.ADDED, False, "")
        self._built_at = float("-inf")
        self._stale = False  # the model changed in a way the index may not show yet
        self._frozen: dict[str, WatchedJob] | None = None  # paused: the rows as they were
        self._waiting: set[str] = set()  # paused: rows that changed since
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(LINES_KEPT)
        self._styles: dict[str, Style] = {}

    # -- the index -------------------------------------------------------------------------

    @property
    def cached_lines(self) -> int:
        """Rendered lines kept for reuse (at most LINES_KEPT; none of removed rows)."""
        return len(self._lines)

    @property
    def row_count(self) -> int:
        return len(self.order)

    @property
    def cursor_key(self) -> str | None:
        """The model key of the job under the cursor."""
        return self._cursor_key

    @property
    def cursor_row(self) -> int:
        return self._position.get(self._cursor_key, 0) if self._cursor_key else 0

    def shown_keys(self) -> list[str]:
        """Row keys in screen order."""
        return list(self.order)

    def get_row_index(self, key: str) -> int:
        return self._position[key]

    @property
    def jobs(self) -> Mapping[str, WatchedJob]:
        """The rows as drawn: the board's, or while paused the copies taken at the pause."""
        return self.board.jobs if self._frozen is None else self._frozen

    def get_cell(self, key: str, column: str) -> Text:
        """One cell as it shows (for tests and the command palette)."""
        view = self.jobs[key]
        return Text(cell_text(view, column, self.now), style=cell_style(view, column))

    def sync(
        self,
        board: JobBoard,
        changed: Collection[str],
        removed: Collection[str],
        now: float,
        *,
        state_filter: JobState | None,
        sort_column: SortColumn,
        reverse: bool,
        search: str = "",
        resort: bool = False,
    ) -> None:
        """Bring the index up to date with the model's changes since the last frame and
        repaint. ``resort``: the user changed the filter, sort or search (rebuild at once)."""
        self.board = board
        if removed:
            # Rows went away (cleared, forgotten): their rendered lines are dead weight, and
            # kept they would fill the cache round after round of a long session.
            self._lines.clear()
            if self.selected:
                self.selected.difference_update(removed)
        settings = ViewSettings(state_filter, sort_column, reverse, search)
        if self._frozen is not None:  # paused: count what waits; redo the index only if asked
            self._waiting.update(changed)
            self._waiting.update(removed)
            if resort or settings != self._view_settings:
                self._rebuild(settings)
                self.refresh()
            return
        self.now = now
        plain_order = (
            state_filter is None and sort_column is SortColumn.ADDED and not reverse and not search
        )
        # A removal, or in a filtered or sorted view any change (it may move a row or take
        # it out of the filter), or a clock-driven sort, make the index stale.
        if removed or (not plain_order and (changed or sort_column.time_dependent)):
            self._stale = True
        user_asked = resort or settings != self._view_settings
        due = plain_order or now - self._built_at >= REBUILD_EVERY_S
        if user_asked or (self._stale and due):
            self._rebuild(settings)
        elif plain_order and changed:
            self._append_new(changed)
        self.refresh()

    def _rebuild(self, settings: ViewSettings) -> None:
        state_filter, sort_column, reverse, search = settings
        jobs, now = self.jobs, self.now
        if state_filter is None and not search:
            order = list(jobs)
        else:
            order = [
                key
                for key, view in jobs.items()
                if matches(view, state_filter) and matches_text(view, search)
            ]
        if sort_column is not SortColumn.ADDED:
            order.sort(key=lambda key: sort_key(jobs[key], sort_column, now), reverse=reverse)
        elif reverse:
            order.reverse()
        self._set_order(order)
        self._view_settings = settings
        self._built_at = now
        self._stale = False

    def _append_new(self, changed: Collection[str]) -> None:
        """Insertion order, no filter: new jobs go at the end, nothing else moves."""
        jobs, position = self.board.jobs, self._position
        for key in changed:
            if key not in position and key in jobs:
                position[key] = len(self.order)
                self.order.append(key)
        self._set_virtual_size()
        if self._cursor_key is None and self.order:
            self._cursor_key = self.order[0]

    def _set_order(self, order: list[str]) -> None:
        self.order = order
        self._position = {key: row for row, key in enumerate(order)}
        self._set_virtual_size()
        cursor = self._cursor_key
        if cursor is not None and cursor in self._position:
            self._cursor_row = self._position[cursor]
        elif order:  # its job left the index: the row where it was
            self._cursor_row = min(self._cursor_row, len(order) - 1)
            self._cursor_key = order[self._cursor_row]
        else:
            self._cursor_key, self._cursor_row = None, 0
        self._keep_cursor_in_view()

    def _set_virtual_size(self) -> None:
        width = line_width(self.column_layout())
        self.virtual_size = Size(width, len(self.order) + 1)  # + the header line

    # -- the columns -----------------------------------------------------------------------

    def show_columns(self, columns: Collection[SortColumn]) -> None:
        """The column chooser's choice (in the table's own column order)."""
        self.columns = tuple(key for key in CHOOSABLE_COLUMNS if key in columns)
        self._set_virtual_size()
        self.refresh()

    def column_layout(self) -> Layout:
        """The columns shown and their widths for the table's width (cached per width)."""
        width = self.scrollable_content_region.width
        cached = self._layout
        if cached is None or cached[:2] != (width, self.columns):
            cached = self._layout = (width, self.columns, layout_for(width, self.columns))
        return cached[2]

    def on_resize(self, event: events.Resize) -> None:
        self._set_virtual_size()

    # -- the cursor ------------------------------------------------------------------------

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        if not self.order:
            return
        row = max(0, min(row, len(self.order) - 1))
        previous = self._position.get(self._cursor_key) if self._cursor_key else None
        top = self.scroll_y
        self._cursor_key, self._cursor_row = self.order[row], row
        if scroll:
            self._keep_cursor_in_view()
        if previous is None or self.scroll_y != top:
            self.refresh()
        else:  # only the two lines the cursor left and entered (line 0 is the header)
            self.refresh_line(previous + 1)
            self.refresh_line(row + 1)

    def _keep_cursor_in_view(self) -> None:
        rows_shown = max(1, self.scrollable_content_region.height - 1)
        row, top = self.cursor_row, int(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + rows_shown:
            self.scroll_to(y=row - rows_shown + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self.cursor_row - max(1, self.scrollable_content_region.height - 1))

    def action_page_down(self) -> None:
        self.move_cursor(row=self.cursor_row + max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=len(self.order) - 1)

    def action_select(self) -> None:
        if self._cursor_key is not None:
            self.post_message(self.Selected(self, self._cursor_key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = offset.x + int(self.scroll_x)
            for column, _, width in self.column_layout():
                if x <= width:
                    self.post_message(self.HeaderSelected(self, column))
                    return
                x -= width + 1
            return
        row = int(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self.order):
            if self.order[row] == self._cursor_key:
                self.action_select()
            else:
                self.move_cursor(row=row)

    # -- pause: the rows stay as they were while the board moves on -------------------------

    @property
    def paused(self) -> bool:
        return self._frozen is not None

    @property
    def waiting(self) -> int:
        """Rows that changed (or went) since the pause: what resuming will show."""
        return len(self._waiting)

    def pause(self) -> None:
        """Freeze the rows for reading: one shallow copy of each row now (a key press, not
        a frame), the engine's updates still reach the board."""
        self._frozen = {key: copy.copy(view) for key, view in self.board.jobs.items()}
        self._waiting = set()

    def resume(self) -> None:
        """Back to the live board; the next frame rebuilds the index with what changed."""
        self._frozen, self._waiting = None, set()
        self._stale = True
        self._built_at = float("-inf")

    # -- the selection: row keys, so it survives filter, sort and search --------------------

    def toggle_selected(self) -> None:
        """Select the row under the cursor, or unselect it; it becomes a range's start."""
        key = self._cursor_key
        if key is None:
            return
        if key in self.selected:
            self.selected.discard(key)
        else:
            self.selected.add(key)
        self._anchor = key
        self.refresh()

    def select_range(self) -> None:
        """Select every shown row from the last toggled one to the cursor (both included)."""
        if self._cursor_key is None:
            return
        start = self._position.get(self._anchor) if self._anchor is not None else None
        end = self.cursor_row
        if start is None:  # nothing toggled yet (or it left the view): from the cursor only
            start = end
        low, high = sorted((start, end))
        self.selected.update(self.order[low : high + 1])
        self._anchor = self._cursor_key
        self.refresh()

    def select_all_shown(self) -> None:
        """Select every row the filter and search show; if they all are, unselect them."""
        if self.selected.issuperset(self.order):
            self.selected.difference_update(self.order)
        else:
            self.selected.update(self.order)
        self.refresh()

    def clear_selection(self) -> None:
        self.selected.clear()
        self._anchor = None
        self.refresh()

    def selected_keys(self) -> list[str]:
        """The selected rows still on the board, in the board's order."""
        jobs = self.board.jobs
        return sorted((key for key in self.selected if key in jobs), key=lambda key: jobs[key].seq)

    # -- drawing ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the view, cut to the horizontal scroll position."""
        width = self.scrollable_content_region.width
        left = int(self.scroll_x)
        return self._full_line(y, max(width, line_width(self.column_layout()))).crop(
            left, left + width
        )

    def _full_line(self, y: int, width: int) -> Strip:
        if y == 0:
            return self._header(width)
        row = int(self.scroll_y) + y - 1
        if not self.order:
            return self._hint(width) if y == 2 else Strip.blank(width, self._style("hint"))
        if row >= len(self.order):
            return Strip.blank(width, self.rich_style)
        key = self.order[row]
        view = self.jobs.get(key)
        if view is None:  # removed since the index was built: drawn blank until the next frame
            return Strip.blank(width, self.rich_style)
        layout = self.column_layout()
        texts = tuple(cell_text(view, column, self.now, size) for column, _, size in layout)
        styles = tuple(cell_style(view, column) for column, _, _ in layout)
        cursor = key == self._cursor_key
        selected = key in self.selected
        line_key = (texts, styles, cursor, selected, row % 2, width, self.has_focus, layout)
        strip = self._lines.get(line_key)
        if strip is None:
            strip = self._render_row(layout, texts, styles, cursor, selected, row % 2 == 1, width)
            self._lines[line_key] = strip
        return strip

    def _render_row(
        self,
        layout: Layout,
        texts: tuple[str, ...],
        styles: tuple[str, ...],
        cursor: bool,
        selected: bool,
        odd: bool,
        width: int,
    ) -> Strip:
        if cursor:
            base = self._style("cursor")
        elif selected:
            base = self._style("selected")
        else:
            base = self._style("odd-row" if odd else "")
        segments = [Segment(SELECTED_MARK if selected else " ", base)]
        for (column, _, column_width), text, style in zip(layout, texts, styles, strict=True):
            cell = fit(text, column_width, column in RIGHT_ALIGNED)
            if cursor:
                segments.append(Segment(cell, parse_style(style) + base))
            else:
                segments.append(Segment(cell, base + parse_style(style)))
            segments.append(Segment(" ", base))
        return Strip(segments).extend_cell_length(width, base)

    def _header(self, width: int) -> Strip:
        sort_column, reverse = self._view_settings.sort_column, self._view_settings.reverse
        layout = self.column_layout()
        line_key = ("header", sort_column, reverse, width, layout)
        strip = self._lines.get(line_key)
        if strip is None:
            base = self._style("header")
            segments = [Segment(" ", base)]
            for column, label, column_width in layout:
                if column is sort_column:
                    label += " ▼" if reverse else " ▲"
                segments.append(Segment(fit(label, column_width), base))
                segments.append(Segment(" ", base))
            strip = Strip(segments).extend_cell_length(width, base)
            self._lines[line_key] = strip
        return strip

    def _hint(self, width: int) -> Strip:
        state_filter, search = self._view_settings.state_filter, self._view_settings.search
        if len(self.jobs) == 0:
            hint = "No jobs yet: press n to spawn some (w watches jobs that exist)."
        elif search:
            hint = f"No job matches the search '{search}': press / then esc to clear it."
        else:
            hint = (
                f"No job matches the filter '{state_filter}': "
                "press f for the next filter, n to spawn."
            )
        return (
            Strip([Segment(f"  {hint}", self._style("hint"))])
            .extend_cell_length(width, self._style("hint"))
            .crop(0, width)
        )

    def _style(self, part: str) -> Style:
        """The rich style of a component class ("" for the table's own), cached."""
        style = self._styles.get(part)
        if style is None:
            if part:
                style = self.rich_style + self.get_component_rich_style(f"job-table--{part}")
            else:
                style = self.rich_style
            self._styles[part] = style
        return style

    def notify_style_update(self) -> None:
        """A theme or CSS change restyles every line."""
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()

    def on_focus(self, event: events.Focus) -> None:
        self._styles.clear()  # :blur and :focus draw the cursor differently
        self.refresh()

    def on_blur(self, event: events.Blur) -> None:
        self._styles.clear()
        self.refresh()
