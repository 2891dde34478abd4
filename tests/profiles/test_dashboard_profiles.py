"""The dashboard speaking another API's profile (pilot), against the server emulating it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api_profiles import load_profile
from client_core import ClientOptions, Outcome, Strategy
from tests.support.live_server import LiveServer
from tests.tui.conftest import FAST_POLICY, fast_settings, wait_until
from tui.app import make_app
from tui.model import SpawnRequest

KEY = "emulated-key"


@pytest.fixture(scope="module")
def replicate() -> Iterator[LiveServer]:
    args = ["--profile", "replicate", "--delay", "0.4", "--seed", "5", "--api-key", KEY]
    with LiveServer(args=args) as server:
        yield server


@pytest.fixture(scope="module", params=["replicate", "openai-batches", "heygen", "azure-operation"])
def emulator(request: pytest.FixtureRequest) -> Iterator[tuple[str, LiveServer]]:
    name = str(request.param)
    args = ["--profile", name, "--delay", "0.4", "--seed", "5", "--api-key", KEY]
    with LiveServer(args=args) as server:
        yield name, server


async def recorded_result(server: LiveServer, job_id: str) -> str:
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": KEY}) as http:
        answer = await http.get(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["result"])


async def test_the_dashboard_spawns_and_watches_100_jobs_to_their_outcomes(
    emulator: tuple[str, LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, server = emulator
    auth = load_profile(name).auth
    assert auth is not None
    monkeypatch.setenv(auth.env, KEY)
    settings = fast_settings(client_options=ClientOptions(profile=name))
    app = make_app(server_url=server.url, settings=settings)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: app.connected, "the engine")
        app.spawn(SpawnRequest(count=100, strategy=Strategy.AUTO, policy=FAST_POLICY))
        await wait_until(
            pilot,
            lambda: len(app.board) == 100 and all(view.finished for view in app.board),
            "100 jobs to end",
            timeout_s=60,
        )
        outcomes = {view.outcome for view in app.board}
        assert outcomes == {Outcome.COMPLETED, Outcome.ERROR}
        for view in list(app.board)[::10]:
            assert view.outcome is not None
            assert view.outcome.value == await recorded_result(server, view.job_id)


async def test_ids_pasted_into_the_dashboard_are_watched_and_spawning_needs_allow_start(
    replicate: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", KEY)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=replicate.url, headers=headers) as http:
        ids = [(await http.post("/v1/predictions", json={})).json()["id"] for _ in range(3)]
    settings = fast_settings(client_options=ClientOptions(profile="replicate"), allow_start=False)
    app = make_app(server_url=replicate.url, settings=settings)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: app.connected, "the engine")
        app.spawn(SpawnRequest(count=2, policy=FAST_POLICY))
        await pilot.pause()
        assert len(app.board) == 0 and app.board.starting == 0
        assert any("--allow-start" in n.message for n in app._notifications)
        await pilot.press("w")
        area = app.screen.query_one("#ids")
        area.text = f"{ids[0]}, {ids[1]}\n# a comment\n{ids[2]}\n{ids[0]}"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await wait_until(
            pilot,
            lambda: len(app.board) == 3 and all(view.finished for view in app.board),
            "the three watches to end",
            timeout_s=30,
        )
        assert sorted(view.job_id for view in app.board) == sorted(ids)
        for view in app.board:
            assert view.outcome is not None
            assert view.outcome.value == await recorded_result(replicate, view.job_id)
