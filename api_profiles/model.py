"""What an API profile says, validated: how one job API starts jobs and reports them.

A profile is a small TOML file. The client reads it to start and watch jobs of that API;
the server reads the same file to emulate the API, so every profile is tested end to end
here; the documented example answers of each API (tests/fixtures/profiles/) keep both
honest. Pointers are JSON pointers (RFC 6901) into an answer's body.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
NAME = r"^[a-z0-9][a-z0-9-]*$"


class Phase(StrEnum):
    """What a job's state means, whatever the API calls it."""

    PENDING = "pending"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _pointer(value: str | None) -> str | None:
    if value is not None and value and not value.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/' (got {value!r})")
    return value


class Auth(Strict):
    """The key goes in ``header``, as ``scheme key`` (or the key alone without a scheme),
    read from the environment variable ``env``: never from the file, never logged."""

    header: str = Field(min_length=1, pattern=r"^[A-Za-z0-9-]+$")
    scheme: str = ""
    env: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Start(Strict):
    """``method path`` with ``body`` (placeholders ``{name}`` filled from the job's
    variables); the new job's id is at ``id`` in the answer, or is the last path segment
    of the URL in ``status_url_header``; the URL to poll may be given at ``status_url``
    (a pointer) or in ``status_url_header``."""

    method: Literal["POST", "PUT"] = "POST"
    path: str = Field(pattern=r"^/")
    body: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    status_url: str | None = None
    status_url_header: str | None = None
    accepted: list[int] = Field(default_factory=lambda: [200, 201, 202])

    _check_pointers = field_validator("id", "status_url")(_pointer)

    @model_validator(mode="after")
    def _an_id_somewhere(self) -> Start:
        if self.id is None and self.status_url_header is None:
            raise ValueError("start needs `id` (a pointer) or `status_url_header`")
        return self


class LongPoll(Strict):
    """How a status request asks the server to hold it: a query parameter, or a header
    whose value is ``value`` with ``{seconds}`` filled in (``Prefer: wait=10``)."""

    query: str | None = None
    header: str | None = None
    value: str = "{seconds}"
    max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one_way(self) -> LongPoll:
        if (self.query is None) == (self.header is None):
            raise ValueError("long_poll needs exactly one of `query` or `header`")
        return self


class Status(Strict):
    """``GET path`` (``{id}`` filled in) answers the job's state at ``state``, named in
    ``states``; optional pointers give progress (0-1 or 0-100), an estimate of the seconds
    left, and the error's message."""

    path: str = Field(pattern=r"^/")
    state: str
    states: dict[Phase, list[str]]
    progress: str | None = None
    progress_scale: float = Field(default=1.0, gt=0)  # 100 when the API counts percent
    eta: str | None = None
    error: str | None = None
    retry_after: bool = True  # a Retry-After on a pending answer says when to ask again

    _check_pointers = field_validator("state", "progress", "eta", "error")(_pointer)

    @field_validator("path")
    @classmethod
    def _has_id(cls, path: str) -> str:
        if "{id}" not in path:
            raise ValueError(f"the status path must contain {{id}} (got {path!r})")
        return path

    @model_validator(mode="after")
    def _states_are_distinct(self) -> Status:
        if not self.states.get(Phase.PENDING) or not (
            self.states.get(Phase.COMPLETED) or self.states.get(Phase.ERROR)
        ):
            raise ValueError("states needs a pending name and a completed or error name")
        seen: dict[str, Phase] = {}
        for phase, names in self.states.items():
            for name in names:
                if name in seen:
                    raise ValueError(f"state {name!r} is both {seen[name]} and {phase}")
                seen[name] = phase
        return self

    def phase_of(self, state: object) -> Phase | None:
        """The phase a state name means; None when the profile does not know it."""
        for phase, names in self.states.items():
            if state in names:
                return phase
        return None


class Emulation(Strict):
    """How the server plays this API: the pending states in order (each takes an equal
    share of the job's duration), fields every answer carries, and the Retry-After it
    sends on pending answers (when hints are on)."""

    pending: list[str] = Field(default_factory=list)
    answer: dict[str, Any] = Field(default_factory=dict)
    retry_after_s: int | None = Field(default=None, ge=1)


class Profile(Strict):
    """One job API. ``native`` profiles speak videosim's own protocol: the client uses
    everything it knows of it (push, batches, hints); the others get the per-job
    strategies their profile offers."""

    name: str = Field(pattern=NAME)
    title: str
    docs: list[str] = Field(default_factory=list)  # the pages the profile was written from
    native: bool = False
    auth: Auth | None = None
    start: Start
    status: Status
    long_poll: LongPoll | None = None
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    emulation: Emulation = Emulation()

    @model_validator(mode="after")
    def _emulation_states_are_known(self) -> Profile:
        for name in self.emulation.pending:
            if self.status.phase_of(name) is not Phase.PENDING:
                raise ValueError(f"emulation.pending: {name!r} is not a pending state")
        return self

    def status_path(self, job_id: str) -> str:
        return self.status.path.replace("{id}", quote(job_id, safe=""))

    def start_body(self, values: dict[str, object]) -> dict[str, Any]:
        """The start body with every placeholder filled: a string that is one placeholder
        takes the value's type (a field whose value is not given is left out), one with
        text around it becomes text."""
        known = {key: value for key, value in {**self.variables, **values}.items()
                 if value is not None}  # fmt: skip
        unset = object()

        def fill(node: object) -> object:
            if isinstance(node, dict):
                filled = {key: fill(value) for key, value in node.items()}
                return {key: value for key, value in filled.items() if value is not unset}
            if isinstance(node, list):
                return [fill(value) for value in node]
            if isinstance(node, str):
                whole = PLACEHOLDER.fullmatch(node)
                if whole:
                    return known.get(whole.group(1), unset)
                return PLACEHOLDER.sub(lambda m: str(known.get(m.group(1), m.group(0))), node)
            return node

        filled = fill(self.start.body)
        assert isinstance(filled, dict)
        return filled
