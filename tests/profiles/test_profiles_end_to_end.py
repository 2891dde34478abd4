"""Each profile end to end: the real server emulating the API (``--profile``), the real
runner speaking it, and the server's own records as the truth the outcomes must match."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_profiles import load_profile
from client_core.runner import EXIT_OK, EXIT_USAGE, main
from tests.support.live_server import LiveServer

KEY = "emulated-key"
FOREIGN = ["replicate", "openai-batches", "heygen", "azure-operation"]
RENDER_FARM = Path(__file__).resolve().parents[1] / "fixtures" / "profiles" / "render-farm.toml"
FAST = ["--initial", "0.1", "--max-delay", "0.2", "--retries", "50", "--json", "--quiet"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("VIDEOSIM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module", params=[*FOREIGN, str(RENDER_FARM)])
def emulator(request: pytest.FixtureRequest) -> Iterator[tuple[str, LiveServer]]:
    profile = str(request.param)
    args = ["--profile", profile, "--delay", "0.4", "--seed", "11", "--api-key", KEY]
    with LiveServer(args=args) as server:
        yield profile, server


def key_variable(profile: str) -> str:
    auth = load_profile(profile).auth
    assert auth is not None
    return auth.env


def summary(out: str) -> dict[str, object]:
    last = json.loads(out.strip().splitlines()[-1])
    assert last["type"] == "summary"
    return dict(last)


def server_record(server: LiveServer, job_id: str) -> dict[str, object]:
    answer = httpx.get(f"{server.url}/jobs/{job_id}", headers={"X-Api-Key": KEY}, timeout=5)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_runner_starts_and_watches_100_jobs_to_the_outcomes_the_server_recorded(
    emulator: tuple[str, LiveServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile, server = emulator
    monkeypatch.setenv(key_variable(profile), KEY)
    code = main(["--server-url", server.url, "--profile", profile, "--jobs", "100",
                 "--allow-start", *FAST])  # fmt: skip
    result = summary(capsys.readouterr().out)
    assert code == EXIT_OK, result
    jobs = result["jobs"]
    assert isinstance(jobs, list) and len(jobs) == 100
    assert result["profile"] == load_profile(profile).name
    for job in jobs[::10]:
        record = server_record(server, job["job_id"])
        assert job["outcome"] == record["result"], (job, record)
        assert record["first_final_channel"] == "status"
    assert {job["outcome"] for job in jobs} == {"completed", "error"}  # seed 11: both


def test_jobs_that_exist_are_watched_without_starting_any(
    emulator: tuple[str, LiveServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    profile, server = emulator
    spoken = load_profile(profile)
    monkeypatch.setenv(key_variable(profile), KEY)
    auth = spoken.auth
    assert auth is not None
    headers = {auth.header: f"{auth.scheme} {KEY}".strip()}
    started = []
    for _ in range(3):
        answer = httpx.request(spoken.start.method, server.url + spoken.start.path,
                               json={}, headers=headers, timeout=5)  # fmt: skip
        assert answer.status_code in spoken.start.accepted, answer.text
        from client_core.profile_protocol import ProfileProtocol

        started.append(ProfileProtocol(spoken).read_started(answer).job_id)
    listed = tmp_path / "ids.txt"
    listed.write_text(f"# from yesterday\n{started[1]}\n{started[2]}\n")
    before = httpx.get(f"{server.url}/healthz", timeout=5).json()["jobs"]
    code = main(["--server-url", server.url, "--profile", profile, "--watch", started[0],
                 "--watch-file", str(listed), *FAST])  # fmt: skip
    result = summary(capsys.readouterr().out)
    assert code == EXIT_OK, result
    jobs = result["jobs"]
    assert isinstance(jobs, list)
    assert [job["job_id"] for job in jobs] == started
    assert httpx.get(f"{server.url}/healthz", timeout=5).json()["jobs"] == before  # none new
    for job in jobs:
        assert job["outcome"] == server_record(server, job["job_id"])["result"]


def test_without_the_key_the_run_stops_in_one_line_naming_the_variable(
    emulator: tuple[str, LiveServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile, server = emulator
    variable = key_variable(profile)
    monkeypatch.delenv(variable, raising=False)
    code = main(["--server-url", server.url, "--profile", profile, "--jobs", "2",
                 "--allow-start", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.count("\n") == 1 and f"${variable} is not set" in err
    monkeypatch.setenv(variable, "wrong-key")
    code = main(["--server-url", server.url, "--profile", profile, "--watch", "j1", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and f"${variable} was refused" in err and "wrong-key" not in err


def test_starting_on_another_api_needs_allow_start(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--server-url", "http://127.0.0.1:9", "--profile", "replicate", "--jobs", "3"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "--allow-start" in err and err.count("\n") == 1


def test_an_unknown_profile_is_one_line_and_exit_2_for_the_runner_and_the_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--profile", "replicat"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown profile 'replicat'" in err and err.count("\n") == 1
    import subprocess
    import sys

    server = subprocess.run([sys.executable, "-m", "server", "--profile", "replicat"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert server.returncode == 2
    assert "unknown profile 'replicat'" in server.stderr and "Traceback" not in server.stderr


def test_the_original_profile_is_the_plain_server_and_the_client_polls_it_as_before(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LiveServer(args=["--profile", "original", "--delay", "0.3"]) as server:
        assert httpx.get(f"{server.url}/capabilities", timeout=5).status_code == 404
        code = main(["--server-url", server.url, "--profile", "original", "--jobs", "5",
                     "--no-special", *FAST])  # fmt: skip
    result = summary(capsys.readouterr().out)
    assert code == EXIT_OK and result["profile"] == "original"
    assert result["strategy"] == {"asked": "auto", "used": {"backoff": 5}}
