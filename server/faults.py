"""Deliberate misbehaviour for /start, /status, /status/batch and /events: latency, 503s and
a rate limit.

Clients are meant to be tested against a server that is slow, flaky and strict. All random
draws come from one seeded RNG and all rate-limit arithmetic from the server's clock, so a
seeded server with a fake clock misbehaves the same way every run.
"""

from __future__ import annotations

import asyncio
import math
import random
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass

from server.jobs.clock import Clock
from server.models import Faults

# At most this many clients have a bucket; a new one pushes out the least recently seen,
# which starts again with a full bucket if it comes back.
MAX_TRACKED_CLIENTS = 10_000


# The longest Retry-After the server sends: an hour, as long as any wait it can mean.
MAX_RETRY_AFTER_HEADER_S = 3600


def retry_after_header(seconds: float) -> str:
    """Retry-After as RFC 9110 wants it: whole seconds, never 0 (that invites a storm),
    and at most an hour (a rate of 1e-300 requests/s would otherwise ask for centuries)."""
    return str(min(MAX_RETRY_AFTER_HEADER_S, max(1, math.ceil(seconds))))


@dataclass(slots=True)
class Offers:
    """What the server offers right now: hints, long-poll and push. The settings give the
    start; a scenario's phase may switch any of them off for a while (read per request)."""

    hints: bool
    long_poll_max_s: float
    push: bool = True


class RateLimiter(ABC):
    """Token buckets per client for the rate-limit fault."""

    @abstractmethod
    async def take_token(self, client_id: str, rate: float) -> float:
        """Spend one of ``client_id``'s tokens: 0.0 if there was one, else the seconds
        until there is."""

    @abstractmethod
    def reset(self) -> None:
        """Start every client again with a full bucket (the rate limit was changed)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request the faults turn away instead of serving."""

    code: int
    detail: str
    retry_after_s: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": retry_after_header(self.retry_after_s)}


class _TokenBucket:
    """Allows ``rate`` requests per second on average, in bursts of at most ``capacity``."""

    __slots__ = ("tokens", "updated_at")

    def __init__(self, capacity: float, now: float) -> None:
        self.tokens = capacity
        self.updated_at = now


class LocalTokenBuckets(RateLimiter):
    """The buckets in this process's memory, for the memory and SQLite stores."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, _TokenBucket] = OrderedDict()

    def reset(self) -> None:
        self._buckets.clear()

    async def take_token(self, client_id: str, rate: float) -> float:
        now = self._clock.now()
        capacity = max(1.0, rate)
        buckets = self._buckets
        bucket = buckets.get(client_id)
        if bucket is None:
            if len(buckets) >= MAX_TRACKED_CLIENTS:
                buckets.popitem(last=False)
            bucket = buckets[client_id] = _TokenBucket(capacity, now)
        else:
            buckets.move_to_end(client_id)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated_at) * rate)
        bucket.updated_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate


class FaultInjector:
    """Holds the current :class:`Faults` and decides, per request, whether to misbehave.

    The rate limit's buckets live where ``rate_limiter`` keeps them: in this process, or
    in Redis, so that several workers share one allowance per client.
    """

    def __init__(
        self,
        faults: Faults,
        clock: Clock,
        rng: random.Random,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._rate_limiter = rate_limiter or LocalTokenBuckets(clock)
        self.faults = faults
        self.injected: dict[str, int] = {"latency": 0, "unavailable": 0, "rate_limited": 0}

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """Replace the faults; a new rate limit starts every client with a full bucket."""
        self._faults = faults
        self._rate_limiter.reset()

    async def add_latency(self) -> None:
        faults = self._faults
        if faults.latency_ms <= 0 and faults.latency_jitter_ms <= 0:
            return
        extra_ms = self._rng.uniform(0, faults.latency_jitter_ms) if faults.latency_jitter_ms else 0
        self.injected["latency"] += 1
        await asyncio.sleep((faults.latency_ms + extra_ms) / 1000)

    async def turn_away(self, client_id: str) -> Rejection | None:
        """What every faulted route does first: the injected latency, then whether the
        faults turn this request away."""
        await self.add_latency()
        return await self.check(client_id)

    async def check(self, client_id: str) -> Rejection | None:
        """The rate limit first (it is deterministic), then the random 503."""
        faults = self._faults
        if faults.rate_limit_rps > 0:
            wait_s = await self._rate_limiter.take_token(client_id, faults.rate_limit_rps)
            if wait_s > 0:
                self.injected["rate_limited"] += 1
                return Rejection(
                    429,
                    f"Rate limit exceeded: {faults.rate_limit_rps:g} requests/s",
                    int(retry_after_header(wait_s)),
                )
        if faults.unavailable_rate > 0 and self._rng.random() < faults.unavailable_rate:
            self.injected["unavailable"] += 1
            return Rejection(503, "Service unavailable (injected fault)", int(faults.retry_after_s))
        return None
