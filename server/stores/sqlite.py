"""The durable store: jobs in memory for speed, and in a SQLite file so they survive a crash.

Reads never touch the file: the jobs are loaded into a :class:`MemoryJobStore` at
start-up and served from there. Writes go to the file in two ways:

- a start (its jobs and its Idempotency-Key) is committed before it is answered, so an
  answered start survives ``kill -9``, an OOM kill or a power cut (WAL, synchronous=FULL).
  Starts that arrive while a commit runs share the next one (group commit), so the fsync
  is paid once per group, not once per start;
- status counters, first-final-seen and the request log are written behind, at most
  :data:`WRITE_BEHIND_S` later, so a crash may lose the last ~100 ms of them.

SQLite and its fsync run on one thread of their own, never on the event loop. One server
process per file: several processes would each serve their own copy of the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Unpack, get_args

from server.jobs.clock import Clock
from server.jobs.job import Job
from server.models import CallbackAttempt, DeliveryChannel
from server.stores import state_file
from server.stores.base import (
    IdempotencyClaim,
    JobSpec,
    StartedJobs,
    StoreOptions,
    StoreUnavailable,
    SubscriptionQuota,
)
from server.stores.grouped_calls import GroupedCalls
from server.stores.memory import MemoryJobStore, Subscription

logger = logging.getLogger(__name__)

WRITE_BEHIND_S = 0.05  # status counters reach the file at most this late (plus one commit)
EXPIRE_EVERY_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    fails INTEGER NOT NULL,
    status_requests INTEGER NOT NULL DEFAULT 0,
    first_final_seen_at REAL,
    first_final_channel TEXT,
    log BLOB,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    job_ids TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS client_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscription_jobs (
    subscription_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (subscription_id, job_id)
);
CREATE TABLE IF NOT EXISTS callback_targets (
    job_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS callback_attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    expires_at REAL NOT NULL
);
"""


class StoreFileError(Exception):
    """The SQLite file cannot be opened or read; the message is one line."""


_JobRow = tuple[str, float, float, int, float]
_KeyRow = tuple[str, str, bytes, str, float]
_ClientRow = tuple[str, str, float]
_Start = tuple[list[_JobRow], _KeyRow | None, list[_ClientRow]]
_Statement = tuple[str, Sequence[Any]]


class SqliteJobStore(MemoryJobStore):
    """A :class:`MemoryJobStore` that commits its starts to ``path`` before answering."""

    def __init__(self, path: Path, clock: Clock, **options: Unpack[StoreOptions]) -> None:
        super().__init__(clock, **options)
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None
        self._commits: GroupedCalls[_Start | None, None] = GroupedCalls(self._commit_group)
        self._dirty: dict[str, Job] = {}
        self._write_behind: asyncio.TimerHandle | None = None
        self._last_expiry = 0.0
        self._closed = False
        self._callback_targets: dict[str, tuple[str, str | None]] = {}  # read at open

    # --- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the file and load its live jobs and keys into memory.

        A JSON-lines file from ``--state-file`` (before stores existed) is migrated once:
        its jobs are read, the file is renamed to ``<name>.json-migrated``, and a SQLite
        file takes its place.
        """
        loop = asyncio.get_running_loop()
        jobs, keys = await loop.run_in_executor(self._thread, self._open_and_load)
        try:
            self.jobs.restore(jobs)
        except ValueError as error:
            raise StoreFileError(f"invalid store file {self.path}: {error}") from None
        by_id = {job.job_id: job for job in jobs}
        for scope, key, print_, job_ids, expires_at in keys:
            found = tuple(by_id[job_id] for job_id in job_ids.split(",") if job_id in by_id)
            self.idempotency.remember(scope, key, print_, found, expires_at)
        await loop.run_in_executor(self._thread, self._load_push_tables)

    def _load_push_tables(self) -> None:
        """Job groups, subscriptions and webhook attempts, so streams and records resume."""
        assert self._connection is not None
        now = self.clock.now()
        rows = self._connection.execute(
            "SELECT client_id, job_id FROM client_jobs WHERE expires_at > ? ORDER BY seq", (now,)
        )
        for client_id, job_id in rows:
            self.client_jobs.setdefault(client_id, []).append(job_id)
        for subscription_id, expires_at in self._connection.execute(
            "SELECT subscription_id, expires_at FROM subscriptions WHERE expires_at > ?", (now,)
        ):
            self.subscriptions[subscription_id] = Subscription(expires_at)
        for subscription_id, job_id, added_at in self._connection.execute(
            "SELECT subscription_id, job_id, added_at FROM subscription_jobs"
            " ORDER BY added_at, rowid"
        ):
            subscription = self.subscriptions.get(subscription_id)
            if subscription is not None:
                subscription.added[job_id] = added_at
        for job_id, at, status_code, error in self._connection.execute(
            "SELECT job_id, at, status_code, error FROM callback_attempts"
            " WHERE expires_at > ? ORDER BY seq",
            (now,),
        ):
            attempt = CallbackAttempt(at=at, status_code=status_code, error=error)
            self.callbacks.setdefault(job_id, []).append(attempt)
        self._callback_targets = {
            job_id: (url, secret)
            for job_id, url, secret in self._connection.execute(
                "SELECT job_id, url, secret FROM callback_targets WHERE expires_at > ?", (now,)
            )
        }

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._write_behind is not None:
            self._write_behind.cancel()
        with contextlib.suppress(sqlite3.Error):
            await self._commits.call(None)  # the last counters
        if self._connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._connection.close)
            self._connection = None
        self._thread.shutdown(wait=False)

    def _open_and_load(self) -> tuple[list[Job], list[tuple[str, str, bytes, str, float]]]:
        migrated = self._migrate_json_file()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
            _add_missing_columns(connection)
        except (OSError, sqlite3.Error) as error:
            raise StoreFileError(f"cannot open store file {self.path}: {error}") from None
        self._connection = connection
        if migrated:  # jobs with their history: the rows, then their counters
            self._write_all([(self._rows(migrated), None, [])], _counters(migrated), None)
        now = self.clock.now()
        rows = connection.execute(
            "SELECT job_id, created_at, duration_s, fails, status_requests,"
            " first_final_seen_at, first_final_channel, log FROM jobs"
            " WHERE expires_at > ? ORDER BY seq",
            (now,),
        ).fetchall()
        jobs = []
        for job_id, created_at, duration_s, fails, count, first_final, channel, log in rows:
            job = Job(job_id, created_at, duration_s, bool(fails))
            job.status_requests = count
            job.first_final_seen_at = first_final
            if first_final is not None:
                job.first_final_channel = _CHANNELS.get(channel, "status")
            job.log = bytearray(log) if log else None
            jobs.append(job)
        keys = connection.execute(
            "SELECT scope, key, fingerprint, job_ids, expires_at FROM idempotency_keys"
            " WHERE expires_at > ? ORDER BY expires_at",
            (now,),
        ).fetchall()
        return jobs, keys

    def _migrate_json_file(self) -> list[Job]:
        """The jobs of an old JSON-lines state file at ``path`` (renamed away), or none."""
        try:
            with self.path.open("rb") as file:
                first = file.read(1)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StoreFileError(f"cannot read store file {self.path}: {error}") from None
        if first not in (b"{", b""):
            return []  # a SQLite file
        from server.stores.state_file import StateFileError

        try:
            jobs = state_file.read_jobs(self.path, self.request_log_length)
        except StateFileError as error:
            raise StoreFileError(str(error)) from None
        self.path.rename(self.path.with_name(self.path.name + ".json-migrated"))
        return jobs

    # --- writes -------------------------------------------------------------------------

    async def create_many(
        self,
        specs: Sequence[JobSpec],
        claim: IdempotencyClaim | None = None,
        client_id: str | None = None,
    ) -> StartedJobs:
        started = self.create_many_now(specs, claim, client_id)
        if started.replayed:
            # The first answer may still be committing: answer the replay only once it
            # is, and only if it was (a failed commit took its jobs and key back).
            await self._commits.drain()
            if all(self.jobs.get(job.job_id) is job for job in started.jobs):
                return started
            return await self.create_many(specs, claim, client_id)
        key_row = None
        if claim is not None:
            job_ids = ",".join(job.job_id for job in started.jobs)
            expires_at = self.clock.now() + self.retention_s
            key_row = (claim.scope, claim.key, claim.fingerprint, job_ids, expires_at)
        client_rows = [
            (client_id, job.job_id, job.finishes_at + self.retention_s)
            for job in started.jobs
            if client_id is not None
        ]
        try:
            await self._commits.call((self._rows(started.jobs), key_row, client_rows))
        except (OSError, sqlite3.Error) as error:  # disk full, file gone: not a 500
            # Not committed, so never answered: no trace of it may stay in memory either.
            self.undo_start(started, claim, client_id)
            raise StoreUnavailable(f"cannot write store file {self.path}: {error}") from None
        return started

    def _rows(self, jobs: Sequence[Job]) -> list[_JobRow]:
        retention = self.retention_s
        return [
            (
                job.job_id,
                job.created_at,
                job.duration_s,
                int(bool(job.fails)),
                job.finishes_at + retention,
            )
            for job in jobs
        ]

    # --- push: subscriptions and webhook attempts, committed before the answer ---------

    async def create_subscription(
        self, job_ids: Sequence[str], quota: SubscriptionQuota | None = None
    ) -> str:
        subscription_id = await super().create_subscription(job_ids, quota)
        await self._write(self._subscription_rows(subscription_id))
        return subscription_id

    async def extend_subscription(
        self,
        subscription_id: str,
        job_ids: Sequence[str],
        quota: SubscriptionQuota | None = None,
    ) -> bool:
        if not await super().extend_subscription(subscription_id, job_ids, quota):
            return False
        added = self.subscriptions[subscription_id].added
        await self._write(
            [
                (
                    "INSERT OR IGNORE INTO subscription_jobs VALUES (?, ?, ?)",
                    (subscription_id, job_id, added[job_id]),
                )
                for job_id in job_ids
            ]
        )
        return True

    async def touch_subscription(self, subscription_id: str) -> bool:
        if not await super().touch_subscription(subscription_id):
            return False
        expires_at = self.subscriptions[subscription_id].expires_at
        await self._write(
            [
                (
                    "UPDATE subscriptions SET expires_at = ? WHERE subscription_id = ?",
                    (expires_at, subscription_id),
                )
            ]
        )
        return True

    async def delete_subscription(self, subscription_id: str) -> bool:
        if not await super().delete_subscription(subscription_id):
            return False
        await self._write(self._subscription_rows(subscription_id))
        return True

    def _subscription_rows(self, subscription_id: str) -> list[_Statement]:
        """Statements that make the file's copy of the subscription what memory holds."""
        statements: list[_Statement] = [
            ("DELETE FROM subscriptions WHERE subscription_id = ?", (subscription_id,)),
            ("DELETE FROM subscription_jobs WHERE subscription_id = ?", (subscription_id,)),
        ]
        subscription = self.subscriptions.get(subscription_id)
        if subscription is not None:
            statements.append(
                (
                    "INSERT INTO subscriptions VALUES (?, ?)",
                    (subscription_id, subscription.expires_at),
                )
            )
            statements += [
                ("INSERT INTO subscription_jobs VALUES (?, ?, ?)", (subscription_id, job_id, at))
                for job_id, at in subscription.added.items()
            ]
        return statements

    async def record_callback_attempt(self, job_id: str, attempt: CallbackAttempt) -> None:
        await super().record_callback_attempt(job_id, attempt)
        job = self.jobs.get(job_id)
        expires_at = (job.finishes_at if job else self.clock.now()) + self.retention_s
        row = (job_id, attempt.at, attempt.status_code, attempt.error, expires_at)
        await self._write(
            [
                (
                    "INSERT INTO callback_attempts (job_id, at, status_code, error, expires_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    row,
                )
            ]
        )

    async def remember_callbacks(
        self, targets: Sequence[tuple[Job, str, str | None]], *, takeover_s: float
    ) -> None:
        """Committed before the start is answered, like the jobs themselves."""
        await self._write(
            [
                (
                    "INSERT OR REPLACE INTO callback_targets VALUES (?, ?, ?, ?)",
                    (job.job_id, url, secret, job.finishes_at + self.retention_s),
                )
                for job, url, secret in targets
            ]
        )

    async def callbacks_to_resume(self) -> list[tuple[Job, str, str | None, int]]:
        pending = []
        for job_id, (url, secret) in self._callback_targets.items():
            job = self.jobs.get(job_id)
            attempts = self.callbacks.get(job_id, [])
            delivered = any(
                a.status_code is not None and 200 <= a.status_code < 300 for a in attempts
            )
            if job is not None and not delivered:
                pending.append((job, url, secret, len(attempts)))
        self._callback_targets = {}
        return pending

    async def _write(self, statements: list[_Statement]) -> None:
        """One transaction on the SQLite thread (after any group commit already queued)."""

        def run() -> None:
            connection = self._connection
            if connection is None:
                raise sqlite3.ProgrammingError("the store file is closed")
            connection.execute("BEGIN")
            try:
                for sql, parameters in statements:
                    connection.execute(sql, parameters)
                connection.execute("COMMIT")
            except BaseException:
                _roll_back(connection)
                raise

        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, run)
        except (OSError, sqlite3.Error) as error:
            self._writes_failed(error)
            raise StoreUnavailable(f"cannot write store file {self.path}: {error}") from None
        self._writes_work()

    def _counters_changed(self, job: Job) -> None:
        if job.fails is None:
            return  # the special job is not stored
        self._dirty[job.job_id] = job
        if self._write_behind is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._write_behind = loop.call_later(WRITE_BEHIND_S, self._flush_behind)

    def _flush_behind(self) -> None:
        self._write_behind = None
        task = asyncio.ensure_future(self._commits.call(None))
        task.add_done_callback(_log_failure)

    async def _commit_group(self, starts: list[_Start | None]) -> list[None]:
        """One transaction for every start of the group and every job polled since."""
        real = [start for start in starts if start is not None]
        if self._connection is None and not real:
            return [None] * len(starts)  # never opened, or closed: nothing to write
        polled = dict(self._dirty)
        self._dirty.clear()
        now = self.clock.now()
        expire = now - self._last_expiry >= EXPIRE_EVERY_S
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._thread, self._write_all, real, _counters(polled.values()),
                now if expire else None,
            )  # fmt: skip
        except (OSError, sqlite3.Error) as error:
            # Counters are written again with the next commit; the starts are refused.
            self._dirty = {**polled, **self._dirty}
            self._writes_failed(error)
            raise
        if expire:
            self._last_expiry = now
        self._writes_work()
        return [None] * len(starts)

    def _writes_failed(self, error: BaseException) -> None:
        if self.write_problem is None:
            logger.error("the store file %s cannot be written: %s", self.path, error)
        self.write_problem = f"cannot write store file {self.path}: {error}"

    def _writes_work(self) -> None:
        if self.write_problem is not None:
            logger.warning("the store file %s is written again", self.path)
        self.write_problem = None

    def _write_all(
        self, starts: list[_Start], dirty: list[tuple[Any, ...]], expire_before: float | None
    ) -> None:
        connection = self._connection
        if connection is None:
            raise sqlite3.ProgrammingError("the store file is closed")
        connection.execute("BEGIN")
        try:
            for rows, key_row, client_rows in starts:
                connection.executemany(
                    "INSERT INTO jobs (job_id, created_at, duration_s, fails, expires_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                connection.executemany(
                    "INSERT INTO client_jobs (client_id, job_id, expires_at) VALUES (?, ?, ?)",
                    client_rows,
                )
                if key_row is not None:
                    connection.execute(
                        "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?, ?)", key_row
                    )
            if dirty:
                connection.executemany(
                    "UPDATE jobs SET status_requests = ?, first_final_seen_at = ?,"
                    " first_final_channel = ?, log = ?"
                    " WHERE job_id = ?",
                    dirty,
                )
            if expire_before is not None:
                connection.execute("DELETE FROM jobs WHERE expires_at <= ?", (expire_before,))
                expiring = (
                    "idempotency_keys",
                    "client_jobs",
                    "callback_targets",
                    "callback_attempts",
                )
                for table in expiring:
                    connection.execute(
                        f"DELETE FROM {table} WHERE expires_at <= ?", (expire_before,)
                    )
                connection.execute(
                    "DELETE FROM subscription_jobs WHERE subscription_id IN"
                    " (SELECT subscription_id FROM subscriptions WHERE expires_at <= ?)",
                    (expire_before,),
                )
                connection.execute(
                    "DELETE FROM subscriptions WHERE expires_at <= ?", (expire_before,)
                )
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            raise


_CHANNELS: dict[str, DeliveryChannel] = {channel: channel for channel in get_args(DeliveryChannel)}


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a store file written by an earlier version up to today's jobs table."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(jobs)")}
    if "first_final_channel" not in columns:
        connection.execute("ALTER TABLE jobs ADD COLUMN first_final_channel TEXT")


def _roll_back(connection: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already (it does on a full disk)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def _counters(jobs: Iterable[Job]) -> list[tuple[Any, ...]]:
    """UPDATE parameters for the counters, first-final-seen and log of ``jobs``."""
    return [
        (
            job.status_requests,
            job.first_final_seen_at,
            job.first_final_channel,
            bytes(job.log) if job.log else None,
            job.job_id,
        )
        for job in jobs
    ]


def _log_failure(task: asyncio.Future[None]) -> None:
    """Write-behind failures are logged once, when writing starts to fail (see
    ``_writes_failed``); anything else is a bug worth a line of its own."""
    error = None if task.cancelled() else task.exception()
    if error is not None and not isinstance(error, (OSError, sqlite3.Error)):
        logger.error("writing status counters failed: %s", error)
