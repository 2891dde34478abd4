"""One command-line layer for every videosim program: flags on top of pydantic-settings.

The server, the headless runner, the dashboard and the benchmarks all read their
configuration the same way: defaults < ``.env`` < ``VIDEOSIM_*`` environment < flags.
Each program keeps its own settings model (``ServerSettings``, ``ClientSettings``...);
this module is the part they share:

- :class:`CommandLine` builds the argparse parser. A *setting* flag names the model
  field it sets and reaches the model only when it is given, so the environment and
  ``.env`` still count below it; a program's own flags (``--jobs``, ``--web``...) are
  plain argparse arguments next to them.
- Every problem, a bad flag or a bad value from any source, is one line on stderr,
  ``<prog>: <message>``, and exit code 2 (:data:`EXIT_USAGE`), never a usage dump or a
  traceback.

It imports none of the three parts, so each of them (the server included, which
stands alone) can use it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import AliasChoices, BaseModel, ValidationError

EXIT_USAGE = 2
_SETTING = "setting:"  # argparse dest prefix of the flags that set a model field

Model = TypeVar("Model", bound=BaseModel)


def value_name(field: str) -> str:
    """What ``--help`` calls a setting's value when the flag names none: ``URL``,
    ``SECONDS``, ``N``, ``KEY``, else the field's own name (never argparse's ``dest``)."""
    if field == "url" or field.endswith("_url"):
        return "URL"
    if field.endswith("_s"):
        return "SECONDS"
    if field == "seed" or field.startswith(("max_", "min_")):
        return "N"
    if field.endswith("_key"):
        return "KEY"
    return field.upper()


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535; never wrapped modulo 65536."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port number from 0 to 65535 (got {text!r})") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port number from 0 to 65535 (got {port})")
    return port


def listen_problem(host: str, port: int) -> str | None:
    """Why nothing can listen on ``host:port`` (taken, no such address), or None. Asked
    before any banner, so a busy port is one line and no half start."""
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as error:
        why = os.strerror(error.errno) if error.errno else str(error)
        return f"cannot listen on {host}:{port}: {why}"


class UsageError(Exception):
    """A value a program checks itself was refused; the message is the line shown."""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message)


def fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def first_error_line(error: ValidationError, model: type[BaseModel]) -> str:
    """The first problem as one line naming the field, even when it came in by an alias
    (``VIDEOSIM_DELAY``, ``RETRIES``): ``invalid setting delay: Input should be ...``."""
    first = error.errors()[0]
    if not first["loc"]:  # a rule across fields: its message names them
        return str(first["msg"]).removeprefix("Value error, ")
    where = str(first["loc"][0])
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if where == name or where.lower() in (str(c).lower() for c in choices if c):
            where = name
            break
    return f"invalid setting {where}: {first['msg']}"


def field_help(model: type[BaseModel], field: str, env: str | None = None) -> str:
    """A setting flag's help from the model: its description, default and variable."""
    info = model.model_fields[field]
    default: Any = "none" if info.default is None else info.default
    if isinstance(default, bool):
        default = "on" if default else "off"
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{info.description} (default: {default}; env {env or prefix + field.upper()})"


class CommandLine:
    """A program's flags: setting flags (a model field each) and the program's own."""

    def __init__(self, prog: str, description: str, epilog: str | None = None) -> None:
        self.prog = prog
        self.parser = OneLineErrorParser(prog=prog, description=description, epilog=epilog)

    def group(self, title: str) -> argparse._ArgumentGroup:
        return self.parser.add_argument_group(title)

    def setting(
        self,
        *names: str,
        field: str,
        group: argparse._ArgumentGroup | None = None,
        **options: Any,
    ) -> None:
        """A flag that sets ``field`` of the settings model, only when given."""
        target = group or self.parser
        if not {"metavar", "choices", "action"} & options.keys():
            options["metavar"] = value_name(field)
        target.add_argument(*names, dest=_SETTING + field, default=argparse.SUPPRESS, **options)

    def option(
        self, *names: str, group: argparse._ArgumentGroup | None = None, **options: Any
    ) -> argparse.Action:
        """A flag of the program's own (not a setting); plain argparse."""
        return (group or self.parser).add_argument(*names, **options)

    def parse(self, argv: Sequence[str] | None) -> tuple[dict[str, Any], argparse.Namespace]:
        """(the settings given as flags, by field; everything else as a namespace)."""
        namespace = self.parser.parse_args(argv)
        given = {
            name.removeprefix(_SETTING): value
            for name, value in vars(namespace).items()
            if name.startswith(_SETTING)
        }
        for name in list(vars(namespace)):
            if name.startswith(_SETTING):
                delattr(namespace, name)
        return given, namespace

    def settings(self, model: type[Model], given: dict[str, Any]) -> Model:
        """The model from flags over environment over ``.env`` over defaults; exits 2 with
        one line naming the field when any value is invalid."""
        try:
            return model(**given)
        except ValidationError as error:
            self.fail(first_error_line(error, model))

    def fail(self, message: str) -> NoReturn:
        fail(self.prog, message)
