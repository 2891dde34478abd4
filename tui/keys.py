"""Every key of the dashboard in one place: the footers, the help screen, the command
palette and docs/tui.md are all read from these lists, so they cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class KeyAction:
    key: str  # Textual key names, comma-separated for alternatives
    action: str
    label: str  # short, for the footer
    description: str  # for the help screen and the command palette
    show: bool = True  # in the footer (which must fit 80 columns; the help lists them all)

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.label,
            show=self.show,
            id=self.action,
            tooltip=self.description,
        )


MAIN_KEYS: tuple[KeyAction, ...] = (
    KeyAction("n", "spawn", "Spawn", "Spawn jobs: count, duration, outcome, strategy, policy"),
    KeyAction(
        "s", "spawn_special", "Special", "Watch special-pending-job (never finishes)", show=False
    ),
    KeyAction(
        "w", "watch_ids", "Watch ids", "Watch jobs that exist already: paste their ids", show=False
    ),
    KeyAction("enter", "open_detail", "Detail", "Open the job under the cursor", show=False),
    KeyAction(
        "space",
        "toggle_select",
        "Select",
        "Select or unselect the row under the cursor",
        show=False,
    ),
    KeyAction(
        "V",
        "select_range",
        "Range",
        "Select the rows from the last selected one to the cursor",
        show=False,
    ),
    KeyAction(
        "asterisk", "select_all", "All", "Select every shown row (again: unselect them)", show=False
    ),
    KeyAction(
        "escape", "clear_selection", "Unselect", "Clear the selection (and the search)", show=False
    ),
    KeyAction("c", "cancel", "Cancel", "Cancel the selected watches, or the one under the cursor"),
    KeyAction("C", "cancel_all", "Cancel all", "Cancel every live watch", show=False),
    KeyAction(
        "r", "retry", "Retry", "Retry the selected finished jobs, or the one under the cursor"
    ),
    KeyAction(
        "R",
        "retry_failed",
        "Retry failed",
        "Retry every job that ended in error or failed",
        show=False,
    ),
    KeyAction(
        "y",
        "copy_id",
        "Copy id",
        "Copy the job id (of every selected row) to the clipboard",
        show=False,
    ),
    KeyAction("x", "clear_finished", "Clear", "Remove finished jobs from the table", show=False),
    KeyAction("f", "cycle_filter", "Filter", "Cycle the status filter"),
    KeyAction("slash", "search", "Search", "Search: a job id prefix or any text in the row"),
    KeyAction("o", "cycle_sort", "Sort", "Cycle the sort column (or click a header)"),
    KeyAction(
        "S", "pick_sort", "Sort by", "Pick the sort column and order from a list", show=False
    ),
    KeyAction("O", "reverse_sort", "Reverse", "Reverse the sort order", show=False),
    KeyAction(
        "P",
        "toggle_pause",
        "Pause",
        "Pause the table for reading (polling goes on); again: catch up",
        show=False,
    ),
    KeyAction("t", "choose_columns", "Columns", "Choose the table's columns", show=False),
    KeyAction("p", "edit_policy", "Policy", "Edit the default strategy and backoff policy"),
    KeyAction(
        "m", "compare", "Compare", "Run one batch under several policies side by side", show=False
    ),
    KeyAction("e", "export", "Export", "Export the board to CSV and JSON files", show=False),
    KeyAction(
        "L",
        "event_log",
        "Log",
        "Event log: toasts, start failures, server and circuit changes",
        show=False,
    ),
    KeyAction("question_mark,f1", "help", "Help", "Show every key and what it does"),
    KeyAction("q,ctrl+c", "quit", "Quit", "Quit from the job table (stops an embedded server)"),
)

# the table's own keys (it has the focus on the main screen): vi keys beside the arrows
TABLE_KEYS: tuple[KeyAction, ...] = (
    KeyAction("up,k", "cursor_up", "Up", "Cursor up", show=False),
    KeyAction("down,j", "cursor_down", "Down", "Cursor down", show=False),
    KeyAction("pageup", "page_up", "Page up", "A page up", show=False),
    KeyAction("pagedown", "page_down", "Page down", "A page down", show=False),
    KeyAction("home,g", "first", "First", "First row", show=False),
    KeyAction("end,G", "last", "Last", "Last row", show=False),
    KeyAction("enter", "select", "Open", "Open the job under the cursor", show=False),
)

SEARCH_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "clear", "Clear", "Clear the search and go back to the table"),
    KeyAction("enter", "done", "Done", "Keep the search and go back to the table"),
)

PICKER_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "close", "Close", "Close without changing anything"),
)

COLUMN_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "close", "Cancel", "Close without changing anything"),
    KeyAction("ctrl+s", "submit", "Show", "Show the ticked columns (same as the Show button)"),
)

WATCH_IDS_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "close", "Cancel", "Close without watching anything"),
    KeyAction("ctrl+s", "submit", "Watch", "Watch the ids (same as the Watch button)"),
)

DETAIL_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "back", "Back", "Back to the job table"),
    KeyAction("c", "cancel", "Cancel", "Cancel this job's watch"),
    KeyAction(
        "r", "retry", "Retry", "Retry this job: a new watch opens here, a fresh job gets a toast"
    ),
    KeyAction("g", "reload_record", "Reload", "Fetch the server's record again"),
    KeyAction(
        "e", "export", "Export", "Export this job's poll history to CSV and JSON", show=False
    ),
)

COMPARE_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "back", "Back", "Back to the job table"),
    KeyAction("ctrl+r", "run", "Run", "Run the batch under every ticked policy"),
    KeyAction("e", "export", "Report", "Export the results run under a scenario (HTML, Markdown)"),
)

EVENT_LOG_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape,L", "back", "Back", "Back to the job table"),
)

# The footer says what the form's buttons say.
SPAWN_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "close", "Cancel", "Close the form, spawning nothing"),
    KeyAction("ctrl+s", "submit", "Spawn", "Spawn the jobs (the form's Spawn button)"),
)
POLICY_KEYS: tuple[KeyAction, ...] = (
    KeyAction("escape", "close", "Cancel", "Close the editor, keeping the old defaults"),
    KeyAction("ctrl+s", "submit", "Save", "Save the defaults for new jobs (the Save button)"),
)

KEY_GROUPS: tuple[tuple[str, tuple[KeyAction, ...]], ...] = (
    ("Job table", MAIN_KEYS),
    ("Moving in the table", TABLE_KEYS),
    ("Search box", SEARCH_KEYS),
    ("Sort picker", PICKER_KEYS),
    ("Column chooser", COLUMN_KEYS),
    ("Watch ids", WATCH_IDS_KEYS),
    ("Job detail", DETAIL_KEYS),
    ("Compare", COMPARE_KEYS),
    ("Event log", EVENT_LOG_KEYS),
    ("Spawn form", SPAWN_KEYS),
    ("Policy editor", POLICY_KEYS),
)
