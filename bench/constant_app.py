"""The real server app plus one bare route, so both can be loaded in the same process.

``GET /status/{id}`` is compared with ``GET /bench/constant``, a FastAPI route that only
returns constant JSON. Both live in one uvicorn process and pass through the same
middleware, so the ratio of their throughputs is the cost of the status route's own work
(dependencies, validation, the store, the response model, the request log), independent
of how fast the machine happens to be that minute.

Served with ``uvicorn bench.constant_app:create_app --factory``; settings come from the
``VIDEOSIM_*`` environment, as for ``python -m server``.
"""

from __future__ import annotations

from fastapi import FastAPI

from server import ServerSettings
from server import create_app as create_server_app

CONSTANT_PATH = "/bench/constant"
CONSTANT_BODY = {"job_id": "00000000-0000-4000-8000-000000000000", "result": "pending"}


def create_app() -> FastAPI:
    app = create_server_app(ServerSettings(_env_file=None))  # type: ignore[call-arg]

    @app.get(CONSTANT_PATH, include_in_schema=False, response_model=None)
    async def constant() -> dict[str, str]:
        return CONSTANT_BODY

    return app
