"""The outside reference for GET /status: a bare FastAPI app in a process of its own.

One route that returns constant JSON, no middleware, no dependencies, served by uvicorn
with the same options the videosim server uses (event loop, HTTP parser, log level and
limits all left to the same values). ``GET /status/{id}`` on ``python -m server`` is
compared with this, each in its own process, loaded by the same generator from a third:
the ratio is what the real route costs over the floor of FastAPI on this machine.

Run as ``python -m bench.bare_app --port N``.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from server.settings import ServerSettings

CONSTANT_PATH = "/status/bare"
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    defaults = ServerSettings(_env_file=None)  # type: ignore[call-arg]
    # The same uvicorn options as server/cli.py passes for a default server.
    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level=defaults.log_level)


if __name__ == "__main__":
    main()
