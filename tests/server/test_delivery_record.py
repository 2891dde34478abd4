"""The server's record knows when, and by which channel, each client learned an outcome,
whatever the strategy: a status answer, a batch answer, an event stream or a webhook.

A real server on a free port and the real client library or runner; the records are read
back from ``GET /jobs`` and ``/metrics`` as any user would.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest

from client_core import (
    BackoffPolicy,
    PushedState,
    StartSpec,
    Strategy,
    VideoSimClient,
    WebhookReceiver,
)
from tests.support.live_server import LiveServer

POLICY = BackoffPolicy(initial_s=0.05, multiplier=1.5, max_delay_s=0.2, deadline_s=15.0)


async def records_when(
    http: httpx.AsyncClient, job_ids: list[str], timeout_s: float = 15.0
) -> list[dict[str, Any]]:
    """Every job's record, once each shows its first delivery (they are written within a
    loop turn of the delivery; the bound is generous)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [(await http.get(f"/jobs/{job_id}")).json() for job_id in job_ids]
        if all(record["first_final_seen_at"] is not None for record in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"no delivery recorded after {timeout_s}s: {records}")
        await asyncio.sleep(0.05)


def delivered_metric(metrics: str, channel: str) -> float:
    found = re.search(rf'^videosim_final_deliveries_total{{channel="{channel}"}} (\S+)$',
                      metrics, re.MULTILINE)  # fmt: skip
    assert found, metrics
    return float(found.group(1))


async def watch(live_server: LiveServer, count: int, strategy: Strategy) -> list[str]:
    async with VideoSimClient(live_server.url) as client:
        started = await client.start_many(
            [StartSpec(duration_s=0.2 + 0.02 * n, outcome="completed") for n in range(count)]
        )
        job_ids = [result.job_id for result in started if result.job_id]
        assert len(job_ids) == count
        await asyncio.gather(*(client.wait(job_id, POLICY, strategy) for job_id in job_ids))
    return job_ids


async def test_each_channel_is_recorded_with_its_time(live_server: LiveServer) -> None:
    streamed = await watch(live_server, 20, Strategy.STREAM)
    batched = await watch(live_server, 5, Strategy.BATCH)
    polled = await watch(live_server, 3, Strategy.BACKOFF)
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        for job_ids, channel in ((streamed, "stream"), (batched, "batch"), (polled, "status")):
            for record in await records_when(http, job_ids):
                assert record["first_final_channel"] == channel, record
                lag = record["detection_lag_s"]
                assert lag is not None and 0 <= lag < POLICY.deadline_s, record
                assert record["first_final_seen_at"] >= record["finishes_at"]
        streamed_records = [(await http.get(f"/jobs/{job_id}")).json() for job_id in streamed]
        assert all(record["status_requests"] == 0 for record in streamed_records)
        listing = (await http.get("/jobs", params={"limit": 100})).json()["jobs"]
        assert {job["first_final_channel"] for job in listing} == {"stream", "batch", "status"}
        metrics = (await http.get("/metrics")).text
    assert delivered_metric(metrics, "stream") == 20
    assert delivered_metric(metrics, "batch") >= 5
    assert delivered_metric(metrics, "status") >= 3
    assert delivered_metric(metrics, "webhook") == 0


async def test_a_webhook_counts_once_its_receiver_accepted_it(live_server: LiveServer) -> None:
    refusals_left = 1

    def refuse_once(state: PushedState) -> None:
        nonlocal refusals_left
        if refusals_left:
            refusals_left -= 1
            raise RuntimeError("not now")  # the receiver answers 500: not delivered yet

    async with WebhookReceiver("s3cret") as receiver, VideoSimClient(live_server.url) as client:
        receiver.add_listener(refuse_once)
        client.use_webhooks(receiver)
        job_id = await client.start(0.2, "error")
        await client.wait(job_id, BackoffPolicy(deadline_s=15))
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        (record,) = await records_when(http, [job_id])
        metrics = (await http.get("/metrics")).text
    accepted = record["callbacks"][-1]
    assert [attempt["status_code"] for attempt in record["callbacks"]] == [500, 204]
    assert record["first_final_channel"] == "webhook"
    assert record["status_requests"] == 0
    # The time the receiver's 2xx came back, not the refused first attempt.
    assert record["first_final_seen_at"] >= accepted["at"] > record["callbacks"][0]["at"]
    assert delivered_metric(metrics, "webhook") == 1


async def test_the_runner_streaming_leaves_a_lag_for_every_job(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from client_core.runner import main

    code = await asyncio.to_thread(
        main,
        ["--server-url", live_server.url, "--jobs", "20", "--duration", "0.3", "--no-special",
         "--strategy", "stream", "--json", "--quiet"],
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    job_ids = [job["job_id"] for job in summary["jobs"]]
    assert len(job_ids) == 20
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        records = await records_when(http, job_ids)
    assert {record["first_final_channel"] for record in records} == {"stream"}
    assert all(record["detection_lag_s"] is not None for record in records)
