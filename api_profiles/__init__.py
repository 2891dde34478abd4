"""Declarative API profiles: how one long-running-job API starts and reports jobs.

``load_profile("replicate")`` gives a built-in profile (``builtin/*.toml``);
``load_profile("my-api.toml")`` reads a file. A bad name or file raises
:class:`ProfileError` with one line naming the file, the line and the field. The client,
the runner, the dashboard and the server's emulator all read profiles through here.
"""

from __future__ import annotations

from typing import Annotated, Any

import jsonpointer
from pydantic import AfterValidator

from api_profiles.model import Auth, Emulation, LongPoll, Phase, Profile, Start, Status
from settings_cli import toml_files
from settings_cli.toml_files import TomlFileError, parse_toml_model, read_source

__all__ = [
    "DEFAULT_PROFILE",
    "Auth",
    "Emulation",
    "LongPoll",
    "Phase",
    "Profile",
    "ProfileError",
    "ProfileName",
    "Start",
    "Status",
    "builtin_names",
    "load_profile",
    "read_pointer",
    "write_pointer",
]

DEFAULT_PROFILE = "videosim"


class ProfileError(TomlFileError):
    """A profile that cannot be used; the message is one line."""


def builtin_names() -> list[str]:
    return toml_files.builtin_names("api_profiles")


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a profile file by path."""
    source = read_source("api_profiles", "profile", name_or_path, ProfileError)
    return parse_toml_model(source.text, source.where, Profile, ProfileError)


def _known(name_or_path: str) -> str:
    load_profile(name_or_path)  # raises ProfileError, a ValueError, with one line
    return name_or_path


#: A setting naming a profile: refused at once, in one line, when it names none.
ProfileName = Annotated[str, AfterValidator(_known)]


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
