"""Every client error is a 4xx with a message naming the problem, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from server.http.edge import EdgeMiddleware
from tests.server.conftest import Server, ServerFactory


@pytest.mark.parametrize(
    ("content", "field", "kind"),
    [
        (b'{"duration_s": ', "body", "json_invalid"),
        (b"{'duration_s': 1}", "body", "json_invalid"),
        (b'{"duration_s": "soon"}', "duration_s", "float_type"),
        (b'{"duration_s": "5"}', "duration_s", "float_type"),
        (b'{"duration_s": true}', "duration_s", "float_type"),
        (b'{"duration_s": 0}', "duration_s", "greater_than_equal"),
        (b'{"duration_s": -2.5}', "duration_s", "greater_than_equal"),
        (b'{"duration_s": 5e-324}', "duration_s", "greater_than_equal"),
        (b"\xff\xfe{}", "body", "json_invalid"),
        (b'{"duration_s": 3601}', "duration_s", "less_than_equal"),
        (b'{"duration_s": NaN}', "duration_s", "finite_number"),
        (b'{"outcome": "maybe"}', "outcome", "literal_error"),
        (b'{"colour": "blue"}', "colour", "extra_forbidden"),
        (b"[1, 2]", "body", "model_attributes_type"),
    ],
    ids=[
        "truncated-json",
        "single-quotes",
        "wrong-type",
        "number-as-text",
        "true-is-not-1",
        "zero-duration",
        "negative-duration",
        "subnormal-duration",
        "not-utf8",
        "over-max-duration",
        "nan-duration",
        "bad-outcome",
        "unknown-field",
        "not-an-object",
    ],
)
async def test_bad_start_bodies_are_422_naming_the_field(
    server: Server, content: bytes, field: str, kind: str
) -> None:
    response = await server.http.post(
        "/start", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["type"] == kind
    assert error["msg"].startswith(f"{field}: ")
    assert await server.state.store.count() == 0


@pytest.mark.parametrize(
    ("content", "headers", "said"),
    [
        (b'{"duration_s": 1}', {}, "(got no Content-Type)"),
        (b"duration_s=3", {"Content-Type": "application/x-www-form-urlencoded"},
         "(got Content-Type application/x-www-form-urlencoded)"),
        (b"hello", {"Content-Type": "text/plain; charset=utf-8"}, "(got Content-Type text/plain)"),
    ],
    ids=["no-content-type", "form", "text"],
)  # fmt: skip
async def test_a_body_not_sent_as_json_says_how_to_send_it(
    server: Server, content: bytes, headers: dict[str, str], said: str
) -> None:
    response = await server.http.post("/start", content=content, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "body: a JSON object is expected, sent as Content-Type: application/json " + said
    )


async def test_not_an_object_and_unknown_fields_say_what_is_wrong(server: Server) -> None:
    json_body = {"Content-Type": "application/json"}
    array = await server.http.post("/start", content=b"[1, 2]", headers=json_body)
    assert array.json()["detail"][0]["msg"] == "body: a JSON object is expected (got an array)"
    typo = await server.http.post("/start", json={"duraton_s": 3})
    assert typo.json()["detail"][0]["msg"] == (
        "duraton_s: unknown field; check its spelling (unknown fields are refused, not ignored)"
    )


async def test_max_duration_is_a_setting(server_factory: ServerFactory) -> None:
    server = server_factory(max_duration_s=10)
    assert (await server.http.post("/start", json={"duration_s": 10})).status_code == 200
    response = await server.http.post("/start", json={"duration_s": 10.5})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "duration_s: Input should be less than or equal to 10"
    )


@pytest.mark.parametrize("wait", ["-1", "abc", "inf", "nan", ""])
async def test_bad_wait_is_422(server: Server, wait: str) -> None:
    job = await server.start()
    response = await server.http.get(f"/status/{job['job_id']}?wait={wait}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"].startswith("wait: ")


async def test_body_over_the_size_cap_is_413(server_factory: ServerFactory) -> None:
    server = server_factory(max_body_bytes=64)
    padded: dict[str, Any] = {"duration_s": 1, "outcome": "completed" + " " * 100}
    response = await server.http.post("/start", json=padded)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body larger than 64 bytes"}
    assert await server.state.store.count() == 0


async def test_streamed_body_over_the_size_cap_is_413(server_factory: ServerFactory) -> None:
    """No Content-Length to trust: the bytes actually received are counted."""
    server = server_factory(max_body_bytes=64)

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"duration_s": 1, '
        yield b'"outcome": "completed' + b" " * 100 + b'"}'

    response = await server.http.post(
        "/start", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413
    assert await server.state.store.count() == 0


async def test_body_at_the_size_cap_is_fine(server_factory: ServerFactory) -> None:
    server = server_factory(max_body_bytes=64)
    body = b'{"duration_s": 1}'.ljust(64)
    response = await server.http.post(
        "/start", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200


async def test_a_declared_body_over_the_cap_is_413_on_routes_that_read_none(
    server_factory: ServerFactory,
) -> None:
    """The edge answers from Content-Length alone, before the app: the plain start route
    reads no body, and made a job before its answer was swapped for the 413. GET /status
    reads none either. Both say 413 in JSON, and /metrics counts it by route."""
    plain = server_factory(max_body_bytes=64, plain=True)
    response = await plain.http.post("/start", content=b"x" * 100)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body larger than 64 bytes"}
    assert await plain.state.store.count() == 0

    server = server_factory(max_body_bytes=64)
    job = await server.start()
    response = await server.http.request("GET", f"/status/{job['job_id']}", content=b"x" * 100)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body larger than 64 bytes"}
    metrics = (await server.http.get("/metrics")).text
    assert 'code="413",method="GET",route="/status/{job_id}"' in metrics
    assert 'code="413",method="POST",route="/start"' in (await plain.http.get("/metrics")).text


async def test_a_path_can_take_larger_bodies_than_the_rest() -> None:
    """``larger_bodies`` lifts the cap for one path (a batch route), declared or streamed."""

    async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size, more = size + len(message.get("body", b"")), message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    async def no_status(scope: Scope, receive: Receive, send: Send, job_id: str) -> int:
        raise AssertionError("not a status request")

    edge = EdgeMiddleware(
        echo_length,
        max_body_bytes=64,
        count=lambda method, route, code: None,
        serve_status=no_status,
        larger_bodies={"/batch": 1000},
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=edge), base_url="http://test"
    ) as http:
        assert (await http.post("/batch", content=b"x" * 900)).text == "900"
        too_big = await http.post("/batch", content=b"x" * 1001)
        assert too_big.status_code == 413
        assert too_big.json() == {"detail": "Request body larger than 1000 bytes"}
        assert (await http.post("/other", content=b"x" * 65)).status_code == 413

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(9):
                yield b"x" * 100

        assert (await http.post("/batch", content=chunks())).text == "900"


async def test_unknown_route_is_404(server: Server) -> None:
    assert (await server.http.get("/nope")).status_code == 404
    assert (await server.http.delete("/start")).status_code == 405


async def test_the_shortest_duration_is_a_millisecond(server: Server) -> None:
    assert (await server.http.post("/start", json={"duration_s": 0.001})).status_code == 200
    assert (await server.http.post("/start", json={"duration_s": 0.0009})).status_code == 422


async def test_405_names_every_method_of_the_path(server: Server) -> None:
    response = await server.http.delete("/admin/faults")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, PUT"
    assert (await server.http.delete("/start")).headers["Allow"] == "POST"


async def test_true_is_not_a_number_for_faults_either(server: Server) -> None:
    for body in [{"rate_limit_rps": True}, {"retry_after_s": True}, {"latency_ms": "5"}]:
        response = await server.http.put("/admin/faults", json=body)
        assert response.status_code == 422, body
    assert (await server.http.put("/admin/faults", json={"retry_after_s": 2.0})).is_success


async def test_schema_asks_for_the_api_key_only_when_there_is_one(
    server_factory: ServerFactory,
) -> None:
    for api_key, expected in [(None, False), ("k", True)]:
        server = server_factory(api_key=api_key)
        schema = (await server.http.get("/openapi.json")).json()
        start = schema["paths"]["/start"]["post"]
        assert ("security" in start) is expected
        assert ("401" in start["responses"]) is expected
        assert ("APIKeyHeader" in schema["components"].get("securitySchemes", {})) is expected
        health = schema["paths"]["/healthz"]["get"]
        assert "security" not in health and "401" not in health["responses"]


async def test_schema_carries_the_servers_own_limits(server_factory: ServerFactory) -> None:
    server = server_factory(max_duration_s=60, max_batch=7)
    schemas = (await server.http.get("/openapi.json")).json()["components"]["schemas"]
    duration = schemas["StartRequest"]["properties"]["duration_s"]["anyOf"][0]
    assert (duration["minimum"], duration["maximum"]) == (0.001, 60)
    assert schemas["StartBatchRequest"]["properties"]["jobs"]["maxItems"] == 7


async def test_one_item_too_many_is_invalid_not_too_large_at_the_defaults(
    server: Server,
) -> None:
    """The heaviest valid batch plus one item must read as a 422: the batch route's body
    cap follows from max_batch and the heaviest item, not the 64 KiB default."""
    item = {
        "duration_s": 1,
        "outcome": "error",
        "callback_url": "http://127.0.0.1:9/" + '"' * 2000,
        "callback_secret": "\u0001" * 256,
    }
    answer = await server.http.post("/start/batch", json={"jobs": [item] * 1001})
    assert answer.status_code == 422, answer.text[:200]
    assert answer.json()["detail"][0]["msg"].startswith("jobs: ")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"duration_s": ' + b"1" * 5000 + b"}", "a number has too many digits (at most 4300)"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"outcome": "\xff"}', "the body is not UTF-8 text"),
    ],
    ids=["5000-digit-number", "5000-deep", "not-utf8"],
)
async def test_an_unreadable_body_says_what_is_wrong(
    server: Server, content: bytes, why: str
) -> None:
    answer = await server.http.post(
        "/start", content=content, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"] == f"body: Invalid JSON: {why}"


async def test_numeric_settings_are_bounded_and_retry_after_stays_readable(
    server: Server,
) -> None:
    assert (await server.http.put("/admin/faults", json={"rate_limit_rps": 1e7})).status_code == 422
    assert (
        await server.http.put("/admin/faults", json={"rate_limit_rps": 1e-300})
    ).status_code == 200
    url = "/status/special-pending-job"
    await server.http.get(url)
    limited = await server.http.get(url)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3600"
