"""The old JSON-lines state file, read once to migrate it into a SQLite store.

Before stores existed, ``--state-file PATH`` saved the jobs to PATH on a graceful
shutdown only, so a crash lost them all. The flag now names a SQLite store file
(:mod:`server.stores.sqlite`); a JSON-lines file found at that path is read with this
module, renamed to ``PATH.json-migrated`` and replaced by the SQLite file, once.
``save_jobs`` writes the old format, for tests and for going back to an older server.

The file is JSON lines, so ``head`` and ``jq`` can read it: a header, then one job per
line in creation order (``requests`` is the job's bounded history of status requests, each
``[at, code, retry_after_s]``)::

    {"format": "videosim-jobs", "version": 1, "saved_at": 1764190005.2, "jobs": 1}
    {"job_id": "9f1c...", "created_at": 1764190000.1, "duration_s": 2.0,
     "outcome": "completed", "status_requests": 1, "first_final_seen_at": null,
     "requests": [[1764190000.7, 200, 2.0]]}

It is written to a temporary file in the same directory and then renamed over the old
one, so a crash while saving leaves the previous file whole. Every problem is raised as
:class:`StateFileError`, one line that the command line prints before exiting with code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.jobs import request_log
from server.jobs.job import DEFAULT_REQUEST_LOG_LENGTH, Job
from server.jobs.request_log import StatusRequest
from server.stores.job_table import JobTable

FORMAT = "videosim-jobs"
VERSION = 1

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class StateFileError(Exception):
    """The state file cannot be read, parsed or written; the message is one line."""


class _Header(BaseModel):
    """The first line: what the file is and how many jobs follow."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["videosim-jobs"]
    version: Literal[1]
    saved_at: float
    jobs: int = Field(ge=0)


class _SavedJob(BaseModel):
    """One job line; unknown fields are refused so a mistyped edit is noticed."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1)
    created_at: FiniteFloat
    duration_s: float = Field(gt=0)  # infinite if the server ran with an infinite delay
    outcome: Literal["completed", "error"]
    status_requests: int = Field(ge=0)
    first_final_seen_at: FiniteFloat | None
    requests: list[tuple[FiniteFloat, int, FiniteFloat | None]] = []

    def to_job(self, log_length: int = DEFAULT_REQUEST_LOG_LENGTH) -> Job:
        job = Job(self.job_id, self.created_at, self.duration_s, self.outcome == "error")
        job.status_requests = self.status_requests
        job.first_final_seen_at = self.first_final_seen_at
        if self.first_final_seen_at is not None:  # the old format knew status answers only
            job.first_final_channel = "status"
        requests = [StatusRequest(*request) for request in self.requests]
        job.log = request_log.build(requests, log_length)
        return job


def load_jobs(store: JobTable, path: Path) -> int:
    """Fill the empty ``store`` with the jobs saved in ``path``; returns how many.

    A missing or empty file means a fresh start.
    """
    jobs = read_jobs(path, store.request_log_length)
    try:
        store.restore(jobs)
    except ValueError as error:
        raise StateFileError(f"invalid state file {path}: {error}") from None
    return len(jobs)


def read_jobs(path: Path, log_length: int) -> list[Job]:
    """The jobs saved in ``path`` in creation order; none if it is missing or empty.

    The directory must exist and be writable, so a file that could never be replaced is
    reported now, not later.
    """
    directory = path.parent
    if not directory.is_dir():
        raise StateFileError(f"invalid state file {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise StateFileError(f"invalid state file {path}: directory {directory} is not writable")
    try:
        with path.open(encoding="utf-8") as lines:
            return list(_read_jobs(lines, path, log_length))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise StateFileError(f"cannot read state file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise StateFileError(
            f"invalid state file {path}: not UTF-8 text ({error.reason})"
        ) from None


def _read_jobs(lines: Iterator[str], path: Path, log_length: int) -> Iterator[Job]:
    header: _Header | None = None
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            if header is None:
                header = _Header.model_validate_json(line)
                continue
            yield _SavedJob.model_validate_json(line).to_job(log_length)
            count += 1
        except ValidationError as error:
            problem = _first_problem(error)
            raise StateFileError(f"invalid state file {path}: line {number}: {problem}") from None
    if header is not None and count != header.jobs:
        raise StateFileError(
            f"invalid state file {path}: the header promises {header.jobs} jobs but "
            f"{count} follow (cut short?)"
        )


def _first_problem(error: ValidationError) -> str:
    """'duration_s: Input should be ...', or 'not valid JSON (...)', on one line."""
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        reason = str(first.get("ctx", {}).get("error", "")).partition(" at line ")[0]
        return f"not valid JSON ({reason})" if reason else "not valid JSON"
    where = ".".join(str(part) for part in first["loc"])
    message = " ".join(str(first["msg"]).split())
    return f"{where}: {message}" if where else message


def save_jobs(store: JobTable, path: Path, saved_at: float) -> int:
    """Write every job of ``store`` to ``path`` atomically; returns how many."""
    header = {"format": FORMAT, "version": VERSION, "saved_at": saved_at, "jobs": len(store)}
    # Same directory, so the rename cannot cross file systems; the pid keeps two servers
    # that share a directory apart. ``open`` applies the umask, as for any new file.
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("w", encoding="utf-8") as out:
            out.write(json.dumps(header) + "\n")
            for job in store.export():
                out.write(json.dumps(_job_line(job)) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as error:
        raise StateFileError(f"cannot save state file {path}: {error.strerror or error}") from None
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)  # only left over if writing failed
    return len(store)


def _job_line(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "created_at": job.created_at,
        "duration_s": job.duration_s,
        "outcome": job.outcome,
        "status_requests": job.status_requests,
        "first_final_seen_at": job.first_final_seen_at,
        "requests": [list(request) for request in job.requests()],
    }
