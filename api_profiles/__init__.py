"""Declarative API profiles: how one long-running-job API starts and reports jobs.

``load_profile("replicate")`` gives a built-in profile (``builtin/*.toml``);
``load_profile("my-api.toml")`` reads a file. A bad name or file raises
:class:`ProfileError` with one line naming the file, the line and the field. The client,
the runner, the dashboard and the server's emulator all read profiles through here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jsonpointer

from api_profiles.model import Auth, Emulation, LongPoll, Phase, Profile, Start, Status
from settings_cli.toml_files import TomlFileError, parse_toml_model

__all__ = [
    "DEFAULT_PROFILE",
    "Auth",
    "Emulation",
    "LongPoll",
    "Phase",
    "Profile",
    "ProfileError",
    "Start",
    "Status",
    "builtin_names",
    "load_profile",
    "read_pointer",
    "write_pointer",
]

DEFAULT_PROFILE = "videosim"


class ProfileError(ValueError):
    """A profile that cannot be used; the message is one line."""


def builtin_names() -> list[str]:
    folder = resources.files("api_profiles") / "builtin"
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir()
                  if entry.name.endswith(".toml"))  # fmt: skip


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a profile file by path."""
    if name_or_path in builtin_names():
        source = resources.files("api_profiles") / "builtin" / f"{name_or_path}.toml"
        return parse_profile(source.read_text(encoding="utf-8"), f"{name_or_path} (built in)")
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        known = ", ".join(builtin_names())
        raise ProfileError(f"unknown profile {name_or_path!r}: a built-in name ({known}) "
                           "or the path of a .toml file")  # fmt: skip
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    return parse_profile(text, str(path))


def parse_profile(text: str, where: str) -> Profile:
    try:
        return parse_toml_model(text, where, Profile)
    except TomlFileError as exc:
        raise ProfileError(str(exc)) from None


def read_pointer(document: object, pointer: str) -> object:
    """The value at ``pointer``, or :data:`None` when the answer has nothing there."""
    if pointer == "":
        return document
    try:
        return jsonpointer.resolve_pointer(document, pointer, None)
    except (jsonpointer.JsonPointerException, TypeError):
        return None


def write_pointer(document: dict[str, Any], pointer: str, value: object) -> None:
    """Set ``pointer`` in ``document``, creating the objects on the way (the emulator
    builds answers this way)."""
    parts = jsonpointer.JsonPointer(pointer).parts
    node: dict[str, Any] = document
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
