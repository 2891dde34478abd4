"""A server with only the original simulation's two routes, for the compare view's tests.

The original API has ``POST /start`` and ``GET /status/{id}`` and nothing else: no
``/healthz``, no ``GET /jobs/{id}``. This one adds two knobs for tests: how long a job stays
pending, and how many jobs it accepts before refusing (400, not worth retrying).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, HTTPException

from tests.support.live_server import free_port


@dataclass
class OriginalApiServer:
    delay_s: float = 0.3
    max_jobs: int | None = None
    refusal_delay_s: float = 0.0  # a refused start answers this late (others poll meanwhile)
    port: int = field(default_factory=free_port)
    status_requests: int = 0  # for jobs this server started (probes of other ids aside)
    _created: dict[str, float] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/start")
        async def start() -> dict[str, str]:
            if self.max_jobs is not None and len(self._created) >= self.max_jobs:
                await asyncio.sleep(self.refusal_delay_s)
                raise HTTPException(400, "no more jobs")
            job_id = str(uuid.uuid4())
            self._created[job_id] = time.monotonic()
            return {"job_id": job_id}

        @app.get("/status/{job_id}")
        async def status(job_id: str) -> dict[str, str]:
            created = self._created.get(job_id)
            if created is None:  # a client probing with special-pending-job, say
                raise HTTPException(404, "Job not found")
            self.status_requests += 1
            done = time.monotonic() - created >= self.delay_s
            return {"job_id": job_id, "result": "completed" if done else "pending"}

        return app

    def __enter__(self) -> OriginalApiServer:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="error")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the original-API test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
