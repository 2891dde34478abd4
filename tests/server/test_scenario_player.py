"""The server playing a scenario: phases exactly on time on a fake clock, the same jobs
for the same scenario."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx

from scenarios import load_scenario
from server.faults import FaultInjector, Offers
from server.jobs.clock import FakeClock
from server.jobs.schedule import Schedule
from server.models import Faults
from server.scenario_player import ScenarioPlayer
from tests.server.conftest import Server, ServerFactory
from tests.support.live_server import LiveServer


async def status_code(server: Server, job_id: str) -> tuple[int, str | None]:
    answer = await server.http.get(f"/status/{job_id}")
    return answer.status_code, answer.headers.get("Retry-After")


async def test_the_server_plays_the_timeline_exactly_on_a_fake_clock(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(scenario="outage")
    began = (await server.http.post("/admin/scenario/start")).json()
    assert (began["phases"], began["next_change_in_s"], began["next_phases"]) == (
        [],
        4.0,
        ["outage"],
    )
    job_id = (await server.http.post("/start")).json()["job_id"]
    server.advance(3.999)
    assert (await status_code(server, job_id))[0] == 200
    server.advance(0.001)
    assert await status_code(server, job_id) == (503, "2")
    during = (await server.http.get("/admin/scenario")).json()
    assert (during["phases"], during["next_change_in_s"]) == (["outage"], 8.0)
    assert during["faults"]["unavailable_rate"] == 1.0
    server.advance(7.999)
    assert (await status_code(server, job_id))[0] == 503
    server.advance(0.001)
    assert (await status_code(server, job_id))[0] == 200
    after = (await server.http.get("/admin/scenario")).json()
    assert (after["phases"], after["next_change_in_s"]) == ([], None)


async def test_one_scenario_gives_the_same_jobs_every_run(server_factory: ServerFactory) -> None:
    runs = []
    for _ in range(2):
        server = server_factory(scenario="outage")
        await server.http.post("/admin/scenario/start")
        started = [(await server.http.post("/start")).json() for _ in range(6)]
        server.advance(60)
        records = [(await server.http.get(f"/jobs/{job['job_id']}")).json() for job in started]
        runs.append([(record["duration_s"], record["outcome"]) for record in records])
    assert runs[0] == runs[1]
    assert [duration for duration, _ in runs[0]] == load_scenario("outage").durations()[:6]
    assert len({outcome for _, outcome in runs[0]}) == 2  # error_rate 0.2, seed 2: both


async def test_without_a_scenario_the_admin_route_says_so(server: Server) -> None:
    answer = await server.http.get("/admin/scenario")
    assert answer.status_code == 404 and "--scenario" in answer.json()["detail"]


async def test_the_player_says_when_an_outage_begins_and_ends() -> None:
    clock = FakeClock()
    schedule = Schedule(clock)
    faults = FaultInjector(Faults(), clock, random.Random(1))
    outages: list[bool] = []
    offers = Offers(hints=True, long_poll_max_s=30.0)
    player = ScenarioPlayer(
        load_scenario("outage"), clock, schedule, faults, offers, on_outage=outages.append
    )
    player.start()
    clock.advance(4.0)
    schedule.fire_due()
    assert outages == [True]
    assert faults.faults.unavailable_rate == 1.0
    clock.advance(4.0)
    schedule.fire_due()
    clock.advance(4.0)
    schedule.fire_due()
    assert outages == [True, False]  # once each way
    assert faults.faults.unavailable_rate == 0.0


async def test_event_streams_meet_the_faults_like_any_request(server: Server) -> None:
    job_id = (await server.http.post("/start")).json()["job_id"]
    faults = {"unavailable_rate": 1.0, "retry_after_s": 3}
    assert (await server.http.put("/admin/faults", json=faults)).status_code == 200
    refused = await server.http.get("/events", params={"ids": job_id})
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"


OUTAGE_SOON = """
name = "outage-soon"
title = "An outage soon"
[jobs]
count = 1
durations = { kind = "constant", seconds = 1 }
[[phases]]
kind = "outage"
start_s = 0.5
length_s = 1.5
"""


def test_an_outage_cuts_connections_at_the_edge_then_the_api_is_back(tmp_path: Path) -> None:
    """Served by uvicorn, an outage is the API gone: fresh and kept-alive connections are
    cut (no answer at all), and once it ends everything answers again."""
    scenario = tmp_path / "soon.toml"
    scenario.write_text(OUTAGE_SOON)
    with LiveServer(args=["--scenario", str(scenario)]) as server:
        states: list[str] = []

        def ask() -> str:
            try:
                with httpx.Client(base_url=server.url, timeout=2) as http:
                    return str(http.get("/healthz").status_code)
            except httpx.TransportError:
                return "cut"

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and states[-2:] != ["cut", "200"]:
            state = ask()
            if not states or states[-1] != state:
                states.append(state)
            time.sleep(0.05)
        assert states[-2:] == ["cut", "200"], states  # cut during the outage, then back
        with httpx.Client(base_url=server.url, timeout=5) as http:
            assert http.get("/admin/scenario").json()["phases"] == []


SWITCHES = """
name = "switches"
title = "Help switched off"
[jobs]
count = 2
durations = { kind = "constant", seconds = 60 }
[[phases]]
kind = "no-hints"
start_s = 1
length_s = 2
[[phases]]
kind = "no-long-poll"
start_s = 1
length_s = 2
[[phases]]
kind = "no-push"
start_s = 1
length_s = 2
"""


async def test_a_phase_switches_hints_long_poll_and_push_off_and_on_again(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    path = tmp_path / "switches.toml"
    path.write_text(SWITCHES)
    server = server_factory(scenario=str(path))
    await server.http.post("/admin/scenario/start")
    job_id = (await server.http.post("/start")).json()["job_id"]

    async def offered() -> tuple[bool, bool]:
        """Hints in a status answer, long-poll advertised on it."""
        status = await server.http.get(f"/status/{job_id}")
        return "eta_s" in status.json(), "X-Long-Poll-Max" in status.headers

    assert await offered() == (True, True)
    server.advance(1.0)
    assert await offered() == (False, False)
    push = await server.http.get("/events", params={"ids": job_id})
    assert push.status_code == 503 and "push is switched off" in push.json()["detail"]
    health = (await server.http.get("/healthz")).json()
    assert health.get("hints") is False
    server.advance(2.0)
    assert await offered() == (True, True)
