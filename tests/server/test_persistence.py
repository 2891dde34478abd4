"""Durable jobs: the SQLite store keeps them across a restart, and --state-file, now an
alias of it, migrates an old JSON-lines state file once.

In-process tests run each app's lifespan (the store opens and closes) and build a second
app on the same fake clock over the same file. The last test stops and restarts a real
server process with SIGTERM, as a user would.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.jobs.clock import FakeClock
from server.settings import ServerSettings
from server.stores.job_table import JobTable
from server.stores.state_file import StateFileError, load_jobs, save_jobs
from tests.server.conftest import Server
from tests.support.live_server import LiveServer, free_port

OpenServer = Callable[..., Awaitable[Server]]


async def records(server: Server) -> dict[str, dict[str, Any]]:
    """GET /jobs/{id} for every listed job, by id, in listing order."""
    listing = (await server.http.get("/jobs", params={"limit": 1000})).json()
    return {
        job["job_id"]: (await server.http.get(f"/jobs/{job['job_id']}")).json()
        for job in listing["jobs"]
    }


async def states(server: Server) -> dict[str, int]:
    return dict(await server.state.store.counts_by_state())


async def shut_down(server: Server) -> None:
    """What uvicorn does on SIGTERM: release long-polls, write what is pending, close."""
    server.state.store.close()
    await server.state.store.aclose()


def empty_store(max_jobs: int = 100, seed: int | None = None) -> JobTable:
    return JobTable(
        FakeClock(),
        rng=random.Random(seed),
        default_duration_s=1,
        error_rate=0.5,
        max_jobs=max_jobs,
    )


def state_lines(*jobs: dict[str, Any], count: int | None = None) -> str:
    header = {"format": "videosim-jobs", "version": 1, "saved_at": 0.0,
              "jobs": len(jobs) if count is None else count}  # fmt: skip
    return "\n".join(json.dumps(line) for line in [header, *jobs]) + "\n"


def saved_job(**overrides: Any) -> dict[str, Any]:
    job = {
        "job_id": "a",
        "created_at": 1_700_000_000.0,
        "duration_s": 2.0,
        "outcome": "error",
        "status_requests": 0,
        "first_final_seen_at": None,
    }
    return {**job, **overrides}


@pytest.mark.parametrize("flag", ["store", "state_file"])
async def test_jobs_records_and_counts_survive_a_restart(
    open_server: OpenServer, tmp_path: Path, flag: str
) -> None:
    clock = FakeClock()
    path = tmp_path / "jobs.db"
    where = {"store": f"sqlite:///{path}"} if flag == "store" else {"state_file": path}
    before = await open_server(clock, seed=7, **where)
    quick = (await before.start(duration_s=1, outcome="completed"))["job_id"]
    failing = (await before.start(duration_s=3, outcome="error"))["job_id"]
    long = (await before.start(duration_s=100))["job_id"]
    await before.http.get(f"/status/{quick}")  # pending
    before.advance(1.5)
    await before.http.get(f"/status/{quick}")  # final: sets first_final_seen_at
    for _ in range(3):
        await before.http.get(f"/status/{failing}")
    seen_before, counted_before = await records(before), await states(before)
    await shut_down(before)

    after = await open_server(clock, seed=7, **where)
    assert await records(after) == seen_before
    assert await states(after) == counted_before == {"pending": 2, "completed": 1, "error": 0}
    assert seen_before[quick]["first_final_seen_at"] == clock.now()
    assert len(seen_before[failing]["requests"]) == 3
    assert [job["job_id"] for job in seen_before.values()] == [quick, failing, long]

    after.advance(200)  # both of the others finish while nobody is looking
    for job_id in (failing, long):
        answer = (await after.http.get(f"/status/{job_id}")).json()
        assert answer["result"] == seen_before[job_id]["outcome"]
    assert (await states(after))["pending"] == 0
    assert sum((await states(after)).values()) == 3


async def test_a_store_file_without_delivery_channels_is_brought_up_to_date(
    open_server: OpenServer, tmp_path: Path
) -> None:
    """A file an earlier version wrote has no first_final_channel column: it gains one,
    and what it recorded reads as delivered by a status answer."""
    clock = FakeClock()
    path = tmp_path / "jobs.db"
    before = await open_server(clock, store=f"sqlite:///{path}")
    job_id = (await before.start(duration_s=1, outcome="completed"))["job_id"]
    before.advance(2)
    await before.http.get(f"/status/{job_id}")
    await shut_down(before)
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE jobs DROP COLUMN first_final_channel")

    after = await open_server(clock, store=f"sqlite:///{path}")
    record = (await after.http.get(f"/jobs/{job_id}")).json()
    assert record["first_final_channel"] == "status" and record["detection_lag_s"] == 1
    later = (await after.start(duration_s=1, outcome="error"))["job_id"]
    after.advance(2)
    batch = await after.http.post("/status/batch", json={"job_ids": [later]})
    assert batch.status_code == 200
    await shut_down(after)
    again = await open_server(clock, store=f"sqlite:///{path}")
    record = (await again.http.get(f"/jobs/{later}")).json()
    assert record["first_final_channel"] == "batch" and record["detection_lag_s"] == 1


async def test_a_seeded_server_hands_out_new_ids_after_a_restart(
    open_server: OpenServer, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    first = await open_server(seed=7, store=store)
    old_ids = [(await first.start())["job_id"] for _ in range(5)]
    await shut_down(first)
    # Ids never come from the seed, so the same seed cannot hand out an old id again.
    fresh = await open_server(seed=7)
    assert (await fresh.start())["job_id"] not in old_ids

    restarted = await open_server(seed=7, store=store)
    new_ids = [(await restarted.start())["job_id"] for _ in range(5)]
    assert len(set(old_ids + new_ids)) == 10
    listing = (await restarted.http.get("/jobs")).json()
    assert listing["total"] == 10
    assert [job["job_id"] for job in listing["jobs"]] == old_ids + new_ids


async def test_an_old_json_state_file_is_migrated_once(
    open_server: OpenServer, tmp_path: Path
) -> None:
    clock = FakeClock()
    state_file = tmp_path / "jobs.jsonl"
    requests = [[clock.now() + 0.5, 200, 2.0], [clock.now() + 1, 200, 1.0]]
    saved = saved_job(created_at=clock.now(), status_requests=2, requests=requests)
    state_file.write_text(state_lines(saved))
    server = await open_server(clock, state_file=state_file)
    record = (await server.http.get("/jobs/a")).json()
    assert record["status_requests"] == 2 and len(record["requests"]) == 2
    await server.start()
    await shut_down(server)
    backup = tmp_path / "jobs.jsonl.json-migrated"
    assert json.loads(backup.read_text().splitlines()[1])["job_id"] == "a"
    assert state_file.read_bytes().startswith(b"SQLite format 3")

    again = await open_server(clock, state_file=state_file)  # no second migration
    assert (await again.http.get("/jobs")).json()["total"] == 2
    assert backup.exists()


async def test_a_missing_or_empty_file_is_a_fresh_start(
    open_server: OpenServer, tmp_path: Path
) -> None:
    state_file = tmp_path / "jobs.jsonl"
    assert await (await open_server(state_file=state_file)).state.store.count() == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    server = await open_server(state_file=empty)
    assert await server.state.store.count() == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "line 1: not valid JSON"),
        ('{"format": "videosim-jobs", "version": 2, "saved_at": 0, "jobs": 0}\n',
         "line 1: version: Input should be 1"),
        (state_lines(saved_job(duration_s=0)), "line 2: duration_s: Input should be greater"),
        (state_lines(saved_job(outcome="maybe")), "line 2: outcome: Input should be"),
        (state_lines(saved_job(), count=2), "header promises 2 jobs but 1 follow"),
        (state_lines(saved_job(), saved_job()), "job 'a' appears twice"),
        (state_lines(saved_job(job_id="special-pending-job")), "'special-pending-job' is reserved"),
        (state_lines(saved_job(), saved_job(job_id="b"), saved_job(job_id="c")),
         "more jobs than max_jobs allows (2)"),
        (state_lines(saved_job())[:-20], "line 2: not valid JSON"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    state_file = tmp_path / "jobs.jsonl"
    state_file.write_text(content)
    store = empty_store(max_jobs=2)
    with pytest.raises(StateFileError) as raised:
        load_jobs(store, state_file)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"invalid state file {state_file}: ")
    assert "\n" not in str(raised.value)
    assert len(store) == 0  # nothing half-loaded


def test_an_unreadable_file_or_missing_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "a-directory").mkdir()
    for path, message in [
        (tmp_path / "binary", "not UTF-8 text"),
        (tmp_path / "a-directory", "cannot read state file"),
        (tmp_path / "no-such-dir" / "jobs.jsonl", "does not exist"),
    ]:
        with pytest.raises(StateFileError, match=message):
            load_jobs(empty_store(), path)


def test_history_stays_bounded_when_loaded(tmp_path: Path) -> None:
    many = [[1_700_000_000.0 + n, 200, None] for n in range(250)]
    state_file = tmp_path / "jobs.jsonl"
    state_file.write_text(state_lines(saved_job(status_requests=250, requests=many)))
    store = empty_store()
    assert load_jobs(store, state_file) == 1
    job = store.get("a")
    assert job is not None and job.log is not None
    assert len(job.requests()) == 200 and job.requests()[-1].at == many[-1][0]
    assert job.requests()[0].at == many[50][0]


def test_state_file_setting_from_the_environment(
    clean_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ServerSettings().state_file is None
    monkeypatch.setenv("VIDEOSIM_STATE_FILE", "state/jobs.jsonl")
    assert ServerSettings().state_file == Path("state/jobs.jsonl")
    assert ServerSettings(state_file="").state_file is None


def test_a_corrupt_file_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    state_file = tmp_path / "jobs.jsonl"
    state_file.write_text('{"format": "videosim-jobs", "version": 1, "saved_at": 0, "jobs": 1}\n{')
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_")}
    result = subprocess.run(
        [sys.executable, "-m", "server", "--state-file", str(state_file), "--port",
         str(free_port())],
        env=clean, capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"videosim-server: --state-file is deprecated: it now means --store sqlite:///{state_file}",
        f"videosim-server: invalid state file {state_file}: line 2: not valid JSON "
        "(EOF while parsing an object)",
    ]
    assert result.stdout == ""
    assert state_file.read_text().endswith("{")  # left as it was, not migrated


def test_save_jobs_writes_the_old_format_loadable_again(tmp_path: Path) -> None:
    store = empty_store()
    store.create_many([(2.0, "completed")])
    path = tmp_path / "jobs.jsonl"
    assert save_jobs(store, path, 0.0) == 1
    assert load_jobs(empty_store(), path) == 1
    with pytest.raises(StateFileError, match="cannot save state file"):
        save_jobs(store, tmp_path / "gone" / "jobs.jsonl", 0.0)


def test_a_real_server_keeps_its_jobs_across_sigterm(tmp_path: Path) -> None:
    state_file = tmp_path / "jobs.db"
    server = LiveServer(args=["--store", f"sqlite:///{state_file}", "--delay", "1"])
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            job_id = http.post("/start").json()["job_id"]
            assert http.get(f"/status/{job_id}").json()["result"] == "pending"
            before = http.get(f"/jobs/{job_id}").json()
        server.stop()  # SIGTERM: the store writes its last counters and closes
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            answer = http.get(f"/status/{job_id}")
            assert answer.status_code == 200
            assert answer.json()["result"] in ("pending", before["outcome"])
            final = http.get(f"/status/{job_id}", params={"wait": 10}).json()
            after = http.get(f"/jobs/{job_id}").json()
    finally:
        server.stop()
    assert final["result"] == before["outcome"]
    assert after["created_at"] == before["created_at"]
    assert after["status_requests"] == before["status_requests"] + 2
