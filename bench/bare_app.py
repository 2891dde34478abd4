"""A bare FastAPI app: one constant JSON route and /healthz, nothing else.

The floor a FastAPI route can reach on this machine. ``bench.status_route`` serves it
in its own uvicorn process (``uvicorn bench.bare_app:create_app --factory``) and compares
the videosim server's ``GET /status/{id}`` with it.
"""

from __future__ import annotations

from fastapi import FastAPI

CONSTANT_PATH = "/constant"
CONSTANT_BODY = {"job_id": "00000000-0000-4000-8000-000000000000", "result": "pending"}


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get(CONSTANT_PATH)
    async def constant() -> dict[str, str]:
        return CONSTANT_BODY

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
