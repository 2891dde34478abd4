"""Compare set-ups under a scenario, headless: ``videosim-client compare --scenario outage``.

Every set-up runs the scenario's jobs (their arrival times; their durations and outcomes
drawn by the server from the scenario's seed) against a fresh server playing that
scenario, started for it on a free port, so each set-up meets the same jobs and the same
faults at the same moments. All set-ups run at the same time. The figures come from the
servers' records (see :mod:`client_core.comparison`); :mod:`client_core.comparison_report`
writes them as HTML and Markdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from client_core.answers import describe_transport_error
from client_core.client import VideoSimClient
from client_core.comparison import BatchJob, PolicyPreset, PolicyRun, run_preset
from client_core.local_server import ServerProcess
from scenarios import Scenario, load_scenario

#: Beyond the scenario's length, how long a server that does not answer is asked again.
START_TIMELINE_GRACE_S = 10.0

#: Called with a set-up's name, its watches ended so far and its jobs.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class ScenarioComparison:
    scenario: Scenario
    runs: list[PolicyRun]
    urls: list[str]  # the server each set-up ran against, in the order of ``runs``


class ScenarioUnavailable(RuntimeError):
    """The server cannot play the scenario (it plays none, or another one)."""


async def compare_under_scenario(
    scenario_ref: str,
    setups: Sequence[PolicyPreset],
    *,
    server_url: str | None = None,
    on_progress: Progress | None = None,
) -> ScenarioComparison:
    """Run every set-up under the scenario; with ``server_url``, all of them against that
    server (which must play the same scenario: its timeline is started again first, and
    the set-ups share its jobs' draws), else each on a fresh server of its own."""
    scenario = load_scenario(scenario_ref)
    batch = [BatchJob(None, None, at) for at in scenario.arrival_times()]
    if server_url is not None:
        await start_timeline(server_url, scenario)

    async def run_one(setup: PolicyPreset) -> tuple[PolicyRun, str]:
        ended = 0

        def one_more(done: int) -> None:
            nonlocal ended
            ended += done
            if on_progress is not None:
                on_progress(setup.name, ended, len(batch))

        server = None
        url = server_url
        if url is None:
            server = ServerProcess(args=["--scenario", scenario_ref])
            server.spawn()
        try:
            if server is not None:
                await server.wait_ready()
                url = server.url
                await start_timeline(url, scenario)
            assert url is not None
            async with VideoSimClient(url) as client:
                return await run_preset(client, setup, batch, one_more), url
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run_one(setup)) for setup in setups]
    results = [task.result() for task in tasks]
    return ScenarioComparison(scenario, [run for run, _ in results], [url for _, url in results])


async def start_timeline(url: str, scenario: Scenario) -> None:
    """POST /admin/scenario/start, after checking the server plays this scenario.

    A server that started its timeline with itself may be in an outage right now (every
    connection cut): asked again until the timeline could have ended."""
    give_up_at = time.monotonic() + scenario.length_s + START_TIMELINE_GRACE_S
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as http:
        while True:
            try:
                answer = await http.get("/admin/scenario")
                break
            except httpx.TransportError as exc:
                if time.monotonic() > give_up_at:
                    raise ScenarioUnavailable(
                        f"the server at {url} does not answer: {describe_transport_error(exc)}"
                    ) from None
                await asyncio.sleep(0.5)
        name = None
        with contextlib.suppress(ValueError, AttributeError):
            name = answer.json().get("name")
        if answer.status_code != 200 or name != scenario.name:
            plays = f"plays {name!r}" if name else "plays no scenario"
            raise ScenarioUnavailable(
                f"the server at {url} {plays}; start it with --scenario {scenario.name}"
            )
        try:
            (await http.post("/admin/scenario/start")).raise_for_status()
        except httpx.HTTPError as exc:
            raise ScenarioUnavailable(f"cannot start the scenario at {url}: {exc}") from None
