"""The event stream survives a server restart: reconnect with Last-Event-ID, no state lost.

The server keeps its jobs in a sqlite file, so the restarted one knows them, and the
cursor the client last saw (``Last-Event-ID``) replays the final states it missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from client_core import BackoffPolicy, DelayReason, Outcome, PollEvent, Strategy, VideoSimClient
from tests.support.live_server import LiveServer

Factory = Callable[..., LiveServer]
POLICY = BackoffPolicy(deadline_s=20.0)


async def test_the_stream_resumes_after_a_restart_and_replays_what_ended_meanwhile(
    live_server_factory: Factory, tmp_path: Path
) -> None:
    server = live_server_factory("--store", f"sqlite:///{tmp_path / 'jobs.db'}")
    events: list[PollEvent] = []
    async with VideoSimClient(server.url) as client:
        first = await client.start(0.1, "completed")
        assert (await client.wait(first, POLICY, Strategy.STREAM)).outcome is Outcome.COMPLETED
        stream = client.push.stream
        assert stream is not None and stream.last_event_id  # a cursor to resume from
        ended_while_down = await client.start(0.5, "error")
        ends_later = await client.start(2.5, "completed")
        watches = asyncio.gather(
            *(
                client.wait(job_id, POLICY, Strategy.STREAM, on_event=events.append)
                for job_id in (ended_while_down, ends_later)
            )
        )

        def restart() -> None:
            server.stop()
            time.sleep(0.8)  # the first job ends while nobody serves its stream
            server.start()

        await asyncio.to_thread(restart)
        results = await asyncio.wait_for(watches, 15)
        stats = client.stats
    assert [r.outcome for r in results] == [Outcome.ERROR, Outcome.COMPLETED]
    assert {(e.reason, e.strategy) for e in events} == {(DelayReason.PUSHED, Strategy.STREAM)}
    assert stats.stream_resumes >= 1  # reconnected with Last-Event-ID...
    assert stats.batch_requests == 0  # ...and the stream itself said how both jobs ended
