"""The live job table: a view of the :class:`~tui.model.JobBoard`, updated cell by cell.

The table is not rebuilt on updates. Each frame the app hands it the keys the model marked
changed; the table adds rows for new jobs, removes rows for cleared or filtered-out ones,
and calls ``update_cell`` only where the shown text differs, and only for rows on screen:
a changed row off screen is marked stale and brought up to date when it scrolls into view
(at most one frame late), so a frame costs the same with 20 rows or 20,000. Countdown and
elapsed time change with the clock alone and are refreshed the same way. Row keys are the
model's keys, so the cursor is put back on the same job after rows move.
"""

from __future__ import annotations

from collections.abc import Collection

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from client_core import DelayReason, Outcome
from tui.model import SPECIAL_JOB_ID, JobBoard, JobState, JobView, SortColumn, sort_key

# (column key, label, width): fixed widths, so no update ever re-measures a column.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    (SortColumn.JOB, "Job", 10),
    (SortColumn.STATUS, "Status", 9),
    (SortColumn.ATTEMPT, "Attempt", 7),
    (SortColumn.NEXT, "Next", 6),
    (SortColumn.STRATEGY, "Strategy", 9),
    (SortColumn.ELAPSED, "Elapsed", 7),
    (SortColumn.REQUESTS, "Requests", 8),
    (SortColumn.OUTCOME, "Outcome", 11),
)
COLUMNS_KEYS = tuple(key for key, _, _ in COLUMNS)
CLOCK_COLUMNS = (SortColumn.NEXT, SortColumn.ELAPSED)
BULK_REMOVE_ROWS = 20  # above this, removing rows one by one costs more than re-adding the rest
RENDERED_CELLS_KEPT = 10_000  # as many as DataTable's own cell cache keeps

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


class KeyedText(Text):
    """Cell text that remembers its row key, so ``DataTable.sort`` can sort by the model."""

    __slots__ = ("row_key",)

    def __init__(self, text: str, row_key: str, style: str = "") -> None:
        super().__init__(text, style=style)
        self.row_key = row_key


def short_id(view: JobView) -> str:
    """First 8 characters of a uuid; ``special`` for the special job; ``#n`` for re-watches."""
    base = "special" if view.job_id == SPECIAL_JOB_ID else view.job_id[:8]
    _, hash_mark, number = view.key.partition("#")
    return f"{base}#{number}" if hash_mark else base


def cell_text(view: JobView, column: str, now: float) -> str:
    """The plain text of one cell; the table compares these to skip unchanged cells."""
    match column:
        case SortColumn.JOB:
            return short_id(view)
        case SortColumn.STATUS:
            return view.status or "no answer"
        case SortColumn.ATTEMPT:
            return str(view.attempt)
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
    if column == SortColumn.OUTCOME:
        return OUTCOME_STYLES.get(view.outcome, "magenta") if view.outcome else "magenta"
    if column == SortColumn.JOB:
        return "bold"
    return ""


def cell(view: JobView, column: str, text: str) -> Text:
    """Server text becomes a Text, never markup: a ``[`` in an error cannot break a cell."""
    if column == SortColumn.JOB:
        return KeyedText(text, view.key, cell_style(view, column))
    return Text(text, style=cell_style(view, column))


class JobTable(DataTable[Text]):
    """Rows are jobs; row keys are the model's keys."""

    def __init__(self, *, id: str | None = None) -> None:
        # Cell renderings by content (see _render_cell); DataTable's set-up already clears it.
        self._rendered: LRUCache[tuple[object, ...], list[list[Segment]]] = LRUCache(
            RENDERED_CELLS_KEPT
        )
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: dict[str, dict[str, str]] = {}  # row key -> column -> text in the cells
        self._stale: set[str] = set()  # rows whose cells lag the model (changed off screen)

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def cursor_key(self) -> str | None:
        """The model key of the row under the cursor."""
        if not self.row_count:
            return None
        row = min(self.cursor_row, self.row_count - 1)
        return self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value

    def shown_keys(self) -> list[str]:
        """Row keys in screen order."""
        return [str(row.key.value) for row in self.ordered_rows]

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
        """Apply the model's changes since the last frame (call inside ``App.batch_update``).

        ``resort`` forces a re-sort (the filter or sort order changed)."""
        cursor_key = self.cursor_key
        dropped = [key for key in removed if key in self._shown]
        updated: list[JobView] = []
        added: list[JobView] = []
        for key in changed:
            view = board.jobs.get(key)
            if view is None or (state_filter is not None and view.state is not state_filter):
                if key in self._shown:
                    dropped.append(key)
            elif key in self._shown:
                updated.append(view)
            else:
                added.append(view)
        self._drop_many(board, dropped, now)
        self._stale.update(view.key for view in updated)
        for view in added:
            self._add(view, now)
        keeps_order = sort_column is SortColumn.ADDED and not reverse and not resort
        clock_sorted = sort_column.time_dependent and any(not v.finished for v in board)
        if not keeps_order and (resort or added or changed or clock_sorted):
            self.sort(
                SortColumn.JOB,
                key=lambda text: sort_key(board.jobs[text.row_key], sort_column, now),
                reverse=reverse,
            )
        if cursor_key is not None and cursor_key in self._shown:
            row = self.get_row_index(cursor_key)
            if row != self.cursor_row:
                self.move_cursor(row=row, scroll=False)
        self._refresh_rows_in_view(board, now)

    def show_matching(self, board: JobBoard, state_filter: JobState | None, now: float) -> None:
        """Bring the rows in line with a new filter: drop non-matching, add missing."""
        wanted = set(board.matching(state_filter))
        self._drop_many(board, [key for key in self._shown if key not in wanted], now)
        for key in board.matching(state_filter):
            if key not in self._shown:
                self._add(board.jobs[key], now)

    def _add(self, view: JobView, now: float) -> None:
        texts = {key: cell_text(view, key, now) for key in COLUMNS_KEYS}
        self.add_row(*(cell(view, key, text) for key, text in texts.items()), key=view.key)
        self._shown[view.key] = texts

    def _drop(self, key: str) -> None:
        if self._shown.pop(key, None) is not None:
            self._stale.discard(key)
            self.remove_row(key)

    def _drop_many(self, board: JobBoard, keys: list[str], now: float) -> None:
        """Remove rows; many at once by re-adding the rest, since each ``remove_row`` costs
        time proportional to the table (clearing 2,000 rows one by one takes seconds)."""
        if len(keys) <= BULK_REMOVE_ROWS:
            for key in keys:
                self._drop(key)
            return
        gone = set(keys)
        keep = [key for key in self.shown_keys() if key not in gone]
        self.clear()
        self._shown.clear()
        self._stale.clear()  # every row is re-added from the model
        for key in keep:
            self._add(board.jobs[key], now)

    def _update(self, view: JobView, now: float, columns: tuple[str, ...]) -> None:
        shown = self._shown[view.key]
        for column in columns:
            text = cell_text(view, column, now)
            if shown[column] != text:
                shown[column] = text
                self.update_cell(view.key, column, cell(view, column, text))

    def _refresh_rows_in_view(self, board: JobBoard, now: float) -> None:
        """Bring the rows on screen up to date: stale rows entirely, live rows' clock cells
        (countdown, elapsed). Rows off screen wait until they scroll into view."""
        first = max(0, int(self.scroll_y))
        last = min(self.row_count, first + self.size.height)
        for row in range(first, last):
            key = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
            view = board.jobs.get(key) if key is not None else None
            if view is None:
                continue
            if key in self._stale:
                self._stale.discard(view.key)
                self._update(view, now, COLUMNS_KEYS)
            elif not view.finished:
                self._update(view, now, CLOCK_COLUMNS)

    # -- rendering ---------------------------------------------------------------------------

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """Render one cell, reusing an earlier rendering of the same cell content.

        DataTable keys its render caches on one table-wide update counter, so a single
        ``update_cell`` makes the next repaint render every visible cell again through Rich.
        With live jobs on screen the countdown and elapsed cells change every frame, so that
        was every cell ten times a second (~30 ms a frame at 120x40, most of the UI thread's
        time, taken from the polling engine that shares the interpreter). Here a cell's
        rendering is keyed on what decides it: its text and style, its position (the
        row/column metadata clicks use), the row style, cursor and hover, width and focus.
        A frame then renders only the cells that changed (two of eight per live row).
        ``_render_cell`` is DataTable's private hook; the snapshot tests and
        tests/tui/test_job_table.py catch a Textual release that changes it.
        """
        content = self._content_at(row_index, column_index)
        if content is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (
            content.plain,
            content.style,
            tuple(content.spans),
            row_index,
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        lines = self._rendered.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._rendered[key] = lines
        return lines

    def _content_at(self, row_index: int, column_index: int) -> Text | None:
        """The Text a cell shows (a header label, or one of our cells); None otherwise."""
        if column_index < 0:  # row labels: this table has none
            return None
        if row_index < 0:
            content: object = self.ordered_columns[column_index].label
        else:
            content = self.get_cell_at(Coordinate(row_index, column_index))
        return content if isinstance(content, Text) else None

    def _clear_caches(self) -> None:
        """DataTable drops its render caches when a display setting changes; so do we."""
        super()._clear_caches()
        self._rendered.clear()

    def notify_style_update(self) -> None:
        """A theme or CSS change restyles every cell."""
        super().notify_style_update()
        self._rendered.clear()
