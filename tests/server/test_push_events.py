"""GET /events and subscriptions against a real server over HTTP: snapshot and live
final states, Last-Event-ID replay (also across a restart of a durable server and across
two servers of one Redis), a slow reader, X-Client-Id groups, heartbeats and a quiet stop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
import redis

from server.push.events import JobSet
from tests.server.conftest import RedisServer, Server, ServerFactory
from tests.support.live_server import LiveServer
from tests.support.sse import Event, finals, open_stream

StartServer = Callable[..., LiveServer]
ServerFor = Callable[[str], LiveServer]
OpenServer = Callable[..., Awaitable[Server]]
# Every module server: batch status and subscriptions up to 5 ids, quick heartbeats.
MODULE_FLAGS = ["--max-batch-status", "5", "--events-heartbeat", "0.2"]


@pytest.fixture(scope="module")
def server_for(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFor]:
    """One server per store for the whole module (started when first asked for): each
    test makes jobs and subscriptions of its own, so they share servers safely."""
    servers: dict[str, LiveServer] = {}

    def server(store: str) -> LiveServer:
        if store not in servers:
            url = {
                "memory": "memory",
                "sqlite": f"sqlite:///{tmp_path_factory.mktemp('events')}/jobs.db",
                "redis": redis_server.url,
            }[store]
            servers[store] = LiveServer(args=["--store", url, *MODULE_FLAGS]).start()
        return servers[store]

    yield server
    for live in servers.values():
        live.stop()


STORES = ["memory", "sqlite", "redis"]


def _start_many(http: httpx.Client, durations: list[float], **headers: str) -> list[str]:
    jobs = [{"duration_s": duration} for duration in durations]
    answer = http.post("/start/batch", json={"jobs": jobs}, headers=headers)
    assert answer.status_code == 200, answer.text
    return [job["job_id"] for job in answer.json()["jobs"]]


def _states(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.json["job_id"], e.json["result"]) for e in events if e.event == "state"]


def test_snapshot_then_live_final_states(server_for: ServerFor) -> None:
    server = server_for("memory")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        done, soon, later = _start_many(http, [0.05, 0.3, 0.5])
        time.sleep(0.1)
        with open_stream(http, f"/events?ids={done},{soon},{later},nope") as reader:
            assert reader.response.status_code == 200
            assert reader.response.headers["content-type"].startswith("text/event-stream")
            events = reader.until(lambda seen: len(finals(seen)) == 3)
    snapshot = events[:4]
    assert [event.event for event in snapshot] == ["state", "state", "state", "unknown"]
    assert _states(snapshot)[0][0] == done and _states(snapshot)[0][1] != "pending"
    assert {job for job, result in _states(snapshot)[1:]} == {soon, later}
    assert all(result == "pending" for _, result in _states(snapshot)[1:])
    assert snapshot[3].json == {"job_id": "nope"}
    live = events[4:]
    assert [job for job, _ in _states(live)] == [soon, later]  # in finish order
    for event in live:
        assert event.id is not None
        data = event.json
        assert data["finished_at"] == pytest.approx(data["created_at"] + 0.3, abs=0.25)


@pytest.mark.parametrize("store", STORES)
def test_last_event_id_replays_what_was_missed_and_no_snapshot(
    server_for: ServerFor, store: str
) -> None:
    server = server_for(store)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        job_ids = _start_many(http, [0.1, 0.2, 0.3, 0.4])
        subscription = http.post("/subscriptions", json={"job_ids": job_ids}).json()
        path = f"/events?subscription={subscription['subscription_id']}"
        with open_stream(http, path) as reader:
            seen = reader.until(lambda events: len(finals(events)) == 1)
        last_id = seen[-1].id
        assert last_id is not None
        time.sleep(0.4)  # the other three finish while nobody listens
        missed = set(job_ids[1:])
        with open_stream(http, path, headers={"Last-Event-ID": last_id}) as reader:
            replayed = reader.until(lambda events: missed <= set(finals(events)))
    assert all(result != "pending" for _, result in _states(replayed))  # no snapshot again
    got = {job for job, _ in _states(replayed)}
    if store == "redis":
        assert missed <= got  # a shared store may repeat a final state, never lose one
    else:
        assert [job for job, _ in _states(replayed)] == job_ids[1:]


def test_replay_works_after_a_durable_server_restarts(
    live_server_factory: StartServer, tmp_path: object
) -> None:
    store = f"sqlite:///{tmp_path}/jobs.db"
    server = live_server_factory("--store", store)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        job_ids = _start_many(http, [0.1, 0.3, 0.4])
        subscription = http.post("/subscriptions", json={"job_ids": job_ids}).json()
        path = f"/events?subscription={subscription['subscription_id']}"
        with open_stream(http, path) as reader:
            last_id = reader.until(lambda events: len(finals(events)) == 1)[-1].id
    server.restart()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        time.sleep(0.2)
        with open_stream(http, path, headers={"Last-Event-ID": str(last_id)}) as reader:
            replayed = reader.until(lambda events: len(finals(events)) >= 2)
    assert [job for job, _ in _states(replayed)] == job_ids[1:]


def test_a_job_started_after_the_stream_opened_reaches_an_all_stream(
    server_for: ServerFor,
) -> None:
    server = server_for("memory")
    mine = {"X-Client-Id": "team-a.1"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        (before,) = _start_many(http, [0.05], **mine)
        _start_many(http, [0.05], **{"X-Client-Id": "someone-else"})
        time.sleep(0.1)
        with open_stream(http, "/events?all=true", headers=mine) as reader:
            reader.until(lambda events: len(events) >= 1)
            (after,) = _start_many(http, [0.2], **mine)
            events = reader.until(lambda seen: after in finals(seen))
    assert set(finals(events)) == {before, after}


def test_an_all_stream_on_one_server_sees_jobs_started_on_another_of_the_same_redis(
    server_for: ServerFor, live_server_factory: StartServer, redis_server: RedisServer
) -> None:
    first = server_for("redis")
    second = live_server_factory("--store", redis_server.url)
    mine = {"X-Client-Id": "across-servers"}
    with (
        httpx.Client(timeout=10) as http,
        open_stream(http, f"{first.url}/events?all=true", headers=mine) as reader,
    ):
        assert reader.response.status_code == 200
        job_ids = _start_many(httpx.Client(base_url=second.url), [0.1, 0.3], **mine)
        events = reader.until(lambda seen: set(job_ids) <= set(finals(seen)))
    assert set(finals(events)) == set(job_ids)


@pytest.mark.parametrize("store", STORES)
def test_subscriptions_live_in_the_store(server_for: ServerFor, store: str) -> None:
    server = server_for(store)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        first, second, third = _start_many(http, [30, 30, 0.2])
        created = http.post("/subscriptions", json={"job_ids": [first, "nope"]})
        assert created.status_code == 201
        assert created.json()["unknown"] == ["nope"]
        sid = created.json()["subscription_id"]
        with open_stream(http, f"/events?subscription={sid}") as reader:
            snapshot = reader.until(lambda events: len(events) == 1)
            added = http.post(f"/subscriptions/{sid}/jobs", json={"job_ids": [second, third, "x"]})
            assert added.status_code == 200 and added.json() == {"unknown": ["x"]}
            events = reader.until(lambda seen: third in finals(seen))
            assert http.delete(f"/subscriptions/{sid}").status_code == 204
            closing = reader.until(lambda _: reader.ended)
        too_many = http.post("/subscriptions", json={"job_ids": ["a", "b", "c", "d", "e", "f"]})
        gone = [
            http.post(f"/subscriptions/{sid}/jobs", json={"job_ids": [first]}),
            http.delete(f"/subscriptions/{sid}"),
            http.get(f"/events?subscription={sid}"),
        ]
    assert _states(snapshot) == [(first, "pending")]
    assert first not in finals(events) and second not in finals(events)
    if store != "redis":  # another process would learn of it by re-reading
        assert closing[-1].event == "error" and closing[-1].json == {"detail": "subscription gone"}
    assert too_many.status_code == 422
    for answer in gone:
        assert answer.status_code == 404
        assert answer.json() == {"detail": "Subscription not found"}


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("", {}, "name the jobs with exactly one of ids, subscription or all=true, not none"),
        ("?ids=a&all=true", {"X-Client-Id": "c"}, "not ids and all"),
        ("?all=true", {}, "all=true needs the X-Client-Id header"),
        ("?ids=" + ",".join(str(n) for n in range(101)), {}, "at most 100 job ids, not 101"),
        ("?ids=,", {}, "give at least one job id"),
        ("?ids=a", {"Last-Event-ID": "yesterday"}, "not an event id this server sent"),
        ("?all=true", {"X-Client-Id": "no spaces"}, "String should match pattern"),
    ],
)
def test_bad_queries_are_422_with_a_message(
    server_for: ServerFor, query: str, headers: dict[str, str], message: str
) -> None:
    answer = httpx.get(f"{server_for('memory').url}/events{query}", headers=headers, timeout=10)
    assert answer.status_code == 422
    assert message in answer.json()["detail"][0]["msg"], answer.json()


def test_heartbeats_keep_an_idle_stream_alive(server_for: ServerFor) -> None:
    server = server_for("memory")
    with (
        httpx.Client(base_url=server.url, timeout=10) as http,
        open_stream(http, "/events?ids=special-pending-job") as reader,
    ):
        reader.next()
        started = time.monotonic()
        while reader.comments < 3:
            assert time.monotonic() - started < 5, "no heartbeats"
            reader.lines.__next__()  # comments only: no event ever comes
            reader.comments += 1
    assert time.monotonic() - started < 3


def test_a_slow_reader_gets_an_error_event_and_the_buffer_stays_bounded(
    live_server_factory: StartServer,
) -> None:
    buffer = 20
    server = live_server_factory("--events-buffer", str(buffer), "--max-batch", "1500")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_ids = _start_many(http, [0.4] * 1500)
        sid = http.post("/subscriptions", json={"job_ids": job_ids}).json()["subscription_id"]
    # A reader with a tiny receive window that stops reading: the snapshot fills the
    # pipe, and the final states pile up on the server until the buffer is full.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        request = f"GET /events?subscription={sid} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        sock.sendall(request.encode() + b"\r\n")
        # Not reading while every job ends (their record says so, and asking for it is
        # no status request); the server then drops the reader. A generous ceiling: on
        # a busy machine all that takes longer than the jobs' 0.4 s.
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while http.get(f"/jobs/{job_ids[-1]}").json()["result"] == "pending":
                assert time.monotonic() < deadline, "the jobs never ended"
                time.sleep(0.05)
        sock.settimeout(60)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    text = received.decode()
    finals_sent = text.count('"result":"completed"') + text.count('"result":"error"')
    assert text.count('"result":"pending"') == 1500  # the snapshot was delivered whole
    assert finals_sent <= buffer
    assert "event: error" in text and "slow reader: more than 20 events undelivered" in text
    assert text.rsplit("event: ", 1)[1].startswith("error")  # the last event, then the end


def test_sigterm_ends_open_streams_quietly_with_an_error_event(
    live_server_factory: StartServer,
) -> None:
    server = live_server_factory("--log-level", "info")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        (job_id,) = _start_many(http, [60])
        with open_stream(http, f"/events?ids={job_id}") as reader:
            reader.next()
            assert server.process is not None
            stopped_at = time.monotonic()
            server.process.terminate()
            events = reader.until(lambda _: reader.ended)
            server.process.wait(timeout=10)
    assert time.monotonic() - stopped_at < 1.5
    assert events[-1].event == "error" and events[-1].json == {"detail": "server stopping"}
    log = server.stderr_text()
    assert "ERROR" not in log and "Traceback" not in log, log


async def test_a_subscription_without_a_stream_expires_after_the_retention_window(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(retention_s=60)
    job_id = (await server.start(duration_s=600))["job_id"]
    sid = (await server.http.post("/subscriptions", json={"job_ids": [job_id]})).json()[
        "subscription_id"
    ]
    server.advance(59)
    assert (
        await server.http.post(f"/subscriptions/{sid}/jobs", json={"job_ids": [job_id]})
    ).is_success
    server.advance(2)
    gone = await server.http.post(f"/subscriptions/{sid}/jobs", json={"job_ids": [job_id]})
    assert gone.status_code == 404


async def test_redis_keeps_a_subscription_for_the_retention_window(
    open_server: OpenServer, redis_server: RedisServer, redis_url: str
) -> None:
    server = await open_server(store=redis_url, retention_s=120)
    job_id = (await server.start(duration_s=600))["job_id"]
    sid = (await server.http.post("/subscriptions", json={"job_ids": [job_id]})).json()[
        "subscription_id"
    ]
    ttl_ms = redis.Redis(port=redis_server.port).pttl(f"videosim:sub:{sid}")
    assert 110_000 < ttl_ms <= 120_000


async def test_a_reader_gone_before_the_first_event_leaves_no_stream_behind(
    server_factory: ServerFactory,
) -> None:
    """The stream's generator never ran, so only the response can let go of the jobs."""
    server = server_factory()
    job_id = (await server.start(duration_s=600))["job_id"]
    streams = server.state.streams
    response = await streams.open(JobSet("ids", ids=(job_id,)), None)
    assert streams.open_streams == 1

    async def receive() -> dict[str, str]:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        raise OSError("the client is gone")

    with pytest.raises(OSError):
        await response({"type": "http", "method": "GET"}, receive, send)
    assert streams.open_streams == 0


def test_empty_ids_and_subscription_count_as_not_given(server_for: ServerFor) -> None:
    """The schema allows ``ids=&subscription=&all=true``; schemathesis found it refused."""
    server = server_for("memory")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        job_id = _start_many(http, [0.05], **{"X-Client-Id": "0"})[0]
        query = {"ids": "", "subscription": "", "all": "true"}
        with http.stream("GET", "/events", params=query, headers={"X-Client-Id": "0"}) as answer:
            assert answer.status_code == 200
            for line in answer.iter_lines():
                if line.startswith("data:") and job_id in line:
                    break
