"""A full disk under the SQLite store: a start that was not committed leaves no trace.

A real server on a real 2 MB tmpfs, filled with ``dd`` as an unlucky operator's disk
would be. Before: an answered 503 left its jobs in memory and its Idempotency-Key
replayable (200 ``Idempotent-Replayed``) for a job that a restart then did not know.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (the tests run as root, as CI does; failing to mount fails the test)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], check=False, capture_output=True
    )
    return filler


def _health(server: LiveServer) -> dict[str, object]:
    answer: dict[str, object] = httpx.get(f"{server.url}/healthz", timeout=10).json()
    return answer


def test_a_start_refused_on_a_full_disk_leaves_no_trace(
    small_disk: Path, live_server_factory: Callable[..., LiveServer]
) -> None:
    server = live_server_factory("--store", f"sqlite:///{small_disk}/jobs.db")
    start_url = f"{server.url}/start"
    kept = httpx.post(start_url, json={"duration_s": 600}).json()["job_id"]
    filler = _fill(small_disk)

    body = {"duration_s": 600}
    headers = {"Idempotency-Key": "k"}
    refused = [httpx.post(start_url, json=body, headers=headers, timeout=10) for _ in range(3)]
    assert [answer.status_code for answer in refused] == [503, 503, 503]
    assert all("Idempotent-Replayed" not in answer.headers for answer in refused)
    assert "Retry-After" in refused[0].headers
    batches = [
        httpx.post(f"{start_url}/batch", json={"jobs": [body] * 20}, timeout=10) for _ in range(20)
    ]
    assert {answer.status_code for answer in batches} == {503}
    health = _health(server)
    assert health["jobs"] == 1  # the refused ones are not there, not even in memory
    assert health["status"] == "degraded"
    assert "cannot write store file" in str(health["problem"])

    filler.unlink()  # space comes back
    deadline = time.monotonic() + 10
    while (answer := httpx.post(start_url, json=body, headers=headers)).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)
    assert "Idempotent-Replayed" not in answer.headers  # a fresh start, not a replay
    new = answer.json()["job_id"]
    assert _health(server)["status"] == "ok"
    replay = httpx.post(start_url, json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["job_id"] == new

    server.kill()
    server.start()
    for job_id in (kept, new):
        assert httpx.get(f"{server.url}/jobs/{job_id}").status_code == 200
    assert _health(server)["jobs"] == 2
    again = httpx.post(start_url, json=body, headers=headers)
    assert again.json()["job_id"] == new  # the key survived with its committed job
    log = server.stderr_text()
    assert "no transaction is active" not in log
    assert "Traceback" not in log
