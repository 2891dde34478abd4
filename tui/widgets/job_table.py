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

from collections.abc import Collection
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from client_core import SPECIAL_JOB_ID, DelayReason, Outcome
from tui.model import JobBoard, JobState, JobView, SortColumn, matches, sort_key

# (column key, label, width): fixed widths, so no update ever re-measures a column.
COLUMNS: tuple[tuple[SortColumn, str, int], ...] = (
    (SortColumn.JOB, "Job", 10),
    (SortColumn.STATUS, "Status", 11),
    (SortColumn.HTTP, "HTTP", 9),
    (SortColumn.ATTEMPT, "Attempt", 9),
    (SortColumn.SKIPPED, "Skipped", 9),
    (SortColumn.NEXT, "Next", 7),
    (SortColumn.STRATEGY, "Strategy", 11),
    (SortColumn.ELAPSED, "Elapsed", 9),
    (SortColumn.REQUESTS, "Requests", 10),
    (SortColumn.OUTCOME, "Outcome", 11),
)
# one space before each column, one after the last (the label's sort mark fits the width)
TABLE_WIDTH = sum(width + 1 for _, _, width in COLUMNS) + 1
COLUMNS_KEYS = tuple(key for key, _, _ in COLUMNS)
RIGHT_ALIGNED = frozenset({SortColumn.ATTEMPT, SortColumn.SKIPPED, SortColumn.REQUESTS})
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


def short_id(view: JobView) -> str:
    """First 8 characters of a uuid; ``special`` for the special job; ``#n`` for re-watches."""
    if not view.job_id:
        base = "-"  # never started
    else:
        base = "special" if view.job_id == SPECIAL_JOB_ID else view.job_id[:8]
    _, hash_mark, number = view.key.partition("#")
    return f"{base}#{number}" if hash_mark else base


def cell_text(view: JobView, column: str, now: float) -> str:
    """The plain text of one cell."""
    match column:
        case SortColumn.JOB:
            return short_id(view)
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
    raise KeyError(column)


def cell_style(view: JobView, column: str) -> str:
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
    return ""


@lru_cache(maxsize=64)
def parse_style(text: str) -> Style:
    return Style.parse(text) if text else Style()


def fit(text: str, width: int, right: bool = False) -> str:
    """Pad or cut to exactly ``width`` cells (cell text is ASCII, except server text)."""
    if len(text) > width:
        return text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


class JobTable(ScrollView, can_focus=True):
    """Rows are jobs, drawn from the board; the first line is the header."""

    COMPONENT_CLASSES = {
        "job-table--header",
        "job-table--cursor",
        "job-table--odd-row",
        "job-table--hint",
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
    JobTable > .job-table--hint {
        color: $text-muted;
        text-style: italic;
    }
    """
    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

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
        self._view_settings: tuple[JobState | None, SortColumn, bool] = (
            None,
            SortColumn.ADDED,
            False,
        )
        self._built_at = float("-inf")
        self._stale = False  # the model changed in a way the index may not show yet
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(LINES_KEPT)
        self._styles: dict[str, Style] = {}

    # -- the index -------------------------------------------------------------------------

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

    def get_cell(self, key: str, column: str) -> Text:
        """One cell as it shows (for tests and the command palette)."""
        view = self.board.jobs[key]
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
        resort: bool = False,
    ) -> None:
        """Bring the index up to date with the model's changes since the last frame and
        repaint. ``resort``: the user changed the filter or sort (rebuild at once)."""
        self.board, self.now = board, now
        settings = (state_filter, sort_column, reverse)
        plain_order = state_filter is None and sort_column is SortColumn.ADDED and not reverse
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

    def _rebuild(self, settings: tuple[JobState | None, SortColumn, bool]) -> None:
        state_filter, sort_column, reverse = settings
        jobs, now = self.board.jobs, self.now
        if state_filter is None:
            order = list(jobs)
        else:
            order = [key for key, view in jobs.items() if matches(view, state_filter)]
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
        self.virtual_size = Size(TABLE_WIDTH, len(self.order) + 1)  # + the header line

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
            for column, _, width in COLUMNS:
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

    # -- drawing ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the view, cut to the horizontal scroll position."""
        width = self.scrollable_content_region.width
        left = int(self.scroll_x)
        return self._full_line(y, max(width, TABLE_WIDTH)).crop(left, left + width)

    def _full_line(self, y: int, width: int) -> Strip:
        if y == 0:
            return self._header(width)
        row = int(self.scroll_y) + y - 1
        if not self.order:
            return self._hint(width) if y == 2 else Strip.blank(width, self._style("hint"))
        if row >= len(self.order):
            return Strip.blank(width, self.rich_style)
        key = self.order[row]
        view = self.board.jobs.get(key)
        if view is None:  # removed since the index was built: drawn blank until the next frame
            return Strip.blank(width, self.rich_style)
        texts = tuple(cell_text(view, column, self.now) for column in COLUMNS_KEYS)
        styles = tuple(cell_style(view, column) for column in COLUMNS_KEYS)
        cursor = key == self._cursor_key
        line_key = (texts, styles, cursor, row % 2, width, self.has_focus)
        strip = self._lines.get(line_key)
        if strip is None:
            strip = self._render_row(texts, styles, cursor, row % 2 == 1, width)
            self._lines[line_key] = strip
        return strip

    def _render_row(
        self, texts: tuple[str, ...], styles: tuple[str, ...], cursor: bool, odd: bool, width: int
    ) -> Strip:
        base = self._style("cursor" if cursor else ("odd-row" if odd else ""))
        segments = [Segment(" ", base)]
        for (column, _, column_width), text, style in zip(COLUMNS, texts, styles, strict=True):
            cell = fit(text, column_width, column in RIGHT_ALIGNED)
            if cursor:
                segments.append(Segment(cell, parse_style(style) + base))
            else:
                segments.append(Segment(cell, base + parse_style(style)))
            segments.append(Segment(" ", base))
        return Strip(segments).extend_cell_length(width, base)

    def _header(self, width: int) -> Strip:
        state_filter, sort_column, reverse = self._view_settings
        del state_filter
        line_key = ("header", sort_column, reverse, width)
        strip = self._lines.get(line_key)
        if strip is None:
            base = self._style("header")
            segments = [Segment(" ", base)]
            for column, label, column_width in COLUMNS:
                if column is sort_column:
                    label += " ▼" if reverse else " ▲"
                segments.append(Segment(fit(label, column_width), base))
                segments.append(Segment(" ", base))
            strip = Strip(segments).extend_cell_length(width, base)
            self._lines[line_key] = strip
        return strip

    def _hint(self, width: int) -> Strip:
        state_filter = self._view_settings[0]
        if len(self.board) == 0:
            hint = "No jobs yet: press n to spawn some (s watches the special job)."
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
