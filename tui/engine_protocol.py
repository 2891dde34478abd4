"""What the dashboard and its polling engine say to each other, and how it is framed.

The engine runs in a process of its own (see tui.engine). Commands go from the dashboard
to the engine, engine messages come back; both are msgspec structs encoded as MessagePack
and framed by a 4-byte big-endian length, over the child's stdin and stdout pipes.

The engine sends one :class:`Delta` per ``batch_interval_s`` (0.1 s) holding only what
changed: for
each changed row, only its changed fields (a ``tui.model.RowUpdate``), plus the start
counters, the server's health when it changed, and the history of the one job the
dashboard follows (the detail view).
"""

from __future__ import annotations

import struct
from typing import Any, TypeAlias

import msgspec

from client_core import ClientOptions
from client_core.comparison import BatchJob, PolicyPreset, PolicyRun
from tui.model import JobSpec, PollRecord, RowUpdate

LENGTH = struct.Struct(">I")


class Configure(msgspec.Struct, tag=True):
    """The first command: which server, and how to run."""

    url: str
    client_options: ClientOptions
    batch_interval_s: float
    health_interval_s: float
    history_length: int
    start_concurrency: int
    start_deadline_s: float


class StartJobs(msgspec.Struct, tag=True):
    specs: list[JobSpec]


class Watch(msgspec.Struct, tag=True):
    """Watch an existing job under ``key``: the special job, a retry, or (after an engine
    restart) a job the previous engine was watching, with its counters so far."""

    key: str
    job_id: str
    spec: JobSpec
    started_at: float
    attempt: int = 0
    skipped: int = 0
    requests: int = 0


class Cancel(msgspec.Struct, tag=True):
    keys: list[str]


class Forget(msgspec.Struct, tag=True):
    """Rows the dashboard cleared: the engine drops them too."""

    keys: list[str]


class Follow(msgspec.Struct, tag=True):
    """Send this job's poll history with the deltas (None: no job)."""

    key: str | None


class FetchRecord(msgspec.Struct, tag=True):
    """The server's record of a job (GET /jobs/{id}) for the detail view, fetched by the
    engine's client in its interactive lane; answered by a :class:`RecordAnswer`."""

    request: int
    job_id: str


class RunComparison(msgspec.Struct, tag=True):
    """The compare view's batch under every preset, on the engine's client (client_core.comparison);
    answered by :class:`ComparisonProgress` messages and one :class:`ComparisonDone`."""

    request: int
    presets: list[PolicyPreset]
    batch: list[BatchJob]
    scenario: str | None = None  # the server must play it; its timeline is started first


class StopComparison(msgspec.Struct, tag=True):
    """The view that asked has gone: cancel every start and watch of that comparison."""

    request: int


Command: TypeAlias = (
    Configure
    | StartJobs
    | Watch
    | Cancel
    | Forget
    | Follow
    | FetchRecord
    | RunComparison
    | StopComparison
)


class Health(msgspec.Struct):
    ok: bool | None
    latency_s: float | None = None
    error: str | None = None
    note: str = ""  # e.g. "original API, no health route"
    circuit_open: bool = False  # the client's breaker holds every poll back
    push_note: str = ""  # how the event stream is doing, e.g. "... connected 62s, heard 2s ago"


class History(msgspec.Struct):
    """New poll records of the followed job; ``reset``: these replace what was sent."""

    key: str
    reset: bool
    records: list[PollRecord]


class Ready(msgspec.Struct, tag=True):
    """The engine's client is open: jobs can be started and watched."""

    pid: int


class Delta(msgspec.Struct, tag=True, omit_defaults=True):
    rows: dict[str, RowUpdate] = {}
    starting: int = 0
    start_failures: int = 0
    rate_limited: int = 0  # 429 answers so far
    unavailable: int = 0  # 503 answers so far
    health: Health | None = None
    history: History | None = None


class RecordAnswer(msgspec.Struct, tag=True):
    """The answer to :class:`FetchRecord` ``request``: the record, or why there is none."""

    request: int
    record: dict[str, Any] | None = None
    error: str | None = None


class ComparisonProgress(msgspec.Struct, tag=True):
    request: int
    done: int  # watches of the comparison finished so far


class ComparisonDone(msgspec.Struct, tag=True):
    """The end of :class:`RunComparison` ``request``: every set-up's run, or why it failed."""

    request: int
    runs: list[PolicyRun] | None = None
    error: str | None = None


EngineMessage: TypeAlias = Ready | Delta | RecordAnswer | ComparisonProgress | ComparisonDone


class FrameCodec:
    """Frames outgoing messages and decodes incoming ones, for one side:
    ``FrameCodec(Command)`` in the engine reads commands; ``FrameCodec(EngineMessage)`` in
    the dashboard reads engine messages. (Not to be confused with
    :class:`client_core.channel.Channel`, the client's HTTP lane to the server.)"""

    def __init__(self, incoming: Any) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(incoming)

    def frame(self, message: msgspec.Struct) -> bytes:
        payload = self._encoder.encode(message)
        return LENGTH.pack(len(payload)) + payload

    def decode(self, payload: bytes) -> Any:
        return self._decoder.decode(payload)
