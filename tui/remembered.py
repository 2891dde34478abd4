"""Settings remembered between runs: theme, strategy, policy, sort and columns.

An operator who picked a theme, tuned a policy and sorted by elapsed time wants the same
dashboard tomorrow. On exit the CLI saves those choices as JSON in the user's config
directory (platformdirs: ``~/.config/videosim/dashboard.json`` on Linux, which
``XDG_CONFIG_HOME`` moves); on start it restores them, except where a flag or the
environment says otherwise (what the user typed today wins over what was remembered).
``--reset`` forgets the file.

A file that cannot be read or does not hold valid settings (hand-edited, truncated,
from another version) is never fatal: :func:`load` says why in one line and the dashboard
starts from its defaults. No Textual here except :func:`restore` and :func:`snapshot`,
which only read and set a few attributes of the app.
"""

from __future__ import annotations

import json
import os
from collections.abc import Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
from pydantic import TypeAdapter, ValidationError

from client_core import POLICY_FIELDS, BackoffPolicy, Strategy
from tui.model import JobSpec, SortColumn
from tui.settings import APP_NAME

if TYPE_CHECKING:
    from tui.app import VideoSimApp

FILE_NAME = "dashboard.json"

# ClientSettings fields that, when given by a flag or the environment, define the policy:
# the policy's own (but the seed, which also seeds the spawn form), a preset, the seed
# client's BACKOFF_FACTOR.
POLICY_SETTINGS = frozenset({"preset", "backoff_factor", *POLICY_FIELDS} - {"seed"})


@dataclass(frozen=True, slots=True)
class Remembered:
    """The choices kept between runs; None: nothing remembered, use the default."""

    theme: str | None = None
    strategy: Strategy | None = None
    policy: BackoffPolicy | None = None
    sort_column: SortColumn | None = None
    sort_reverse: bool = False
    columns: tuple[SortColumn, ...] | None = None  # the column chooser's, in table order


_ADAPTER = TypeAdapter(Remembered)


def default_path() -> Path:
    return platformdirs.user_config_path(APP_NAME) / FILE_NAME


def load(path: Path) -> tuple[Remembered, str | None]:
    """What was remembered, and a one-line note when the file was there but unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Remembered(), None
    except OSError as exc:
        return Remembered(), f"ignored the saved settings in {path}: {exc.strerror or exc}"
    try:
        return _ADAPTER.validate_json(text), None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        reason = f"{where}: {error['msg']}" if where else error["msg"]
        return Remembered(), f"ignored the saved settings in {path} ({reason})"


def save(path: Path, remembered: Remembered) -> None:
    """Write atomically (a crash mid-write leaves the old file); raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(_ADAPTER.dump_python(remembered, mode="json"), indent=2))
    os.replace(partial, path)


def forget(path: Path | None = None) -> str | None:
    """``--reset``: start from the defaults and remember from scratch; a one-line note
    when the file cannot be removed."""
    path = path or default_path()
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        return f"could not forget the saved settings in {path}: {exc.strerror or exc}"
    return None


@dataclass(frozen=True, slots=True)
class Session:
    """What one run started from: a flag's choice is for that run only, so unless the user
    changes it in the dashboard, what was remembered before is what is saved again."""

    loaded: Remembered
    started: Remembered  # the app's choices once restored
    from_flags: frozenset[str]  # Remembered fields today's flags or environment chose

    def to_save(self, now: Remembered) -> Remembered:
        kept = {
            name: getattr(self.loaded, name)
            for name in self.from_flags
            if getattr(now, name) == getattr(self.started, name)
        }
        return replace(now, **kept)


def open_session(app: VideoSimApp, given: Set[str], path: Path | None = None) -> Session:
    """At start: restore what was remembered; anything ignored is said in a toast."""
    loaded, note = load(path or default_path())
    notes = [note, restore(app, loaded, given)]
    for line in filter(None, notes):
        app.notify(line, title="Settings", severity="warning", markup=False)
    from_flags = {"strategy", "theme"} & set(given)
    if given & POLICY_SETTINGS:
        from_flags.add("policy")
    return Session(loaded=loaded, started=snapshot(app), from_flags=frozenset(from_flags))


def close_session(
    app: VideoSimApp, session: Session | None = None, path: Path | None = None
) -> str | None:
    """At exit: remember the app's choices (see Session); a one-line note when they cannot
    be saved."""
    path = path or default_path()
    choices = snapshot(app)
    if session is not None:
        choices = session.to_save(choices)
    try:
        save(path, choices)
    except OSError as exc:
        return f"could not save settings to {path}: {exc.strerror or exc}"
    return None


def restore(app: VideoSimApp, remembered: Remembered, given: Set[str]) -> str | None:
    """Apply what was remembered to a new app, except what ``given`` (the ClientSettings
    fields set by a flag or the environment, and ``theme`` for --theme) overrides.
    Returns a one-line note when a remembered theme no longer exists."""
    defaults = app.defaults
    strategy = remembered.strategy if "strategy" not in given else None
    policy = remembered.policy if not given & POLICY_SETTINGS else None
    app.defaults = JobSpec(strategy=strategy or defaults.strategy, policy=policy or defaults.policy)
    if remembered.sort_column is not None:
        app.sort_column = remembered.sort_column
        app.sort_reverse = remembered.sort_reverse
    if remembered.columns:
        app.columns = remembered.columns
    if remembered.theme is not None and "theme" not in given:
        if remembered.theme not in app.available_themes:
            return f"ignored the remembered theme {remembered.theme!r}: no such theme"
        app.theme = remembered.theme
    return None


def snapshot(app: VideoSimApp) -> Remembered:
    """The choices to remember, read from the app as the user leaves it."""
    return Remembered(
        theme=app.theme,
        strategy=app.defaults.strategy,
        policy=app.defaults.policy,
        sort_column=app.sort_column,
        sort_reverse=app.sort_reverse,
        columns=app.columns,
    )
