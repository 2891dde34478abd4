"""The event stream reconnects on the client's one retry policy: tested without sleeping."""

from __future__ import annotations

import asyncio

import httpx

from client_core.channel import ClientStats
from client_core.clock import SteppingClock
from client_core.event_stream import RECONNECT_POLICY, EventStream, StreamSettings
from client_core.policy import BackoffPolicy, Jitter


async def test_reconnects_follow_the_backoff_policy_with_jitter_until_given_up() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    policy = BackoffPolicy(
        initial_s=0.1, multiplier=2.0, max_delay_s=2.0, jitter=Jitter.PROPORTIONAL, seed=7
    )
    clock = SteppingClock()
    gone: list[str] = []
    given_up = asyncio.Event()
    stream = EventStream(
        StreamSettings("http://nobody", {}, connect_timeout_s=1.0, reconnect=policy),
        clock=clock,
        stats=ClientStats(),
        on_state=lambda state: None,
        on_gone=lambda why: (gone.append(why), given_up.set()),
        transport=httpx.MockTransport(refuse),
    )
    stream.start()
    async with asyncio.timeout(10):
        await given_up.wait()
    await stream.aclose()
    assert len(clock.sleeps) >= 5
    assert clock.sleeps == policy.schedule(len(clock.sleeps))  # jittered, exactly the policy's
    assert clock.sleeps != [policy.base_delay(n) for n in range(1, len(clock.sleeps) + 1)]
    assert max(clock.sleeps) <= 2.0 * 1.2
    assert "keeps breaking" in gone[0]


def test_the_default_reconnect_policy_is_jittered_and_capped() -> None:
    assert RECONNECT_POLICY.jitter is not Jitter.NONE
    assert RECONNECT_POLICY.max_delay_s == 2.0
