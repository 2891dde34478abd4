"""GET /events and subscriptions against a real server over HTTP: snapshot and live
final states, Last-Event-ID replay (also across a restart of a durable server and across
two servers of one Redis), a slow reader, X-Client-Id groups, heartbeats and a quiet stop."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.live_server import LiveServer
from tests.support.sse import Event, finals, open_stream

StartServer = Callable[..., LiveServer]


def _start_many(http: httpx.Client, durations: list[float], **headers: str) -> list[str]:
    jobs = [{"duration_s": duration} for duration in durations]
    answer = http.post("/start/batch", json={"jobs": jobs}, headers=headers)
    assert answer.status_code == 200, answer.text
    return [job["job_id"] for job in answer.json()["jobs"]]


def _states(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.json["job_id"], e.json["result"]) for e in events if e.event == "state"]


def test_snapshot_then_live_final_states(live_server_factory: StartServer) -> None:
    server = live_server_factory()
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


def test_last_event_id_replays_what_was_missed_and_no_snapshot(
    live_server_factory: StartServer, store_url: str
) -> None:
    server = live_server_factory("--store", store_url)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        job_ids = _start_many(http, [0.2, 0.4, 0.6, 0.8])
        subscription = http.post("/subscriptions", json={"job_ids": job_ids}).json()
        path = f"/events?subscription={subscription['subscription_id']}"
        with open_stream(http, path) as reader:
            seen = reader.until(lambda events: len(finals(events)) == 1)
        last_id = seen[-1].id
        assert last_id is not None
        time.sleep(0.9)  # the other three finish while nobody listens
        missed = set(job_ids[1:])
        with open_stream(http, path, headers={"Last-Event-ID": last_id}) as reader:
            replayed = reader.until(lambda events: missed <= set(finals(events)))
    assert all(result != "pending" for _, result in _states(replayed))  # no snapshot again
    got = {job for job, _ in _states(replayed)}
    if store_url.startswith("redis"):
        assert missed <= got  # a shared store may repeat a final state, never lose one
    else:
        assert [job for job, _ in _states(replayed)] == job_ids[1:]


def test_replay_works_after_a_durable_server_restarts(
    live_server_factory: StartServer, tmp_path: object
) -> None:
    store = f"sqlite:///{tmp_path}/jobs.db"
    server = live_server_factory("--store", store)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        job_ids = _start_many(http, [0.1, 0.5, 0.6])
        subscription = http.post("/subscriptions", json={"job_ids": job_ids}).json()
        path = f"/events?subscription={subscription['subscription_id']}"
        with open_stream(http, path) as reader:
            last_id = reader.until(lambda events: len(finals(events)) == 1)[-1].id
    server.restart()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        time.sleep(0.5)
        with open_stream(http, path, headers={"Last-Event-ID": str(last_id)}) as reader:
            replayed = reader.until(lambda events: len(finals(events)) >= 2)
    assert [job for job, _ in _states(replayed)] == job_ids[1:]


def test_a_job_started_after_the_stream_opened_reaches_an_all_stream(
    live_server_factory: StartServer,
) -> None:
    server = live_server_factory()
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
    live_server_factory: StartServer, redis_url: str
) -> None:
    first = live_server_factory("--store", redis_url)
    second = live_server_factory("--store", redis_url)
    mine = {"X-Client-Id": "c1"}
    with (
        httpx.Client(timeout=10) as http,
        open_stream(http, f"{first.url}/events?all=true", headers=mine) as reader,
    ):
        assert reader.response.status_code == 200
        job_ids = _start_many(httpx.Client(base_url=second.url), [0.1, 0.3], **mine)
        events = reader.until(lambda seen: set(job_ids) <= set(finals(seen)))
    assert set(finals(events)) == set(job_ids)


def test_subscriptions_live_in_the_store(live_server_factory: StartServer, store_url: str) -> None:
    server = live_server_factory("--store", store_url, "--max-batch-status", "3")
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
        too_many = http.post("/subscriptions", json={"job_ids": ["a", "b", "c", "d"]})
        gone = [
            http.post(f"/subscriptions/{sid}/jobs", json={"job_ids": [first]}),
            http.delete(f"/subscriptions/{sid}"),
            http.get(f"/events?subscription={sid}"),
        ]
    assert _states(snapshot) == [(first, "pending")]
    assert first not in finals(events) and second not in finals(events)
    if not store_url.startswith("redis"):  # another process would learn of it by re-reading
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
    live_server: LiveServer, query: str, headers: dict[str, str], message: str
) -> None:
    answer = httpx.get(f"{live_server.url}/events{query}", headers=headers, timeout=10)
    assert answer.status_code == 422
    assert message in answer.json()["detail"][0]["msg"], answer.json()


def test_heartbeats_keep_an_idle_stream_alive(live_server_factory: StartServer) -> None:
    server = live_server_factory("--events-heartbeat", "0.1")
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
    assert time.monotonic() - started < 2


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
        time.sleep(1.2)  # every job ends meanwhile
        sock.settimeout(10)
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
