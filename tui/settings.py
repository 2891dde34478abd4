"""How one dashboard runs: which server, how to reach it, and the defaults for new jobs.

The CLI builds this from flags and the environment; tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from client_core import DEFAULT_SERVER_URL, BackoffPolicy, ClientOptions, Strategy

DEFAULT_MAX_DURATION_S = 3600.0  # the videosim server's default --max-duration


APP_NAME = "videosim"  # names the user's config and data folders (platformdirs)


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    server_url: str | None = None  # None: use the default URL if it answers, else embed
    client_options: ClientOptions = field(default_factory=ClientOptions)  # the API key too
    default_url: str = DEFAULT_SERVER_URL  # probed when no URL is given
    embedded: bool = True  # start a child server when nothing answers on default_url
    embedded_args: tuple[str, ...] = ()  # extra `python -m server` flags for the child
    connect: bool = True  # False: no server at all (snapshots feed events by hand)
    strategy: Strategy = Strategy.AUTO  # defaults for new jobs (the policy editor edits them)
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    start_concurrency: int = 16  # POST /start requests in flight at once
    start_deadline_s: float = 60.0  # a start keeps trying (honouring Retry-After) this long
    batch_interval_s: float = 0.1  # at most one Delta (or PollEventsBatch) per interval
    frame_interval_s: float = 0.1  # the table and summary refresh rate
    health_interval_s: float = 1.0
    history_length: int = 200  # poll records kept per job
    spawn_seed: int | None = None  # seeds duration ranges in the spawn form
    max_duration_s: float = DEFAULT_MAX_DURATION_S  # the server's cap on duration_s
    export_dir: str | None = None  # where `e` writes; None: export.default_directory()
    given: frozenset[str] = frozenset()  # set by a flag or the environment: beat remembered
    watch_ids: tuple[str, ...] = ()  # jobs that exist already, watched once connected
    # Spawning on an API other than videosim's may cost money: only with --allow-start,
    # or against the emulator the dashboard starts itself.
    allow_start: bool = True
