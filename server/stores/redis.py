"""The shared store: jobs in Redis, so several workers and hosts serve the same jobs.

Keys (all under one prefix, ``videosim:`` by default):

- ``job:<id>``: a hash (``c`` created_at, ``d`` duration_s, ``f`` 1 if it fails, ``n``
  status requests, ``s`` first-final-seen), expiring ``retention_s`` after the job ends;
- ``log:<id>``: its last status requests, a list of 12-byte entries (see
  :mod:`server.jobs.request_log`), trimmed to ``request_log_length``, expiring with the job;
- ``finishes:ok`` / ``finishes:err``: sorted sets of job ids by finish time, so jobs by
  state and the job cap are a count over a score range, whatever the number of jobs;
- ``created``: job ids by creation sequence (``seq``), for GET /jobs paging;
- ``idem:<scope>:<key>``: an Idempotency-Key's fingerprint and job ids;
- ``bucket:<rate>:<client>``: a rate-limit token bucket;
- ``faults``: the injected faults (JSON) every process follows, set by PUT /admin/faults.

A start (cap check, jobs, key) is one Lua script, so it is atomic across every worker;
so is recording a status request (counter, set-once first-final-seen, log). Concurrent
requests share round trips: calls that queue while one pipeline runs go in the next one.
Any connection problem is raised as :class:`StoreUnavailable` within about a second.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from itertools import islice
from typing import Any, Unpack, get_args

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from server.faults import RateLimiter
from server.jobs import request_log
from server.jobs.clock import Clock
from server.jobs.idempotency import IdempotencyConflict
from server.jobs.job import SPECIAL_JOB_ID, Job, JobLimitReached, NewJobs
from server.models import CallbackAttempt, DeliveryChannel, Faults, Result
from server.stores.base import (
    IdempotencyClaim,
    JobSpec,
    JobStore,
    StartedJobs,
    StoreOptions,
    StoreUnavailable,
    SubscriptionQuota,
    new_subscription_id,
)
from server.stores.grouped_calls import GroupedCalls

KEY_PREFIX = "videosim:"
# Past this, a request answers 503 rather than wait for Redis.
TIMEOUT_S = 1.0
_SWEEP_LIMIT = 1000  # expired ids dropped from the sorted sets per start, at most

_CREATE = """
local ok, err, created, seq, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, cutoff, max_jobs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local fingerprint, key_ttl_ms, count = ARGV[4], ARGV[5], tonumber(ARGV[6])
if fingerprint ~= '' then
  local earlier = redis.call('GET', idem)
  if earlier then
    if string.sub(earlier, 1, #fingerprint) ~= fingerprint then return {'conflict'} end
    return {'replay', string.sub(earlier, #fingerprint + 2)}
  end
end
for _, zset in ipairs({ok, err}) do
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', cutoff, 'LIMIT', 0, ARGV[7])
  if #gone > 0 then
    redis.call('ZREM', zset, unpack(gone))
    redis.call('ZREM', created, unpack(gone))
  end
end
local live = redis.call('ZCOUNT', ok, '(' .. cutoff, '+inf')
  + redis.call('ZCOUNT', err, '(' .. cutoff, '+inf')
if live + count > max_jobs then return {'full'} end
local ids = {}
for i = 0, count - 1 do
  local at = 8 + i * 6
  local id, c, d, f, finishes, ttl_ms =
    ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5]
  local key = prefix .. 'job:' .. id
  redis.call('HSET', key, 'c', c, 'd', d, 'f', f, 'n', 0)
  redis.call('PEXPIRE', key, ttl_ms)
  local by_finish = ok
  if f == '1' then by_finish = err end
  redis.call('ZADD', by_finish, finishes, id)
  redis.call('ZADD', created, redis.call('INCR', seq), id)
  ids[#ids + 1] = id
end
local joined = table.concat(ids, ',')
if fingerprint ~= '' then
  redis.call('SET', idem, fingerprint .. '|' .. joined, 'PX', key_ttl_ms)
end
return {'created', joined}
"""

# A job's hash: c created, d duration, f fails, n status requests, s when the final state
# first reached a client and v by which channel (absent: a status answer).
_FIRST_DELIVERY = """
local function first_delivery(key, at, channel)
  if redis.call('HSETNX', key, 's', at) == 1 and channel ~= 'status' then
    redis.call('HSET', key, 'v', channel)
  end
end
"""

_RECORD = (
    _FIRST_DELIVERY
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'n', 1)
if ARGV[1] ~= '' then first_delivery(KEYS[1], ARGV[1], ARGV[4]) end
local length = tonumber(ARGV[3])
if length > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -length, -1)
  redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
end
return 1
"""
)

# GET /status's common case in one call: read the job and count and log the 200 answer
# it gets at ARGV[1], with the Retry-After that answer carries (see poll_retry_after).
_POLL = (
    _FIRST_DELIVERY
    + request_log.LUA_PACK_ENTRY
    + """
local fields = redis.call('HMGET', KEYS[1], 'c', 'd', 'f', 'n', 's', 'v')
if not fields[1] then return fields end
local now = tonumber(ARGV[1])
local finishes = tonumber(fields[1]) + tonumber(fields[2])
local retry_after = 0
if now >= finishes then
  first_delivery(KEYS[1], ARGV[1], 'status')
elseif ARGV[2] == '1' then
  retry_after = math.max(1, math.ceil(finishes - now))
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
local length = tonumber(ARGV[3])
if length > 0 then
  redis.call('RPUSH', KEYS[2], pack_entry(now, 200, retry_after))
  redis.call('LTRIM', KEYS[2], -length, -1)
  redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
end
return fields
"""
)

# Pushed final states: KEYS are job hashes, ARGV the channel then one time per key.
_DELIVERED = (
    _FIRST_DELIVERY
    + """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then first_delivery(key, ARGV[i + 1], ARGV[1]) end
end
return 1
"""
)

_TAKE_TOKEN = """
local rate, capacity, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bucket = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(bucket[1]) or capacity
local updated = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""

# A start's jobs join its X-Client-Id's list, which lives as long as its newest job.
_JOIN_CLIENT = """
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

# A caller's quota: its subscriptions are the set owns:<owner>, each a sorted set holding
# the marker and its ids. Returns the subscriptions and ids it holds (dropping gone ones).
_OWNER_HOLDS = """
local function owner_holds(prefix, owner)
  local owns = prefix .. 'owns:' .. owner
  local subscriptions, ids = 0, 0
  for _, held in ipairs(redis.call('SMEMBERS', owns)) do
    local size = redis.call('ZCARD', prefix .. 'sub:' .. held)
    if size == 0 then redis.call('SREM', owns, held)
    else subscriptions, ids = subscriptions + 1, ids + size - 1 end
  end
  return subscriptions, ids
end
"""

# KEYS: the subscription, its owner key. ARGV: prefix, subscription id, owner ('' for
# none), max subscriptions, max ids, now, ttl ms, the ids. Returns 0, or 1/2 for the limit
# it passed.
_CREATE_SUBSCRIPTION = (
    _OWNER_HOLDS
    + """
local prefix, id, owner, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[6], ARGV[7]
if owner ~= '' then
  local subscriptions, ids = owner_holds(prefix, owner)
  if subscriptions + 1 > tonumber(ARGV[4]) then return 1 end
  if ids + #ARGV - 7 > tonumber(ARGV[5]) then return 2 end
  local owns = prefix .. 'owns:' .. owner
  redis.call('SADD', owns, id)
  if redis.call('PTTL', owns) < tonumber(ttl) then redis.call('PEXPIRE', owns, ttl) end
  redis.call('SET', KEYS[2], owner, 'PX', ttl)
end
redis.call('ZADD', KEYS[1], 0, '')
for i = 8, #ARGV do redis.call('ZADD', KEYS[1], 'NX', now, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return 0
"""
)

# Jobs join a subscription only if it still exists, within its owner's quota; each keeps
# the time it joined. KEYS: the subscription, its owner key. ARGV: prefix, max ids, now,
# the ids. Returns 1 when added, 0 when there is no such subscription, 2 over the quota.
_EXTEND_SUBSCRIPTION = (
    _OWNER_HOLDS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local owner = redis.call('GET', KEYS[2])
if owner then
  local _, ids = owner_holds(ARGV[1], owner)
  local new = 0
  for i = 4, #ARGV do
    if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then new = new + 1 end
  end
  if ids + new > tonumber(ARGV[2]) then return 2 end
end
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[i]) end
return 1
"""
)

# A webhook attempt is kept as long as its job.
_RECORD_CALLBACK = """
redis.call('RPUSH', KEYS[2], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""

# Owed webhook deliveries: KEYS[1] a sorted set of job id -> lease end, and per job a
# hash of url, secret and owner (the process that delivers it while its lease lasts).
_LEASE_CALLBACK = """
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[3] then return 0 end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# Returns id, url, secret and the attempts recorded so far, four items per claimed job.
_CLAIM_CALLBACKS = """
local prefix, now, until_, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[5])
local claimed = {}
for _, id in ipairs(lapsed) do
  local target = prefix .. 'callback:' .. id
  if redis.call('EXISTS', target) == 1 then
    redis.call('HSET', target, 'owner', owner)
    redis.call('ZADD', KEYS[1], until_, id)
    local url, secret = unpack(redis.call('HMGET', target, 'url', 'secret'))
    local attempts = redis.call('LLEN', prefix .. 'callbacks:' .. id)
    for _, item in ipairs({id, url or '', secret or '', attempts}) do
      claimed[#claimed + 1] = item
    end
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return claimed
"""
_CLAIMS_PER_CALL = 100

# A subscription's sorted set holds this member from birth, so an empty one still exists.
_SUBSCRIPTION_MARKER = ""
_IDS_PER_SCRIPT_CALL = 1000

_Command = Callable[[Pipeline], Any]


class RedisJobStore(JobStore):
    """Jobs in Redis at ``url``; every worker and host that names the same URL shares them."""

    shared = True

    def __init__(self, url: str, clock: Clock, **options: Unpack[StoreOptions]) -> None:
        # options["max_idempotency_keys"] is not needed: Redis expires the keys itself
        max_jobs, log_length = options["max_jobs"], options["request_log_length"]
        super().__init__(clock, max_jobs=max_jobs, request_log_length=log_length)
        self.url = url
        self._new_jobs = NewJobs(
            options["rng"],
            error_rate=options["error_rate"],
            default_duration_s=options["default_duration_s"],
        )
        self._retention_s = options["retention_s"]
        self._prefix = KEY_PREFIX
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._create = self._redis.register_script(_CREATE)
        self._record = self._redis.register_script(_RECORD)
        self._take_token = self._redis.register_script(_TAKE_TOKEN)
        self._poll = self._redis.register_script(_POLL)
        self._delivered = self._redis.register_script(_DELIVERED)
        self._join_client = self._redis.register_script(_JOIN_CLIENT)
        self._create_subscription = self._redis.register_script(_CREATE_SUBSCRIPTION)
        self._extend_subscription = self._redis.register_script(_EXTEND_SUBSCRIPTION)
        self._record_callback = self._redis.register_script(_RECORD_CALLBACK)
        self._lease_callback = self._redis.register_script(_LEASE_CALLBACK)
        self._claim_callbacks = self._redis.register_script(_CLAIM_CALLBACKS)
        self._owner = uuid.uuid4().hex  # this process, as the owner of callback leases
        self._pipelined: GroupedCalls[_Command, Any] = GroupedCalls(self._run_pipeline)
        self.rate_limiter = _RedisTokenBuckets(self)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    # --- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Fail now, with one line, if Redis does not answer."""
        try:
            await self._redis.ping()
            await self._load_scripts()
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"cannot reach Redis at {self.url}: {error}") from None

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _load_scripts(self) -> None:
        """Pipelined scripts run by hash alone: a pipeline that carried the script would
        ask SCRIPT EXISTS first, one more round trip per pipeline."""
        for script in (self._record, self._poll, self._delivered, self._take_token):
            await self._redis.script_load(script.script)

    async def _run_pipeline(self, commands: list[_Command]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for add_command in commands:
                add_command(pipe)
            return list(await pipe.execute(raise_on_error=False))

    async def _call(self, command: _Command) -> Any:
        """One command, sent in the next shared pipeline."""
        try:
            # One deadline for the whole call: a command queued behind a pipeline that is
            # already waiting on a silent Redis would otherwise wait out both time-outs.
            async with asyncio.timeout(TIMEOUT_S):
                result = await self._pipelined.call(command)
                if isinstance(result, NoScriptError):  # Redis restarted: no scripts cached
                    await self._load_scripts()
                    result = await self._pipelined.call(command)
        except TimeoutError:
            raise StoreUnavailable(f"Redis unavailable: no answer within {TIMEOUT_S:g} s") from None
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"Redis unavailable: {error}") from None
        if isinstance(result, RedisError):  # out of memory, read-only replica, busy...
            raise StoreUnavailable(f"Redis unavailable: {result}")
        return result

    async def _direct(self, call: Callable[[], Any]) -> Any:
        """One call of its own (starts, listings: not the hot path)."""
        try:
            return await call()
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"Redis unavailable: {error}") from None

    # --- jobs -------------------------------------------------------------------------

    async def create_many(
        self,
        specs: Sequence[JobSpec],
        claim: IdempotencyClaim | None = None,
        client_id: str | None = None,
    ) -> StartedJobs:
        now = self.clock.now()
        jobs = [
            self._new_jobs.make(str(uuid.uuid4()), now, duration_s, outcome)
            for duration_s, outcome in specs
        ]
        args: list[Any] = [
            self._prefix,
            repr(now - self._retention_s),
            self.max_jobs,
            claim.fingerprint.hex() if claim else "",
            int(self._retention_s * 1000),
            len(jobs),
            _SWEEP_LIMIT,
        ]
        for job in jobs:
            # Relative, so a store on a test's fake clock still keeps its jobs.
            ttl_ms = max(1, int((job.finishes_at + self._retention_s - now) * 1000))
            args += [
                job.job_id,
                repr(job.created_at),
                repr(job.duration_s),
                "1" if job.fails else "0",
                repr(job.finishes_at),
                ttl_ms,
            ]
        idem_key = self._key("idem", claim.scope, claim.key) if claim else self._key("idem", "")
        keys = [
            self._key("finishes", "ok"),
            self._key("finishes", "err"),
            self._key("created"),
            self._key("seq"),
            idem_key,
        ]
        answer = await self._direct(lambda: self._create(keys=keys, args=args))
        kind = _text(answer[0])
        if kind == "full":
            raise JobLimitReached(f"Job limit reached: {self.max_jobs} jobs")
        if kind == "conflict":
            raise IdempotencyConflict(
                "Idempotency-Key was already used with a different request; "
                "send a new key for a new start"
            )
        if kind == "replay":
            earlier = await self._load(_text(answer[1]).split(","))
            return StartedJobs(tuple(job for job in earlier if job is not None), replayed=True)
        if client_id is not None:
            await self._join(client_id, jobs, now)
        return StartedJobs(tuple(jobs))

    async def _join(self, client_id: str, jobs: Sequence[Job], now: float) -> None:
        key = self._key("client", client_id)
        ttl_ms = max(1, int((max(j.finishes_at for j in jobs) + self._retention_s - now) * 1000))
        for first in range(0, len(jobs), _IDS_PER_SCRIPT_CALL):
            args: list[Any] = [ttl_ms]
            args += [job.job_id for job in jobs[first : first + _IDS_PER_SCRIPT_CALL]]
            await self._direct(partial(self._join_client, keys=[key], args=args))

    # --- push ---------------------------------------------------------------------------

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        special = [job_id == SPECIAL_JOB_ID for job_id in job_ids]
        found = await self._load([job_id for job_id in job_ids if job_id != SPECIAL_JOB_ID])
        others = iter(found)
        return [self.special if is_special else next(others) for is_special in special]

    async def record_batch_poll(self, jobs: Sequence[Job], now: float, hints: bool) -> None:
        """Every job's record in the same shared pipeline (one round trip, not one per job)."""
        await asyncio.gather(*(self.record_poll(job, now, hints, "batch") for job in jobs))

    async def client_job_ids(self, client_id: str, start: int = 0) -> list[str]:
        key = self._key("client", client_id)
        ids = await self._call(lambda pipe: pipe.lrange(key, start, -1))
        return [_text(job_id) for job_id in ids]

    async def create_subscription(
        self, job_ids: Sequence[str], quota: SubscriptionQuota | None = None
    ) -> str:
        subscription_id = new_subscription_id()
        keys = [self._key("sub", subscription_id), self._key("subowner", subscription_id)]
        ttl_ms = max(1, int(self._retention_s * 1000))
        limits = (quota.max_subscriptions, quota.max_ids) if quota else (0, 0)
        args: list[str | int | float] = [self._prefix, subscription_id]
        args.append(quota.owner if quota else "")
        args += [*limits, self.clock.now(), ttl_ms, *dict.fromkeys(job_ids)]
        passed = await self._direct(partial(self._create_subscription, keys=keys, args=args))
        if quota is not None and passed:
            raise quota.too_many_subscriptions() if passed == 1 else quota.too_many_ids()
        return subscription_id

    async def extend_subscription(
        self,
        subscription_id: str,
        job_ids: Sequence[str],
        quota: SubscriptionQuota | None = None,
    ) -> bool:
        keys = [self._key("sub", subscription_id), self._key("subowner", subscription_id)]
        max_ids = quota.max_ids if quota else 2**53
        args: list[str | int] = [self._prefix, max_ids, repr(self.clock.now())]
        args += dict.fromkeys(job_ids)
        done = int(await self._direct(partial(self._extend_subscription, keys=keys, args=args)))
        if quota is not None and done == 2:
            raise quota.too_many_ids()
        return done == 1

    async def subscription_jobs(
        self, subscription_id: str, added_after: float = -math.inf
    ) -> list[tuple[str, float]] | None:
        key = self._key("sub", subscription_id)
        low = "-inf" if added_after == -math.inf else f"({added_after!r}"

        async def run() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.exists(key)
                pipe.zrangebyscore(key, low, "+inf", withscores=True)
                return list(await pipe.execute())

        exists, members = await self._direct(run)
        if not exists:
            return None
        return [
            (_text(member), float(score))
            for member, score in members
            if _text(member) != _SUBSCRIPTION_MARKER
        ]

    async def touch_subscription(self, subscription_id: str) -> bool:
        key, owner = self._key("sub", subscription_id), self._key("subowner", subscription_id)
        ttl_ms = max(1, int(self._retention_s * 1000))

        async def run() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.pexpire(key, ttl_ms)
                pipe.pexpire(owner, ttl_ms)
                return list(await pipe.execute())

        return bool((await self._direct(run))[0])

    async def delete_subscription(self, subscription_id: str) -> bool:
        keys = self._key("sub", subscription_id), self._key("subowner", subscription_id)
        # The owner's set forgets it on its next count (the sorted set is gone).
        return bool(await self._direct(lambda: self._redis.delete(*keys)))

    async def record_callback_attempt(self, job_id: str, attempt: CallbackAttempt) -> None:
        keys = [self._key("job", job_id), self._key("callbacks", job_id)]
        document = attempt.model_dump_json()
        await self._direct(lambda: self._record_callback(keys=keys, args=[document]))

    async def callback_attempts(self, job_id: str) -> list[CallbackAttempt]:
        key = self._key("callbacks", job_id)
        documents = await self._direct(lambda: self._redis.lrange(key, 0, -1))
        return [CallbackAttempt.model_validate_json(document) for document in documents]

    async def remember_callbacks(
        self, targets: Sequence[tuple[Job, str, str | None]], *, takeover_s: float
    ) -> None:
        """Owed by this process, leased until ``takeover_s`` after each job's end."""
        owed = self._key("callbacks-owed")
        ttl_ms = max(1, int(self._retention_s * 1000))

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                for job, url, secret in targets:
                    target = self._key("callback", job.job_id)
                    fields = ["url", url, "secret", secret or "", "owner", self._owner]
                    pipe.hset(target, items=fields)
                    pipe.pexpire(target, ttl_ms)
                    pipe.zadd(owed, {job.job_id: job.finishes_at + takeover_s})
                await pipe.execute()

        await self._direct(write)

    async def lease_callback(self, job_id: str, until: float) -> bool:
        keys = [self._key("callbacks-owed"), self._key("callback", job_id)]
        args = [job_id, repr(until), self._owner]
        return bool(await self._direct(lambda: self._lease_callback(keys=keys, args=args)))

    async def release_callback(self, job_id: str) -> None:
        owed, target = self._key("callbacks-owed"), self._key("callback", job_id)

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(owed, job_id)
                pipe.delete(target)
                await pipe.execute()

        await self._direct(write)

    async def claim_lapsed_callbacks(
        self, now: float, until: float
    ) -> list[tuple[Job, str, str | None, int]]:
        keys = [self._key("callbacks-owed")]
        args = [self._prefix, repr(now), repr(until), self._owner, str(_CLAIMS_PER_CALL)]
        claimed = await self._direct(lambda: self._claim_callbacks(keys=keys, args=args))
        ids = [raw.decode() for raw in claimed[0::4]]
        owed: list[tuple[Job, str, str | None, int]] = []
        for job, job_id, url, secret, attempts in zip(
            await self.get_many(ids), ids, claimed[1::4], claimed[2::4], claimed[3::4], strict=True
        ):
            if job is None or not url:  # expired with its record: nothing left to deliver
                await self.release_callback(job_id)
                continue
            owed.append((job, url.decode(), secret.decode() or None, int(attempts)))
        return owed

    async def _get(self, job_id: str) -> Job | None:
        fields = await self._call(
            lambda pipe: pipe.hmget(self._key("job", job_id), "c", "d", "f", "n", "s", "v")
        )
        return self._job(job_id, fields)

    async def get_and_record_poll(self, job_id: str, now: float, hints: bool) -> Job | None:
        if job_id == SPECIAL_JOB_ID:
            return await super().get_and_record_poll(job_id, now, hints)
        keys = [self._key("job", job_id), self._key("log", job_id)]
        args = [repr(now), "1" if hints else "0", self.request_log_length]
        fields = await self._call(lambda pipe: _evalsha(pipe, self._poll, keys, args))
        job = self._job(job_id, fields)
        if job is not None and job.result_at(now) != "pending":
            self.final_deliveries["status"] += 1
        return job

    async def get_record(self, job_id: str) -> Job | None:
        job = await self.get(job_id)
        if job is None or job.fails is None:
            return job
        entries = await self._call(lambda pipe: pipe.lrange(self._key("log", job_id), 0, -1))
        requests = [request_log.unpack(entry) for entry in entries]
        job.log = request_log.build(requests, self.request_log_length)
        return job

    async def _load(self, job_ids: list[str]) -> list[Job | None]:
        if not job_ids:
            return []

        def read_all(pipe: Pipeline) -> None:
            for job_id in job_ids:
                pipe.hmget(self._key("job", job_id), "c", "d", "f", "n", "s", "v")

        async def run() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                read_all(pipe)
                return list(await pipe.execute())

        rows = await self._direct(run)
        return [self._job(job_id, fields) for job_id, fields in zip(job_ids, rows, strict=True)]

    def _job(self, job_id: str, fields: list[bytes | None]) -> Job | None:
        created_at, duration_s, fails, count, first_final, channel = fields
        if created_at is None or duration_s is None:
            return None
        job = Job(job_id, float(created_at), float(duration_s), fails == b"1")
        if job.finishes_at <= self.clock.now() - self._retention_s:
            return None
        job.status_requests = int(count or 0)
        if first_final is not None:
            job.first_final_seen_at = float(first_final)
            job.first_final_channel = _channel(channel)
        return job

    async def record_status_request(
        self,
        job: Job,
        *,
        at: float,
        code: int,
        retry_after_s: float | None,
        result: Result | None,
        channel: DeliveryChannel = "status",
    ) -> None:
        if job.fails is None:  # the special job lives in each process, not in Redis
            job.status_requests += 1
            return
        final = result is not None and result != "pending"
        entry = request_log.pack(request_log.StatusRequest(at, code, retry_after_s))
        keys = [self._key("job", job.job_id), self._key("log", job.job_id)]
        args = [repr(at) if final else "", entry, self.request_log_length, channel]
        await self._call(lambda pipe: _evalsha(pipe, self._record, keys, args))

    async def _record_deliveries(
        self, deliveries: Sequence[tuple[str, float]], channel: DeliveryChannel
    ) -> None:
        shared = [(job_id, at) for job_id, at in deliveries if job_id != SPECIAL_JOB_ID]
        if not shared:
            return
        keys = [self._key("job", job_id) for job_id, _ in shared]
        args = [channel, *(repr(at) for _, at in shared)]
        await self._call(lambda pipe: _evalsha(pipe, self._delivered, keys, args))

    async def page(self, offset: int, limit: int) -> list[Job]:
        job_ids = await self._direct(
            lambda: self._redis.zrange(self._key("created"), offset, offset + limit - 1)
        )
        found = await self._load([_text(job_id) for job_id in job_ids])
        return [job for job in found if job is not None]

    async def count(self) -> int:
        cutoff = f"({self.clock.now() - self._retention_s!r}"

        async def run() -> int:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcount(self._key("finishes", "ok"), cutoff, "+inf")
                pipe.zcount(self._key("finishes", "err"), cutoff, "+inf")
                return sum(await pipe.execute())

        return int(await self._direct(run))

    async def counts_by_state(self) -> dict[Result, int]:
        now = self.clock.now()
        cutoff = f"({now - self._retention_s!r}"

        async def run() -> list[int]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for fate in ("ok", "err"):
                    pipe.zcount(self._key("finishes", fate), cutoff, "+inf")
                    pipe.zcount(self._key("finishes", fate), cutoff, repr(now))
                return list(await pipe.execute())

        ok_live, completed, err_live, error = await self._direct(run)
        pending = ok_live - completed + err_live - error
        return {"pending": pending, "completed": completed, "error": error}

    async def seconds_until_room(self, count: int) -> float:
        now = self.clock.now()
        need = await self.count() + count - self.max_jobs
        if need <= 0:
            return 0.0
        cutoff = f"({now - self._retention_s!r}"

        async def run() -> list[list[tuple[bytes, float]]]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for fate in ("ok", "err"):
                    pipe.zrangebyscore(
                        self._key("finishes", fate), cutoff, "+inf", 0, need, withscores=True
                    )
                return list(await pipe.execute())

        by_fate = await self._direct(run)
        merged = heapq.merge(*([score for _, score in rows] for rows in by_fate))
        finishes: list[float] = list(islice(merged, need))
        if len(finishes) < need:
            return self._retention_s
        return finishes[-1] + self._retention_s - now

    async def publish_faults(self, faults: Faults) -> None:
        document = faults.model_dump_json()
        await self._direct(lambda: self._redis.set(self._key("faults"), document))

    async def published_faults(self) -> Faults | None:
        document = await self._direct(lambda: self._redis.get(self._key("faults")))
        return None if document is None else Faults.model_validate_json(document)

    async def take_rate_token(self, client_id: str, rate: float) -> float:
        key = self._key("bucket", f"{rate:g}", client_id)
        args = [rate, max(1.0, rate), repr(self.clock.now())]
        wait = await self._call(lambda pipe: _evalsha(pipe, self._take_token, [key], args))
        return float(_text(wait))


class _RedisTokenBuckets(RateLimiter):
    """One bucket per client and rate, shared by every worker: a changed rate starts
    fresh buckets (the old ones expire on their own)."""

    def __init__(self, store: RedisJobStore) -> None:
        self._store = store

    async def take_token(self, client_id: str, rate: float) -> float:
        return await self._store.take_rate_token(client_id, rate)

    def reset(self) -> None:
        pass


_CHANNELS: dict[bytes, DeliveryChannel] = {
    channel.encode(): channel for channel in get_args(DeliveryChannel)
}


def _channel(stored: bytes | None) -> DeliveryChannel:
    """The channel kept in a job's hash (field v; absent for a status answer)."""
    return _CHANNELS.get(stored or b"", "status")


def _evalsha(pipe: Pipeline, script: AsyncScript, keys: list[str], args: list[Any]) -> None:
    """Queue a script, by hash, in a pipeline (see :meth:`RedisJobStore._load_scripts`)."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
