"""Webhooks against a real server over HTTP, delivered to a small receiver in the test:
signed deliveries, retries with backoff recorded per attempt, and the callback host rule."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from server.jobs.clock import SystemClock
from server.models import CallbackAttempt
from tests.server.conftest import Server, ServerFactory
from tests.support.live_server import LiveServer, free_port

OpenServer = Callable[..., Awaitable[Server]]


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each delivery with the next of ``codes`` (the last one ever after)."""

    codes: list[int]
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"only {len(self.received)} deliveries"
            time.sleep(0.02)
        return self.received


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[list[int]], Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(codes: list[int]) -> Receiver:
        receiver = Receiver(codes)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(Received(time.time(), dict(self.headers), body))
                code = receiver.codes[min(len(receiver.received), len(receiver.codes)) - 1]
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        receiver.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """Loopback callbacks, plus one allowed host: every test here shares it."""
    args = ["--callback-hosts", "hooks.example.com,hooks.other.com:8443"]
    with LiveServer(args=[*args, "--callback-failure-details"]) as live:
        yield live


def _start(server: LiveServer, **body: object) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/start", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    started: dict[str, Any] = answer.json()
    return started


def _callbacks(server: LiveServer, job_id: str, count: int) -> list[dict[str, Any]]:
    """The job's recorded attempts, once there are ``count`` (recording follows the POST)."""
    deadline = time.monotonic() + 5
    while True:
        callbacks: list[dict[str, Any]] = httpx.get(f"{server.url}/jobs/{job_id}").json()[
            "callbacks"
        ]
        if len(callbacks) >= count or time.monotonic() > deadline:
            return callbacks
        time.sleep(0.02)


def test_a_final_state_is_delivered_signed(
    server: LiveServer, receiver_factory: Callable[[list[int]], Receiver]
) -> None:
    receiver = receiver_factory([200])
    job = _start(
        server, duration_s=0.1, outcome="error", callback_url=receiver.url, callback_secret="s3"
    )
    (delivery,) = receiver.wait_for(1)
    document = json.loads(delivery.body)
    assert document == {
        "job_id": job["job_id"],
        "result": "error",
        "created_at": job["created_at"],
        "finished_at": pytest.approx(job["created_at"] + 0.1),
    }
    # Any Standard Webhooks receiver accepts it: the library's own verify.
    assert Webhook(b"s3").verify(delivery.body, dict(delivery.headers)) == document
    assert delivery.headers["webhook-id"] == job["job_id"]
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 5
    with pytest.raises(WebhookVerificationError):
        Webhook(b"not-s3").verify(delivery.body, dict(delivery.headers))
    assert delivery.at - document["finished_at"] < 1  # delivered as the job ended
    (attempt,) = _callbacks(server, job["job_id"], 1)
    assert attempt["status_code"] == 200 and attempt["error"] is None


def test_without_a_secret_there_is_no_signature(
    server: LiveServer, receiver_factory: Callable[[list[int]], Receiver]
) -> None:
    receiver = receiver_factory([204])
    _start(server, duration_s=0.05, callback_url=receiver.url)
    (delivery,) = receiver.wait_for(1)
    assert "webhook-signature" not in delivery.headers
    assert "webhook-timestamp" in delivery.headers and "webhook-id" in delivery.headers


def test_a_failing_receiver_is_retried_with_backoff_and_each_attempt_recorded(
    server: LiveServer, receiver_factory: Callable[[list[int]], Receiver]
) -> None:
    receiver = receiver_factory([500, 503, 200])
    batch = httpx.post(
        f"{server.url}/start/batch",
        json={"jobs": [{"duration_s": 0.05, "callback_url": receiver.url, "callback_secret": "k"}]},
        timeout=10,
    ).json()
    job_id = batch["jobs"][0]["job_id"]
    deliveries = receiver.wait_for(3)
    attempts = _callbacks(server, job_id, 3)
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert [a["error"] for a in attempts] == ["HTTP 500", "HTTP 503", None]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] == pytest.approx(0.5, abs=0.3) and gaps[1] == pytest.approx(1.0, abs=0.3)
    assert len({d.body for d in deliveries}) == 1  # the same final state each time
    time.sleep(0.3)
    assert len(receiver.received) == 3  # a 2xx ends it


async def test_attempts_stop_at_the_limit_and_a_refused_connection_is_recorded(
    open_server: OpenServer,
) -> None:
    server = await open_server(SystemClock(), callback_attempts=2, callback_failure_details=True)
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    job_id = (await server.start(duration_s=0.05, callback_url=nobody))["job_id"]
    deadline = time.monotonic() + 5
    while len(attempts := (await server.http.get(f"/jobs/{job_id}")).json()["callbacks"]) < 2:
        assert time.monotonic() < deadline, attempts
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)  # a third would have come by now
    attempts = (await server.http.get(f"/jobs/{job_id}")).json()["callbacks"]
    assert len(attempts) == 2
    for attempt in attempts:
        assert attempt["status_code"] is None and attempt["error"].startswith("ConnectError")


async def test_every_store_keeps_the_attempts_with_the_job(
    open_server: OpenServer, store_url: str
) -> None:
    server = await open_server(store=store_url)
    job_id = (await server.start(duration_s=60))["job_id"]
    attempts = [
        CallbackAttempt(at=1.5, status_code=500, error="HTTP 500"),
        CallbackAttempt(at=2.5, status_code=None, error="ConnectError: refused"),
    ]
    for attempt in attempts:
        await server.state.store.record_callback_attempt(job_id, attempt)
    record = (await server.http.get(f"/jobs/{job_id}")).json()
    assert record["callbacks"] == [attempt.model_dump() for attempt in attempts]
    assert (await server.http.get("/jobs/special-pending-job")).json()["callbacks"] == []


def test_a_callback_to_another_host_is_refused_unless_allowed(server: LiveServer) -> None:
    refused = [
        "http://example.com/hook",
        "https://hooks.other.com/done",  # allowed on port 8443 only
        "https://hooks.other.com:8444/done",
    ]
    answers = [
        httpx.post(f"{server.url}/start", json={"callback_url": url}, timeout=10) for url in refused
    ]
    before = httpx.get(f"{server.url}/jobs").json()["total"]
    batch = httpx.post(
        f"{server.url}/start/batch",
        json={"jobs": [{}, {"callback_url": "https://10.0.0.1/hook"}]},
        timeout=10,
    )
    for answer in answers:
        assert answer.status_code == 422
        (problem,) = answer.json()["detail"]
        assert problem["msg"] == (
            "callback_url: callback host not allowed: loopback (127.0.0.0/8, ::1, localhost) "
            "and hooks.example.com,hooks.other.com:8443 only"
        )
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"] == ["body", "jobs", 1, "callback_url"]
    assert httpx.get(f"{server.url}/jobs").json()["total"] == before  # nothing was created
    allowed_urls = [
        "https://hooks.example.com:8443/done",
        "https://hooks.other.com:8443/done",
        "http://[::1]:9/x",
        "http://127.9.9.9",
        "http://127.0.0.1:65535/a?b=c#d",
    ]
    for url in allowed_urls:
        allowed = httpx.post(f"{server.url}/start", json={"duration_s": 60, "callback_url": url})
        assert allowed.status_code == 200, (url, allowed.text)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.999.1.1/x",
        "http://127.0.0.256:1/",
        "http://127.000.000.001:19501/z",
        "http://127.0.0.1:1/a\u0000b",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:0/",
        "http://127.0.0.1/a b",
        "http://localhost@example.com/",
        "ftp://127.0.0.1/",
        "http://1.2.3/",
    ],
)
def test_a_malformed_callback_url_is_refused_naming_the_field(server: LiveServer, url: str) -> None:
    """These were accepted with 200, then never attempted: no record ever said why."""
    answer = httpx.post(f"{server.url}/start", json={"callback_url": url}, timeout=10)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["msg"].startswith("callback_url: not an http(s) URL this server can post to")


async def test_a_failed_delivery_hides_what_the_receiver_answered_unless_allowed(
    open_server: OpenServer,
) -> None:
    """Codes and connection errors per port would map what listens on the server's host."""
    server = await open_server(SystemClock(), callback_attempts=1)
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    job_id = (await server.start(duration_s=0.05, callback_url=nobody))["job_id"]
    deadline = time.monotonic() + 5
    while not (attempts := (await server.http.get(f"/jobs/{job_id}")).json()["callbacks"]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert attempts[0]["status_code"] is None
    assert attempts[0]["error"] == (
        "not delivered (the server shows why with --callback-failure-details)"
    )


async def test_the_default_message_names_the_flags_and_any_host_can_be_allowed(
    server_factory: ServerFactory,
) -> None:
    loopback_only = server_factory()
    refused = await loopback_only.http.post("/start", json={"callback_url": "http://x.test/"})
    assert refused.json()["detail"][0]["msg"].endswith(
        "only; start the server with --callback-hosts or --allow-any-callback-host for more"
    )
    anything = server_factory(allow_any_callback_host=True)
    allowed = await anything.http.post("/start", json={"callback_url": "http://x.test/"})
    assert allowed.status_code == 200


def test_a_durable_server_delivers_after_a_crash_what_it_still_owed(
    live_server_factory: Callable[..., LiveServer],
    receiver_factory: Callable[[list[int]], Receiver],
    tmp_path: Path,
) -> None:
    server = live_server_factory("--store", f"sqlite:///{tmp_path / 'jobs.db'}")
    receiver = receiver_factory([200])
    delivered = _start(server, duration_s=0.05, callback_url=receiver.url)["job_id"]
    receiver.wait_for(1)
    _callbacks(server, delivered, 1)
    owed = _start(server, duration_s=0.8, callback_url=receiver.url, callback_secret="k")
    server.kill()  # before the second job ends
    server.start()
    deliveries = receiver.wait_for(2)
    time.sleep(0.3)
    assert [json.loads(d.body)["job_id"] for d in receiver.received] == [delivered, owed["job_id"]]
    assert "webhook-signature" in deliveries[1].headers
    assert len(_callbacks(server, owed["job_id"], 1)) == 1


def test_with_redis_another_worker_delivers_what_a_killed_one_owed(
    live_server_factory: Callable[..., LiveServer],
    receiver_factory: Callable[[list[int]], Receiver],
    redis_url: str,
) -> None:
    takeover = ("--store", redis_url, "--callback-takeover", "0.5")
    doomed, survivor = live_server_factory(*takeover), live_server_factory(*takeover)
    receiver = receiver_factory([200])
    owed = _start(doomed, duration_s=0.8, callback_url=receiver.url, callback_secret="k")
    doomed.kill()  # before the job ends: nothing delivered, nobody told
    delivery = receiver.wait_for(1)[0]
    assert json.loads(delivery.body)["job_id"] == owed["job_id"]
    assert "webhook-signature" in delivery.headers
    assert len(_callbacks(survivor, owed["job_id"], 1)) == 1  # recorded by the survivor
    time.sleep(1.0)  # its lease ended with the delivery: nobody delivers it again
    assert len(receiver.received) == 1


def test_with_redis_a_live_worker_keeps_its_retries(
    live_server_factory: Callable[..., LiveServer],
    receiver_factory: Callable[[list[int]], Receiver],
    redis_url: str,
) -> None:
    """Retries 0.5 and 1 s apart, each longer than the takeover delay would allow without
    the lease being renewed: the other worker never takes the delivery over."""
    takeover = ("--store", redis_url, "--callback-takeover", "0.3", "--callback-failure-details")
    owner, _other = live_server_factory(*takeover), live_server_factory(*takeover)
    receiver = receiver_factory([500, 500, 200])
    job_id = _start(owner, duration_s=0.1, callback_url=receiver.url)["job_id"]
    receiver.wait_for(3)
    time.sleep(1.0)
    assert len(receiver.received) == 3
    assert [a["status_code"] for a in _callbacks(owner, job_id, 3)] == [500, 500, 200]


def test_the_retry_schedule_doubles_with_jitter_and_a_cap() -> None:
    """Tested without sleeping: the waits the delivery loop takes between attempts."""
    import random

    from server.push.webhooks import RetrySchedule

    schedule = RetrySchedule(first_s=0.5, max_s=30.0, jitter=0.2)
    rng = random.Random(3)
    waits = [schedule.wait_s(failures, rng) for failures in range(1, 11)]
    bases = [min(30.0, 0.5 * 2 ** (n - 1)) for n in range(1, 11)]
    for wait, base in zip(waits, bases, strict=True):
        assert 0.8 * base <= wait <= 1.2 * base
    assert waits != bases  # jittered
    assert max(waits) <= 36.0  # capped
