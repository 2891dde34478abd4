"""Webhooks: when a job ends, POST its final state to the ``callback_url`` of its start.

Delivery never runs on the request path: a start only pushes the job onto a heap of due
deliveries (ordered by finish time), and one background task per server takes them off
as they fall due and posts them with one pooled ``httpx.AsyncClient``. A 2xx ends a
delivery; anything else (another code, a refused connection, a time-out) is retried
after about 0.5, 1, 2, 4, 8 ... s (:class:`RetrySchedule`: capped, +-20 % jitter), up to
``--callback-attempts`` in all. Every attempt is
recorded in the job's record (``GET /jobs/{id}``, ``callbacks``).

Each delivery follows Standard Webhooks (the ``standardwebhooks`` library signs it):
``webhook-id`` (the job id), ``webhook-timestamp`` (unix seconds) and, when the start gave a
``callback_secret``, ``webhook-signature``, so any Standard Webhooks receiver (Svix's,
the library's ``Webhook(secret).verify``) can check who sent it and that it is fresh.

Only loopback hosts (127.0.0.0/8, ::1, localhost) may be named, unless the server allows
more hosts (``--callback-hosts``) or any (``--allow-any-callback-host``): a server that
posts wherever a client says is a tool for reaching what the client cannot.

Pending deliveries live in this process. With the SQLite store the callback of a start is
committed with it, and a restarted server takes up what was not delivered yet; with the
memory store a stop loses them. With Redis each owed callback is kept in Redis with a lease
held by the process that took the start, renewed before every attempt; every process looks
for lapsed leases each second, so when a process dies (or stops) another one delivers what
it owed, ``--callback-takeover`` seconds after it fell due. Delivery is at least once: a
process stalled longer than that may deliver a second time what another took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from server.jobs.clock import Clock
from server.jobs.job import Job
from server.models import CallbackAttempt
from server.settings import ServerSettings
from server.stores.base import JobStore, StoreUnavailable

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 5.0
MAX_CONCURRENT_DELIVERIES = 64
UNDELIVERED = "not delivered (the server shows why with --callback-failure-details)"
# The parts of a callback URL, as regular expressions that read the same in Python and in
# JSON Schema (ECMA), so the schema's pattern and the server agree on every string: no
# \s, no unescaped ".", and nothing but printable ASCII without spaces after the host.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_IPV4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
# A DNS name whose last label is not all digits (a URL reads that as an IPv4 address).
_NAME = r"([A-Za-z0-9-]+\.)*[A-Za-z0-9-]*[A-Za-z-][A-Za-z0-9-]*"
_IPV6 = r"\[[0-9A-Fa-f:.]+\]"
_LOOPBACK_HOSTS = ["localhost", rf"127\.{_OCTET}\.{_OCTET}\.{_OCTET}", r"\[::1\]"]
_ANY_PORT = rf"(:{_PORT})?"
_REST = r"([/?#][!-~]*)?"


def _url_pattern(host_and_port: str) -> str:
    return r"^https?://" + host_and_port + _REST + "$"


WELL_FORMED_CALLBACK = re.compile(_url_pattern(f"({_NAME}|{_IPV4}|{_IPV6}){_ANY_PORT}"))


def allowed_callback_hosts(settings: ServerSettings) -> list[tuple[str, int | None]]:
    """``--callback-hosts`` as (host, port or None for any port)."""
    allowed: list[tuple[str, int | None]] = []
    for entry in filter(None, (entry.strip() for entry in settings.callback_hosts.split(","))):
        host, colon, port = entry.rpartition(":")
        if colon and host and port.isdigit():
            allowed.append((host, int(port)))
        else:
            allowed.append((entry, None))
    return allowed


def callback_url_pattern(settings: ServerSettings) -> str:
    """The regular expression a callback_url must match on this server (also published in
    the OpenAPI schema, so that what the schema calls valid is what the server accepts)."""
    if settings.allow_any_callback_host:
        return WELL_FORMED_CALLBACK.pattern
    choices = [host + _ANY_PORT for host in _LOOPBACK_HOSTS]
    for host, port in allowed_callback_hosts(settings):
        choices.append(re.escape(host) + (f":{port}" if port is not None else _ANY_PORT))
    return _url_pattern("(" + "|".join(choices) + ")")


def refused_callback_message(settings: ServerSettings, url: str) -> str:
    """Why ``url`` is refused as a callback: not a URL this server can post to, or a host
    (or port) it may not post to."""
    if not WELL_FORMED_CALLBACK.fullmatch(url):
        return (
            "not an http(s) URL this server can post to: the host must be a name, an IPv4 "
            "address of four numbers 0-255 without leading zeros, or [IPv6]; the port "
            "1-65535; the rest printable ASCII without spaces"
        )
    if settings.callback_hosts.strip():
        return (
            "callback host not allowed: loopback (127.0.0.0/8, ::1, localhost) and "
            f"{settings.callback_hosts} only"
        )
    return (
        "callback host not allowed: loopback (127.0.0.0/8, ::1, localhost) only; "
        "start the server with --callback-hosts or --allow-any-callback-host for more"
    )


def signed_headers(job_id: str, timestamp: int, body: bytes, secret: str | None) -> dict[str, str]:
    """The headers of a delivery, as Standard Webhooks has them: ``webhook-id`` (the job's
    id: the same on every retry, so a receiver can drop repeats), ``webhook-timestamp``
    and, with a secret, ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` over
    ``id.timestamp.body``, keyed with the secret's UTF-8 bytes)."""
    headers = {
        "Content-Type": "application/json",
        "webhook-id": job_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret is not None:
        moment = datetime.fromtimestamp(timestamp, tz=UTC)
        headers["webhook-signature"] = Webhook(secret.encode()).sign(job_id, moment, body)
    return headers


@dataclass(frozen=True)
class RetrySchedule:
    """When a failed delivery is tried again: ``first_s`` after the first failure, doubled
    after each one, at most ``max_s``, each wait +-``jitter`` of itself so that receivers a
    restart failed together are not retried together. The server's one retry schedule
    (the client has its own, ``BackoffPolicy``: the two programs share no code)."""

    first_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2

    def wait_s(self, failures: int, rng: random.Random) -> float:
        """The wait after the ``failures``-th failed attempt (1-based)."""
        base: float = min(self.max_s, self.first_s * 2.0 ** (failures - 1))
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass
class Delivery:
    """One job's callback: where, signed how, and how many attempts so far."""

    job_id: str
    created_at: float
    finished_at: float
    result: str
    url: str
    secret: str | None
    attempts: int = 0

    def body(self) -> bytes:
        document = {
            "job_id": self.job_id,
            "result": self.result,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }
        return json.dumps(document, separators=(",", ":")).encode()


class WebhookDeliveries:
    """The heap of due deliveries and the one task that works through it."""

    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        *,
        attempts: int,
        takeover_s: float = 5.0,
        failure_details: bool = False,
        retries: RetrySchedule = RetrySchedule(),
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._retries = retries
        self._rng = rng or random.Random()
        self._failure_details = failure_details
        self._clock = clock
        self._attempts = attempts
        self._takeover_s = takeover_s
        self._claimer: asyncio.Task[None] | None = None
        self._due: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()  # ties in due time go first come, first served
        self._changed = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        self._http: httpx.AsyncClient | None = None
        self._stopping = False
        store.on_close(self.close)

    @property
    def pending(self) -> int:
        """Deliveries waiting for their job to end or for their next attempt."""
        return len(self._due)

    def schedule(self, job: Job, url: str, secret: str | None) -> None:
        """Deliver ``job``'s final state to ``url`` once it ends (no I/O here)."""
        if self._stopping or job.outcome is None:
            return
        delivery = Delivery(job.job_id, job.created_at, job.finishes_at, job.outcome, url, secret)
        self._push(job.finishes_at, delivery)

    def resume(self, job: Job, url: str, secret: str | None, attempts: int) -> None:
        """A callback a restarted server still owes: its next attempt as if never stopped
        (at the job's end, or now if that has passed)."""
        if self._stopping or job.outcome is None or attempts >= self._attempts:
            return
        delivery = Delivery(
            job.job_id, job.created_at, job.finishes_at, job.outcome, url, secret, attempts
        )
        self._push(max(job.finishes_at, self._clock.now()), delivery)

    def _push(self, due_at: float, delivery: Delivery) -> None:
        heapq.heappush(self._due, (due_at, next(self._order), delivery))
        self._changed.set()

    def start(self) -> None:
        """Begin working (the app's lifespan calls this once the loop runs)."""
        self._http = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S, follow_redirects=False)
        self._worker = asyncio.create_task(self._work())
        if self._store.shared:
            self._claimer = asyncio.create_task(self._claim_lapsed())

    def close(self) -> None:
        """The server is stopping: no new attempts (pending deliveries are dropped)."""
        self._stopping = True
        for task in (self._worker, self._claimer):
            if task is not None:
                task.cancel()

    async def aclose(self) -> None:
        self.close()
        tasks = [t for t in (self._worker, self._claimer, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _work(self) -> None:
        """Attempt each delivery when it is due, in due order: the process's schedule
        wakes this task for the earliest, and a new delivery wakes it to look again."""
        while True:
            self._changed.clear()
            if not self._due or self._due[0][0] > self._clock.now():
                next_due = self._due[0][0] if self._due else math.inf
                timer = self._store.schedule.call_at(next_due, self._changed.set)
                try:
                    await self._changed.wait()
                finally:
                    timer.cancel()
                continue
            _, _, delivery = heapq.heappop(self._due)
            await self._limit.acquire()
            task = asyncio.create_task(self._attempt(delivery))
            self._running.add(task)
            task.add_done_callback(self._finished)

    async def _claim_lapsed(self) -> None:
        """Shared store: take over, each second, the callbacks a dead process still owed."""
        every_s = min(1.0, self._takeover_s / 2)
        while True:
            await asyncio.sleep(every_s)
            now = self._clock.now()
            try:
                owed = await self._store.claim_lapsed_callbacks(now, now + self._takeover_s)
            except StoreUnavailable:
                continue  # the store is down: so is every other process's claim
            for job, url, secret, attempts in owed:
                self.resume(job, url, secret, attempts)

    async def _keep_lease(self, job_id: str, until: float) -> bool:
        """Keep ``job_id``'s delivery ours until ``until`` (a shared store's lease; the
        others always say yes); False when another process has taken it over (or it was
        delivered). A store that cannot answer is no reason to drop a delivery: at least
        once."""
        try:
            return await self._store.lease_callback(job_id, until)
        except StoreUnavailable:
            return True

    async def _release(self, job_id: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._store.release_callback(job_id)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._limit.release()
        if not task.cancelled() and task.exception() is not None:
            logger.warning("webhook delivery failed: %s", task.exception())

    async def _attempt(self, delivery: Delivery) -> None:
        """One POST; recorded; rescheduled with backoff unless it got a 2xx or the
        attempts are spent."""
        assert self._http is not None
        lease_until = self._clock.now() + DELIVERY_TIMEOUT_S + self._takeover_s
        if not await self._keep_lease(delivery.job_id, lease_until):
            return  # another process delivers it now
        body = delivery.body()
        timestamp = int(self._clock.now())
        headers = signed_headers(delivery.job_id, timestamp, body, delivery.secret)
        at = self._clock.now()
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(delivery.url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except Exception as failure:  # any failure is an attempt, recorded
            error = _one_line(failure)
        if error is not None and not self._failure_details:
            # What the remote answered (a code, a refused port) would let any client map
            # what listens where this server can reach: the operator may choose to show it.
            status_code, error = None, UNDELIVERED
        delivery.attempts += 1
        accepted_at = self._clock.now()
        with contextlib.suppress(StoreUnavailable):
            await self._store.record_callback_attempt(
                delivery.job_id, CallbackAttempt(at=at, status_code=status_code, error=error)
            )
            if error is None:  # the receiver has the final state (by the time it answered)
                await self._store.record_deliveries([(delivery.job_id, accepted_at)], "webhook")
        if error is None or delivery.attempts >= self._attempts:
            await self._release(delivery.job_id)
        elif not self._stopping:
            next_at = self._clock.now() + self._retries.wait_s(delivery.attempts, self._rng)
            if await self._keep_lease(delivery.job_id, next_at + self._takeover_s):
                self._push(next_at, delivery)


def _one_line(failure: Exception) -> str:
    text = str(failure).splitlines()[0] if str(failure) else ""
    return f"{type(failure).__name__}: {text}".rstrip(": ")
