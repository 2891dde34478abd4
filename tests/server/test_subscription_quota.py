"""Subscriptions are bounded per caller, in every store.

Before: 300 ``POST /subscriptions`` naming the same 10,000 ids were all accepted and kept
335 MiB for the retention window. Now a caller holds at most
``--max-subscriptions-per-client`` subscriptions with ``--max-subscribed-ids-per-client``
ids in all; beyond, 429 naming the limit; deleting one makes room; another caller has a
quota of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.server.conftest import Server

OpenServer = Callable[..., Awaitable[Server]]


async def test_a_caller_holds_a_bounded_number_of_subscriptions_and_ids(
    open_server: OpenServer, store_url: str
) -> None:
    server = await open_server(
        store=store_url, max_subscriptions_per_client=3, max_subscribed_ids_per_client=5
    )
    jobs = [(await server.start(duration_s=600))["job_id"] for _ in range(6)]
    http = server.http

    first = await http.post("/subscriptions", json={"job_ids": jobs[:2]})
    second = await http.post("/subscriptions", json={"job_ids": jobs[2:4]})
    assert (first.status_code, second.status_code) == (201, 201)
    too_many_ids = await http.post("/subscriptions", json={"job_ids": jobs[:2]})
    assert too_many_ids.status_code == 429
    assert too_many_ids.json()["detail"].startswith("Subscribed job limit reached: 5 job ids")
    third = await http.post("/subscriptions", json={"job_ids": [jobs[4]]})
    assert third.status_code == 201
    fourth = await http.post("/subscriptions", json={"job_ids": [jobs[0]]})
    assert fourth.status_code == 429
    assert fourth.json()["detail"].startswith("Subscription limit reached: 3 per client")

    # Adding ids counts too; ids already in the subscription cost nothing.
    first_id = first.json()["subscription_id"]
    again = await http.post(f"/subscriptions/{first_id}/jobs", json={"job_ids": jobs[:2]})
    assert again.status_code == 200
    over = await http.post(f"/subscriptions/{first_id}/jobs", json={"job_ids": jobs[5:]})
    assert over.status_code == 429

    # Another caller has a quota of its own.
    transport = httpx.ASGITransport(app=server.app, client=("10.0.0.9", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
        theirs = await other.post("/subscriptions", json={"job_ids": jobs[:5]})
        assert theirs.status_code == 201

    # Deleting one frees its room.
    assert (await http.delete(f"/subscriptions/{first_id}")).status_code == 204
    room = await http.post("/subscriptions", json={"job_ids": jobs[:2]})
    assert room.status_code == 201, room.text
