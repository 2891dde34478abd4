"""A short outage scenario end to end: the headless comparison on real servers, its
figures against the servers' own records, and the HTML report in a real Chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from client_core.comparison import preset_named
from client_core.comparison_report import html_report, markdown
from client_core.runner import main
from client_core.scenario_compare import compare_under_scenario
from tests.support.live_server import LiveServer

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHORT_OUTAGE = """
name = "short-outage"
title = "Short outage"
seed = 9

[jobs]
count = 12
durations = { kind = "uniform", low_s = 0.5, high_s = 2.0 }
error_rate = 0.3
arrivals = { kind = "rate", per_s = 20 }

[[phases]]
kind = "outage"
start_s = 0.3
length_s = 1.5
retry_after_s = 1
"""


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "short-outage.toml"
    path.write_text(SHORT_OUTAGE)
    return path


def test_backoff_rides_out_an_outage_and_the_report_agrees_with_the_records(
    scenario_file: Path, tmp_path: Path
) -> None:
    setups = [preset_named("backoff"), preset_named("stream")]
    with LiveServer(args=["--scenario", str(scenario_file)]) as server:
        comparison = asyncio.run(
            compare_under_scenario(str(scenario_file), setups, server_url=server.url)
        )
        backoff, stream = comparison.runs
        for run in comparison.runs:
            records = [
                httpx.get(f"{server.url}/jobs/{job_id}", timeout=5).json() for job_id in run.job_ids
            ]
            assert len(records) == 12
            assert sorted(run.lags) == sorted(r["detection_lag_s"] for r in records)
            assert run.requests_per_job == statistics.mean(r["status_requests"] for r in records)
            recorded = {r["outcome"] for r in records}
            assert set(run.outcomes) == recorded <= {"completed", "error"}
    assert backoff.no_answers > 0  # it met the outage (connections cut) and rode it out
    assert stream.status_requests == [0] * 12

    report = tmp_path / "report.html"
    report.write_text(html_report(comparison))
    text = markdown(comparison)
    assert "| backoff | backoff | 12 |" in text and "| stream | stream | 12 |" in text
    assert shutil.which(CHROMIUM), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.route("http*://**", lambda route: route.abort())  # no network: self-contained
            page.goto(report.as_uri())
            rows = page.locator("#figures tbody tr")
            assert rows.count() == 2
            assert rows.nth(0).locator("td").nth(0).inner_text() == "backoff"
            assert page.locator("#requests-chart svg rect.phase").count() == 1
            assert page.locator("#lag-chart svg circle.series").count() == 24
        finally:
            browser.close()


def test_the_command_runs_each_set_up_on_a_fresh_server_and_writes_both_reports(
    scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out" / "report.html"
    report.parent.mkdir()
    code = main(["compare", "--scenario", str(scenario_file), "--strategies", "backoff,hinted",
                 "--report", str(report)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| hinted |" in captured.out
    assert "<svg" in report.read_text() and "| backoff |" in report.with_suffix(".md").read_text()
    assert "watches ended" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "outagee"], "unknown scenario 'outagee'"),
        (["--scenario", "outage", "--strategies", "backof"], "unknown set-up 'backof'"),
        (["--scenario", "outage", "--server-url", "nope"], "server URL must look like"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_server_that_plays_no_scenario_is_said_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LiveServer() as server:
        code = main(["compare", "--scenario", "outage", "--server-url", server.url])
    err = capsys.readouterr().err
    assert code == 3 and "plays no scenario; start it with --scenario outage" in err


def test_records_are_read_once_the_server_answers_again(tmp_path: Path) -> None:
    """A set-up whose watches gave up early reads its records while an outage goes on:
    it asks again until the server answers, instead of failing the whole comparison."""
    from client_core import VideoSimClient
    from client_core.comparison import read_records

    store = ["--store", f"sqlite:///{tmp_path / 'jobs.db'}"]
    first = LiveServer(args=store)
    first.start()
    job_id = httpx.post(f"{first.url}/start", json={"duration_s": 0.1}, timeout=5).json()["job_id"]
    port = first.port
    first.stop()

    async def read_while_it_comes_back() -> list[dict[str, object]] | None:
        async with VideoSimClient(f"http://127.0.0.1:{port}") as client:
            reading = asyncio.create_task(read_records(client, [job_id]))
            await asyncio.sleep(1.0)  # a few refused attempts first
            assert not reading.done()
            again = LiveServer(args=store, port=port)
            await asyncio.to_thread(again.start)
            try:
                return await asyncio.wait_for(reading, 30)
            finally:
                await asyncio.to_thread(again.stop)

    records = asyncio.run(read_while_it_comes_back())
    assert records is not None and records[0]["job_id"] == job_id


OUTAGE_FROM_THE_START = """
name = "down-at-first"
title = "Down at first"
[jobs]
count = 1
durations = { kind = "constant", seconds = 1 }
[[phases]]
kind = "outage"
start_s = 0
length_s = 2
"""


def test_a_run_begun_during_an_outage_waits_for_the_server_to_answer(tmp_path: Path) -> None:
    """A server starts its timeline with itself; a comparison begun while that timeline is
    in an outage asks again until the server answers, then starts the timeline afresh."""
    from client_core.scenario_compare import start_timeline
    from scenarios import load_scenario

    path = tmp_path / "down.toml"
    path.write_text(OUTAGE_FROM_THE_START)
    with LiveServer(args=["--scenario", str(path)]) as server:  # ready once it answers
        assert httpx.post(f"{server.url}/admin/scenario/start", timeout=5).status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/admin/scenario", timeout=2)  # the outage, right now
        asyncio.run(start_timeline(server.url, load_scenario(str(path))))
        # started again: the outage is on again from its start, after the first one ended
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/admin/scenario", timeout=2)
