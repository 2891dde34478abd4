"""Property-based checks that the server does what its OpenAPI schema says (schemathesis).

Schemathesis reads /openapi.json, generates valid and invalid requests for every
operation and checks each answer: no 5xx, status codes, headers and bodies as
documented, schema-violating input refused, schema-valid input accepted. It runs against
three set-ups whose schemas differ: the defaults, an API key, and --plain.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import schemathesis
from fastapi import FastAPI

from server.app import create_app
from server.settings import ServerSettings

EXAMPLES = 50


def build(**overrides: Any) -> FastAPI:
    # Short holds: a generated ?wait=S must not park a request for long.
    settings = ServerSettings(_env_file=None, long_poll_max_s=0.01, **overrides)  # type: ignore[call-arg]
    return create_app(settings)


# At the default settings, as a user runs the server: a batch of max_batch + 1 items
# (invalid, so it must be a 422) once weighed more than the 64 KiB default body cap and
# got a 413 instead; the batch route's cap is now derived from its longest valid batch.
# GET /events is an endless stream: an in-process call would never return. Its answers
# are checked over HTTP in tests/server/test_push_events.py instead.
default_schema = schemathesis.openapi.from_asgi("/openapi.json", build()).exclude(path="/events")
keyed_schema = schemathesis.openapi.from_asgi("/openapi.json", build(api_key="s3cret")).exclude(
    path="/events"
)
plain_schema = schemathesis.openapi.from_asgi("/openapi.json", build(plain=True))


@default_schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None)
def test_default_server_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()


@keyed_schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES // 4, deadline=None, database=None)
def test_server_with_an_api_key_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()


@plain_schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES // 4, deadline=None, database=None)
def test_plain_server_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()
