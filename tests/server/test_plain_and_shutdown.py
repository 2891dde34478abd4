"""--plain answers POST /start as the original simulation did, and a SIGTERM is quiet."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.live_server import LiveServer
from tests.support.long_polls import HeldLongPolls

ORIGINAL_START_ANSWER = re.compile(
    rb'\{"job_id":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"\}'
)


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"", {}),
        (b"hello", {"Content-Type": "text/plain"}),
        (b'{"duration_s": ', {"Content-Type": "application/json"}),
        (b'{"duration_s": 99999, "outcome": "error"}', {"Content-Type": "application/json"}),
        (b"\xff\xfe", {"Content-Type": "application/json"}),
        (b'{"colour": "blue"}', {"Content-Type": "application/json", "Idempotency-Key": "k"}),
    ],
    ids=["no-body", "text", "broken-json", "extension-fields", "not-utf8", "idempotency-key"],
)
def test_plain_start_ignores_any_body_and_answers_the_id_alone(
    plain: LiveServer, content: bytes, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=plain.url, timeout=20) as http:
        answers = [http.post("/start", content=content, headers=headers) for _ in range(2)]
        for answer in answers:
            assert answer.status_code == 200
            assert ORIGINAL_START_ANSWER.fullmatch(answer.content), answer.content
            assert answer.headers["content-type"] == "application/json"
            assert "Idempotent-Replayed" not in answer.headers
        job_ids = [answer.json()["job_id"] for answer in answers]
        assert job_ids[0] != job_ids[1]  # no extension applies: not even idempotency
        record = http.get(f"/jobs/{job_ids[0]}").json()
        assert record["duration_s"] == 0.5  # the delay, whatever the body said


def test_plain_status_takes_no_query_and_no_head(plain: LiveServer) -> None:
    """As the original: a query parameter is ignored (wait=abc was a 422), HEAD is 405."""
    with httpx.Client(base_url=plain.url, timeout=20) as http:
        job_id = http.post("/start").json()["job_id"]
        answer = http.get(f"/status/{job_id}", params={"wait": "abc"})
        assert answer.status_code == 200
        assert answer.json() == {"job_id": job_id, "result": "pending"}
        head = http.head(f"/status/{job_id}")
        assert head.status_code == 405 and head.headers["Allow"] == "GET"
        schema = http.get("/openapi.json").json()["paths"]["/status/{job_id}"]["get"]
        assert [parameter["name"] for parameter in schema["parameters"]] == ["job_id"]


@pytest.fixture(scope="module")
def plain() -> LiveServer:  # type: ignore[misc]
    with LiveServer(args=["--plain", "--delay", "0.5"]) as server:
        yield server


def test_sigterm_with_held_long_polls_is_quiet(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """Held long-polls used to hold the stop for 2 s, log an ERROR and drop the clients."""
    server = live_server_factory("--log-level", "info")
    job_id = httpx.post(f"{server.url}/start", json={"duration_s": 60}).json()["job_id"]
    polls = HeldLongPolls(server.url, job_id, 3)
    _stop_once_metrics_show(server, "videosim_long_polls_held 3.0")
    answers = polls.join()
    assert len(answers) == 3
    for answer in answers:
        assert isinstance(answer, httpx.Response), answer
        assert answer.json()["result"] == "pending"
    log = server.stderr_text()
    assert "ERROR" not in log and "Traceback" not in log, log
    assert "Application shutdown complete" in log


def test_sigterm_while_request_bodies_arrive_is_quiet_and_prompt(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """Half-sent bodies used to hold the stop for 2 s, then get a 500 each and log three
    CancelledError tracebacks. Now each is answered 503 + Retry-After at once."""
    server = live_server_factory("--log-level", "info")
    routes = [b"POST /start", b"POST /status/batch", b"PUT /admin/faults"]
    sockets = []
    for route in routes:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(
            route + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"jo'
        )
        sockets.append(sock)
    _stop_once_metrics_show(server, "videosim_request_bodies_arriving 3.0")
    for sock in sockets:
        with sock:
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert received.startswith(b"HTTP/1.1 503 "), received
        assert b"retry-after: 1" in received.lower()
        assert received.endswith(b'{"detail":"Server is stopping; retry shortly"}')
    log = server.stderr_text()
    assert "ERROR" not in log and "Traceback" not in log, log
    assert "Application shutdown complete" in log


def _stop_once_metrics_show(server: LiveServer, line: str) -> None:
    """Wait until /metrics shows ``line``, then SIGTERM the server: it must be gone soon."""
    deadline = time.monotonic() + 10
    while line not in httpx.get(f"{server.url}/metrics").text:
        assert time.monotonic() < deadline, f"never saw {line!r}"
        time.sleep(0.05)
    assert server.process is not None
    stopped_at = time.monotonic()
    server.process.terminate()
    server.process.wait(timeout=10)
    # A generous ceiling (a busy machine may take seconds to exit); what shows the old
    # behaviour is the log and the answers, checked by the callers.
    assert time.monotonic() - stopped_at < 10
