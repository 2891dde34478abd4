"""Client configuration: defaults < ``.env`` < environment < explicit arguments.

Every field reads ``VIDEOSIM_<FIELD>`` (e.g. ``VIDEOSIM_SERVER_URL``). The seed
client's names keep working: ``RETRIES`` is the attempt budget and
``BACKOFF_FACTOR`` the first delay of the original doubling schedule
(``delay = BACKOFF_FACTOR * 2**attempt``). Command-line flags are passed as
keyword arguments, which pydantic-settings ranks above every other source.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_profiles import DEFAULT_PROFILE, Profile, ProfileName, load_profile
from client_core.client import ClientOptions
from client_core.events import Strategy
from client_core.policy import POLICY_FIELDS, BackoffPolicy, Jitter
from client_core.protocol import DEFAULT_SERVER_URL

Preset = Literal["default", "original", "fixed"]
FIXED_INTERVAL_S = 1.0  # the fixed preset's interval when initial_s is not given


class ClientSettings(BaseSettings):
    """Where the server is, how to poll it, and how hard."""

    model_config = SettingsConfigDict(
        env_prefix="VIDEOSIM_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        env_parse_none_str="none",
        extra="ignore",
        populate_by_name=True,
    )

    server_url: str = DEFAULT_SERVER_URL
    # The job API spoken: a built-in profile name or a profile file (api_profiles).
    profile: ProfileName = DEFAULT_PROFILE
    api_key: str | None = None
    client_id: str | None = None
    strategy: Strategy = Strategy.AUTO

    # The backoff policy: a preset, then any parameter given overrides it.
    preset: Preset | None = None  # None: "original" if BACKOFF_FACTOR is set, else the caller's
    initial_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    multiplier: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    max_delay_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    jitter: Jitter | None = None
    jitter_ratio: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("VIDEOSIM_MAX_ATTEMPTS", "VIDEOSIM_RETRIES", "RETRIES"),
    )
    backoff_factor: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        validation_alias=AliasChoices("VIDEOSIM_BACKOFF_FACTOR", "BACKOFF_FACTOR"),
    )
    deadline_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    seed: int | None = None

    # Shared limits for all watchers of one client.
    max_in_flight: int = Field(default=64, ge=1)
    max_rps: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    connect_timeout_s: float = Field(default=2.0, gt=0, allow_inf_nan=False)
    read_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    # Every server-advised pause (Retry-After, long-poll hold) is capped at this.
    max_server_pause_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)

    def policy(self, default_preset: Preset = "default") -> BackoffPolicy:
        """The BackoffPolicy these settings describe (ValueError if inconsistent)."""
        preset = self.preset or ("original" if self.backoff_factor is not None else default_preset)
        first_delay = self.initial_s if self.initial_s is not None else self.backoff_factor
        if preset == "original":
            base = BackoffPolicy.original(
                retries=self.max_attempts if self.max_attempts is not None else 5,
                backoff_factor=first_delay if first_delay is not None else 1.0,
            )
        elif preset == "fixed":
            base = BackoffPolicy.fixed(first_delay if first_delay is not None else FIXED_INTERVAL_S)
        else:
            base = BackoffPolicy()
            if first_delay is not None:
                base = base.replace(
                    initial_s=first_delay, max_delay_s=max(base.max_delay_s, first_delay)
                )
        # The policy's other parameters, where given (the settings name them as it does).
        changes = self.model_dump(include=set(POLICY_FIELDS) - {"initial_s"}, exclude_none=True)
        return base.replace(**changes) if changes else base

    @property
    def api_profile(self) -> Profile:
        return load_profile(self.profile)

    def client_options(self) -> ClientOptions:
        """How the client reaches the server, as a typed struct."""
        return ClientOptions(
            profile=self.profile,
            api_key=self.api_key,
            client_id=self.client_id,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_in_flight=self.max_in_flight,
            max_rps=self.max_rps,
            max_server_pause_s=self.max_server_pause_s,
        )
