"""Long-poll (?wait=S) and /metrics, in-process on a fake clock."""

from __future__ import annotations

import asyncio
import re

from tests.server.conftest import Server, ServerFactory


async def test_long_poll_returns_when_the_job_finishes(server: Server) -> None:
    job = await server.start(duration_s=5, outcome="completed")
    url = f"/status/{job['job_id']}"
    polls = [asyncio.create_task(server.http.get(url, params={"wait": 25})) for _ in range(3)]
    await server.until_held(3)
    assert server.state.store.waited_jobs == 1  # one timer serves all three
    assert not any(poll.done() for poll in polls)

    server.advance(5)
    responses = await asyncio.wait_for(asyncio.gather(*polls), timeout=10)
    for response in responses:
        assert response.json() == {"job_id": job["job_id"], "result": "completed"}
        assert response.headers["X-Long-Poll-Max"] == "30"
    assert server.state.store.held_requests == 0
    assert server.state.store.waited_jobs == 0

    record = (await server.http.get(f"/jobs/{job['job_id']}")).json()
    assert record["detection_lag_s"] == 0
    assert record["status_requests"] == 3


async def test_long_poll_times_out_with_a_pending_answer(server_factory: ServerFactory) -> None:
    server = server_factory(long_poll_max_s=0.05)  # caps the 30 s asked for below
    job = await server.start(duration_s=5)
    response = await asyncio.wait_for(
        server.http.get(f"/status/{job['job_id']}", params={"wait": 30}), timeout=10
    )
    assert response.json()["result"] == "pending"
    assert response.headers["Retry-After"] == "5"
    assert response.headers["X-Long-Poll-Max"] == "0.05"
    assert server.state.store.waited_jobs == 0


async def test_long_poll_on_a_finished_job_answers_at_once(server: Server) -> None:
    job = await server.start(duration_s=1)
    server.advance(1)
    response = await asyncio.wait_for(
        server.http.get(f"/status/{job['job_id']}", params={"wait": 30}), timeout=5
    )
    assert response.json()["result"] in {"completed", "error"}
    assert server.state.store.waited_jobs == 0


async def test_wait_zero_is_an_ordinary_poll(server: Server) -> None:
    job = await server.start()
    response = await asyncio.wait_for(
        server.http.get(f"/status/{job['job_id']}", params={"wait": 0}), timeout=5
    )
    assert response.json()["result"] == "pending"


async def test_abandoned_long_poll_leaves_nothing_behind(server: Server) -> None:
    job = await server.start(duration_s=5)
    poll = asyncio.create_task(server.http.get(f"/status/{job['job_id']}", params={"wait": 25}))
    await server.until_held(1)
    poll.cancel()
    await asyncio.gather(poll, return_exceptions=True)
    assert server.state.store.held_requests == 0
    assert server.state.store.waited_jobs == 0


async def test_long_poll_disabled_answers_at_once(server_factory: ServerFactory) -> None:
    server = server_factory(long_poll_max_s=0)
    job = await server.start()
    response = await asyncio.wait_for(
        server.http.get(f"/status/{job['job_id']}", params={"wait": 30}), timeout=5
    )
    assert response.json()["result"] == "pending"
    assert "X-Long-Poll-Max" not in response.headers


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, labels in any order."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


async def test_metrics_count_requests_by_route_template_and_jobs_by_state(
    server: Server,
) -> None:
    fast = await server.start(duration_s=1, outcome="completed")
    await server.start(duration_s=1, outcome="error")
    await server.start(duration_s=100)
    await server.http.get(f"/status/{fast['job_id']}")
    await server.http.get("/status/nope")
    await server.http.get("/no/such/route")
    server.advance(1)

    text = (await server.http.get("/metrics")).text
    requests = "videosim_http_requests_total"
    assert metric(text, requests, method="POST", route="/start", code="200") == 3
    assert metric(text, requests, method="GET", route="/status/{job_id}", code="200") == 1
    assert metric(text, requests, method="GET", route="/status/{job_id}", code="404") == 1
    assert metric(text, requests, method="GET", route="<unmatched>", code="404") == 1
    assert metric(text, "videosim_jobs", state="pending") == 1
    assert metric(text, "videosim_jobs", state="completed") == 1
    assert metric(text, "videosim_jobs", state="error") == 1
    assert metric(text, "videosim_long_polls_held") == 0


async def test_metrics_count_every_answer_of_the_status_route_by_code(
    server_factory: ServerFactory,
) -> None:
    """GET /status is answered at the edge, ahead of FastAPI's routing: its refusals are
    counted under its route template all the same."""
    server = server_factory(api_key="k")
    keyed = {"X-Api-Key": "k"}
    job = (await server.http.post("/start", headers=keyed)).json()
    url = f"/status/{job['job_id']}"
    assert (await server.http.get(url)).status_code == 401
    assert (await server.http.get(url, params={"wait": "x"}, headers=keyed)).status_code == 422
    assert (await server.http.head(url, headers=keyed)).status_code == 200
    text = (await server.http.get("/metrics", headers=keyed)).text
    requests = "videosim_http_requests_total"
    assert metric(text, requests, method="GET", route="/status/{job_id}", code="401") == 1
    assert metric(text, requests, method="GET", route="/status/{job_id}", code="422") == 1
    assert metric(text, requests, method="HEAD", route="/status/{job_id}", code="200") == 1


async def test_metrics_show_held_long_polls(server: Server) -> None:
    job = await server.start(duration_s=5)
    poll = asyncio.create_task(server.http.get(f"/status/{job['job_id']}", params={"wait": 25}))
    await server.until_held(1)
    text = (await server.http.get("/metrics")).text
    assert metric(text, "videosim_long_polls_held") == 1
    server.advance(5)
    await asyncio.wait_for(poll, timeout=10)


async def test_each_app_has_its_own_registry(server_factory: ServerFactory) -> None:
    busy, idle = server_factory(), server_factory()
    await busy.start()
    text = (await idle.http.get("/metrics")).text
    assert 'route="/start"' not in text
    assert metric(text, "videosim_jobs", state="pending") == 0
