"""The webhook receiver: signatures checked, callbacks end watches, failures retried.

The receiver is real (a loopback port); so is the server that calls it back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from client_core import (
    BackoffPolicy,
    DelayReason,
    Outcome,
    PollEvent,
    PushedState,
    Strategy,
    VideoSimClient,
    WebhookReceiver,
)
from tests.support.live_server import LiveServer

Factory = Callable[..., LiveServer]
SECRET = "s3cret"
FINAL = {"job_id": "j1", "result": "completed", "created_at": 1.0, "finished_at": 2.0}


def signed(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    """Headers as any Standard Webhooks sender would make them (the library signs)."""
    stamp = int(time.time() if at is None else at)
    moment = datetime.fromtimestamp(stamp, tz=UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": "msg-1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": Webhook(secret.encode()).sign("msg-1", moment, body),
    }


async def test_only_well_signed_recent_callbacks_are_taken_in() -> None:
    got: list[PushedState] = []
    body = json.dumps(FINAL).encode()
    async with WebhookReceiver(SECRET) as receiver, httpx.AsyncClient() as http:
        receiver.add_listener(got.append)
        url = receiver.url

        async def post(content: bytes, headers: dict[str, str]) -> int:
            return (await http.post(url, content=content, headers=headers)).status_code

        refused = [
            await post(body, signed(body, secret="not-the-secret")),
            await post(body, signed(body, at=time.time() - 301)),  # a replay, too old
            await post(body, {"Content-Type": "application/json"}),  # not signed at all
            await post(body + b" ", signed(body)),  # the body changed after signing
        ]
        pending = json.dumps({**FINAL, "result": "pending"}).encode()
        not_final = await post(pending, signed(pending))
        wrong_method = (await http.get(url)).status_code
        accepted = await post(body, signed(body))
    assert refused == [401, 401, 401, 401]
    assert not_final == 400 and wrong_method == 405
    assert accepted == 204
    assert [(s.job_id, s.result) for s in got] == [("j1", "completed")]
    assert receiver.accepted == 1 and receiver.refused == 6


async def test_a_callback_that_fails_twice_is_retried_until_the_watch_ends(
    live_server: LiveServer,
) -> None:
    failures_left = 2

    def fail_twice(state: PushedState) -> None:
        nonlocal failures_left
        if failures_left:
            failures_left -= 1
            raise RuntimeError("not now")  # the receiver answers 500: the server retries

    events: list[PollEvent] = []
    async with WebhookReceiver(SECRET) as receiver, VideoSimClient(live_server.url) as client:
        receiver.add_listener(fail_twice)
        client.use_webhooks(receiver)
        job_id = await client.start(0.1, "completed")
        result = await client.wait(job_id, BackoffPolicy(deadline_s=10), on_event=events.append)
        record = await _after_callbacks(client, job_id, 3)
    assert result.outcome is Outcome.COMPLETED
    assert [(e.reason, e.sent) for e in events] == [(DelayReason.PUSHED, False)]
    assert [attempt["status_code"] for attempt in record["callbacks"]] == [500, 500, 204]
    assert record["status_requests"] == 0  # the callback, not a poll, ended the watch
    assert receiver.failed == 2 and receiver.accepted == 1


async def test_a_badly_signed_callback_does_not_end_the_watch(live_server: LiveServer) -> None:
    events: list[PollEvent] = []
    async with (
        WebhookReceiver(SECRET) as receiver,
        VideoSimClient(live_server.url, push_safety_s=60) as client,
    ):
        receiver.secret = "what-the-server-is-told"  # the server signs with another secret
        client.use_webhooks(receiver)
        receiver.secret = SECRET
        job_id = await client.start(0.1, "completed")
        watch = client.wait(job_id, BackoffPolicy(deadline_s=1.0), on_event=events.append)
        result = await watch
        record = await _after_callbacks(client, job_id, 1)
    assert receiver.accepted == 0 and receiver.refused >= 1
    assert record["callbacks"][0]["status_code"] == 401
    # Only the deadline's last look ended the watch, with one status request.
    assert result.outcome is Outcome.COMPLETED
    assert [(e.reason, e.sent) for e in events] == [(DelayReason.FINAL, True)]
    assert record["status_requests"] == 1


async def test_the_runner_takes_its_results_by_webhook(live_server: LiveServer) -> None:
    from client_core.runner import main

    code = await asyncio.to_thread(
        main,
        ["--server-url", live_server.url, "--jobs", "3", "--duration", "0.2", "--no-special",
         "--webhook", "--json", "--quiet"],
    )  # fmt: skip
    assert code == 0


async def test_the_runner_accepts_the_push_strategies(live_server: LiveServer) -> None:
    from client_core.runner import main

    for strategy in (Strategy.STREAM, Strategy.BATCH):
        code = await asyncio.to_thread(
            main,
            ["--server-url", live_server.url, "--jobs", "3", "--duration", "0.2", "--no-special",
             "--strategy", strategy.value, "--json", "--quiet"],
        )  # fmt: skip
        assert code == 0, strategy


async def _after_callbacks(client: VideoSimClient, job_id: str, count: int) -> dict[str, Any]:
    """The job's record once it lists ``count`` callback attempts (the server records an
    attempt when its answer is back, just after the receiver has taken the state in)."""
    for _ in range(100):
        record = await client.job_record(job_id)
        if len(record["callbacks"]) >= count:
            return record
        await asyncio.sleep(0.02)
    return record
