"""The polling engine's two lanes: watches on one client, requests someone waits for on another."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from textual.message import Message

from tests.tui.conftest import FakeClient
from tui.engine import PollingEngine
from tui.messages import EngineReady


class RecordingClient(FakeClient):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.records: list[str] = []

    async def job_record(self, job_id: str) -> dict[str, Any]:
        self.records.append(job_id)
        return await super().job_record(job_id)


async def test_quick_requests_do_not_queue_behind_the_polls() -> None:
    clients: list[RecordingClient] = []

    def create(url: str) -> RecordingClient:
        clients.append(RecordingClient(url))
        return clients[-1]

    ready = threading.Event()

    def post(message: Message) -> None:
        if isinstance(message, EngineReady):
            ready.set()

    engine = PollingEngine(
        "http://127.0.0.1:7999",
        create,  # type: ignore[arg-type]
        post,
        clock=time.monotonic,
        start_concurrency=2,
        batch_interval_s=0.01,
        health_interval_s=3600.0,
    )
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, 10)
        await engine.call(lambda client: client.job_record("record"), quick=True)
        await engine.call(lambda client: client.job_record("batch"))
    finally:
        engine.stop()
        thread.join(5)
    polling, quick = clients
    assert quick.records == ["record"]
    assert polling.records == ["batch"]
