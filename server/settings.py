"""Server configuration: defaults < ``.env`` file < environment < command-line flags.

Every field reads ``VIDEOSIM_<FIELD>`` from the environment (and from ``.env``); the
seed's ``DELAY`` name still works for :attr:`ServerSettings.delay`. The command line
passes its flags as keyword arguments, which pydantic-settings ranks above both.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_profiles import DEFAULT_PROFILE, Profile, ProfileName, builtin_names, load_profile
from scenarios import Scenario, load_scenario
from scenarios import builtin_names as scenario_names
from server.models import Faults
from server.stores.base import StoreOptions
from server.stores.urls import store_kind

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class ServerSettings(BaseSettings):
    """Everything the server can be told at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="VIDEOSIM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,  # "VIDEOSIM_SEED=" in a .env file means "not set"
        validate_default=True,
        populate_by_name=True,
    )

    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(7999, ge=1, le=65535, description="TCP port to listen on")
    delay: float = Field(
        5.0,
        gt=0,
        le=86400,
        validation_alias=AliasChoices("VIDEOSIM_DELAY", "DELAY"),
        allow_inf_nan=False,
        description="seconds a job stays pending when POST /start names no duration",
    )
    error_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="chance that a random-outcome job ends in error",
    )
    hints: bool = Field(True, description="send eta_s, progress and Retry-After while pending")
    long_poll_max_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="cap on GET /status?wait=S in seconds; 0 disables",
    )
    plain: bool = Field(
        False,
        description="behave like the original simulation: no hints, no long-poll, no batch "
        "or idempotency; POST /start ignores its body and answers the job id alone",
    )
    seed: int | None = Field(
        None, description="seed for outcomes and faults (job ids are always random)"
    )
    scenario: str | None = Field(
        None,
        description="play a scenario's fault timeline and job durations: a built-in "
        f"({', '.join(scenario_names())}) or a scenario file; GET /admin/scenario tells "
        "where it is",
    )
    profile: ProfileName = Field(
        DEFAULT_PROFILE,
        description="the job API to speak besides videosim's own: a built-in profile name "
        f"({', '.join(builtin_names())}) or a profile file; original is --plain",
    )
    reload: bool = Field(False, description="restart the server when its code changes")
    max_jobs: int = Field(
        1_000_000, ge=1, le=100_000_000, description="cap on stored jobs; beyond it 503"
    )
    max_batch: int = Field(
        1000, ge=1, le=100_000, description="most jobs one POST /start/batch may create"
    )
    retention_s: float = Field(
        3600.0,
        gt=0,
        le=30 * 86400,
        allow_inf_nan=False,
        description="seconds a finished job (and an Idempotency-Key) is kept before it expires",
    )
    request_log_length: int = Field(
        200, ge=0, le=10_000, description="status requests kept per job for GET /jobs/{id}"
    )
    max_idempotency_keys: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="most Idempotency-Keys remembered; the oldest go first",
    )
    max_duration_s: float = Field(
        3600.0,
        gt=0,
        le=30 * 86400,
        allow_inf_nan=False,
        description="largest duration_s a POST /start may ask for",
    )
    max_body_bytes: int = Field(
        65536, ge=0, le=1 << 30, description="largest request body; beyond it 413"
    )
    api_key: str | None = Field(
        None, description="require this X-Api-Key on every route but /healthz"
    )
    fault_latency_ms: float = Field(
        0.0, ge=0, le=60_000, allow_inf_nan=False, description="latency added to /start and /status"
    )
    fault_latency_jitter_ms: float = Field(
        0.0,
        ge=0,
        le=60_000,
        allow_inf_nan=False,
        description="random extra latency, up to this much",
    )
    fault_unavailable_rate: float = Field(
        0.0, ge=0, le=1, allow_inf_nan=False, description="share of /start and /status answered 503"
    )
    fault_retry_after_s: int = Field(
        1, ge=1, le=3600, description="Retry-After seconds sent with an injected 503"
    )
    fault_rate_limit_rps: float = Field(
        0.0,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="per-client requests/s on /start and /status; 0 = off",
    )
    max_header_bytes: int = Field(
        16384, ge=1024, le=1 << 24, description="largest request line plus headers; beyond it 431"
    )
    max_headers: int = Field(
        100, ge=1, le=10_000, description="most request headers; beyond it 431"
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds a client has to send a request's headers; then 408 and close",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds a client has to send a request's body; then 408 and close",
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="open connections beyond which new ones get 503 with Retry-After "
        "(default: the open-file limit less 64, at most 10000)",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses of proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto name the client; empty: those headers are ignored, whoever "
        "sends them (the client is the peer address)",
    )
    log_level: LogLevel = Field("warning", description="uvicorn log level")
    store: str = Field(
        "memory",
        description="where jobs live: memory, sqlite:///path/jobs.db (durable) or "
        "redis://host:port/db (shared by several workers and hosts)",
    )
    workers: int = Field(
        1, ge=1, le=64, description="server processes on this port; more than 1 needs redis"
    )
    state_file: Path | None = Field(
        None,
        description="deprecated: the same as --store sqlite:///PATH; an old JSON state file "
        "there is migrated once",
    )

    max_batch_status: int = Field(
        10_000,
        ge=1,
        le=100_000,
        description="most job ids one POST /status/batch or POST /subscriptions may name",
    )
    max_subscriptions_per_client: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="subscriptions one client (API key, else address) may hold at once; "
        "beyond it POST /subscriptions answers 429",
    )
    max_subscribed_ids_per_client: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="job ids one client may hold in all of its subscriptions; beyond it 429",
    )
    events_heartbeat_s: float = Field(
        15.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds between heartbeat comments on an idle GET /events stream",
    )
    events_buffer: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="undelivered events one GET /events reader may fall behind by; beyond "
        "it the stream gets an error event and is closed",
    )
    events_send_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="seconds one write to a GET /events reader may stay blocked before "
        "the stream is dropped",
    )
    callback_hosts: str = Field(
        "",
        description="comma-separated hosts callback_url may name besides loopback "
        "(127.0.0.0/8, ::1, localhost); host:port allows that port only",
    )
    callback_failure_details: bool = Field(
        False,
        description="record why a webhook delivery failed (the receiver's HTTP code or "
        "connection error); off, a failure is recorded without them, so that clients "
        "cannot map the ports this server reaches",
    )
    allow_any_callback_host: bool = Field(
        False, description="let callback_url name any host (not only loopback and --callback-hosts)"
    )
    callback_attempts: int = Field(
        6, ge=1, le=30, description="webhook deliveries tried per job (backoff 0.5, 1, 2, ... s)"
    )
    callback_takeover_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="with a shared store: seconds past a webhook's due time before another "
        "process delivers what a dead one owed",
    )

    @field_validator("api_key")
    @classmethod
    def _empty_key_means_none(cls, value: str | None) -> str | None:
        """``--api-key ""`` means no key, not a key nobody can send."""
        return value or None

    @field_validator("state_file", mode="before")
    @classmethod
    def _empty_path_means_none(cls, value: object) -> object:
        """``--state-file ""`` means no state file, not the current directory."""
        return None if value == "" else value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        store_kind(value)  # raises StoreUrlError, a ValueError, for an unknown one
        return value

    @property
    def api_profile(self) -> Profile:
        return load_profile(self.profile)

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str | None) -> str | None:
        if value is not None:
            load_scenario(value)  # raises ScenarioError, a ValueError, with one line
        return value

    @property
    def played_scenario(self) -> Scenario | None:
        return None if self.scenario is None else load_scenario(self.scenario)

    @model_validator(mode="after")
    def _scenario_seeds_the_run(self) -> Self:
        """A scenario's seed and outcome mix, unless given: the same jobs every run."""
        if (scenario := self.played_scenario) is not None:
            if "seed" not in self.model_fields_set:
                self.seed = scenario.seed
            if "error_rate" not in self.model_fields_set:
                self.error_rate = scenario.jobs.error_rate
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _plain_turns_extensions_off(self) -> Self:
        if self.profile == "original":
            self.plain = True
        if self.plain:
            self.hints = False
            self.long_poll_max_s = 0.0
        return self

    @model_validator(mode="after")
    def _one_store(self) -> Self:
        if self.state_file is not None and self.store != "memory":
            raise ValueError("give --store or the deprecated --state-file, not both")
        if self.workers > 1 and store_kind(self.store_url) != "redis":
            raise ValueError(
                f"--workers {self.workers} needs a shared store (--store redis://host:port/db); "
                f"{self.store_url} lives in one process"
            )
        return self

    @property
    def store_url(self) -> str:
        """The store to use: ``store``, or the SQLite file ``--state-file`` stands for."""
        if self.state_file is not None:
            return f"sqlite:///{self.state_file}"
        return self.store

    def store_options(self) -> StoreOptions:
        """What the store is built with (its generator seeded with ``seed``)."""
        return StoreOptions(
            rng=random.Random(self.seed),
            default_duration_s=self.delay,
            error_rate=self.error_rate,
            max_jobs=self.max_jobs,
            retention_s=self.retention_s,
            request_log_length=self.request_log_length,
            max_idempotency_keys=self.max_idempotency_keys,
        )

    def initial_faults(self) -> Faults:
        """The fault settings the server starts with (PUT /admin/faults changes them)."""
        return Faults(
            latency_ms=self.fault_latency_ms,
            latency_jitter_ms=self.fault_latency_jitter_ms,
            unavailable_rate=self.fault_unavailable_rate,
            retry_after_s=self.fault_retry_after_s,
            rate_limit_rps=self.fault_rate_limit_rps,
        )
