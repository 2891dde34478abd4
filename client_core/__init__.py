"""client_core: poll videosim jobs well, from one job to ten thousand.

The public surface, used by the dashboard, the headless runner and benchmarks::

    async with VideoSimClient("http://127.0.0.1:7999") as client:
        job_id = await client.start(duration_s=2)
        result = await client.wait(job_id, BackoffPolicy(), Strategy.AUTO)

Nothing in this package prints or imports a UI; see docs/client.md.
"""

from client_core.admission import Lane
from client_core.answers import HealthCheck, JobStatus
from client_core.capabilities import Capabilities
from client_core.channel import ClientStats
from client_core.client import ClientOptions, VideoSimClient, wait_for
from client_core.clock import Clock, SteppingClock, SystemClock
from client_core.errors import (
    ClientError,
    MalformedAnswer,
    RequestRejected,
    ServerUnreachable,
    VideoSimError,
)
from client_core.events import DelayReason, Outcome, PollEvent, Strategy, WatchResult
from client_core.planner import PollTiming
from client_core.policy import POLICY_FIELDS, BackoffPolicy, Jitter
from client_core.protocol import DEFAULT_SERVER_URL, SPECIAL_JOB_ID
from client_core.pushed import PushedState, PushWait, Route
from client_core.settings import ClientSettings
from client_core.starts import StartResult, StartSpec
from client_core.watch_list import job_ids_in, read_watch_file
from client_core.webhooks import WebhookReceiver

__all__ = [
    "DEFAULT_SERVER_URL",
    "POLICY_FIELDS",
    "SPECIAL_JOB_ID",
    "BackoffPolicy",
    "Capabilities",
    "ClientError",
    "ClientOptions",
    "ClientSettings",
    "ClientStats",
    "Clock",
    "DelayReason",
    "HealthCheck",
    "Jitter",
    "JobStatus",
    "Lane",
    "MalformedAnswer",
    "Outcome",
    "PollEvent",
    "PollTiming",
    "PushWait",
    "PushedState",
    "RequestRejected",
    "Route",
    "ServerUnreachable",
    "StartResult",
    "StartSpec",
    "SteppingClock",
    "Strategy",
    "SystemClock",
    "VideoSimClient",
    "VideoSimError",
    "WatchResult",
    "WebhookReceiver",
    "job_ids_in",
    "read_watch_file",
    "wait_for",
]
