"""The benchmarks' own plumbing, and one real section in quick mode (a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.__main__ import main
from bench.load_generator import parse_wrk
from bench.poll_efficiency import POLICIES, WORKLOADS, scaled_timing
from bench.report import Column, SectionResult, Table, over_rounds
from client_core import PollTiming
from client_core.comparison_report import percentile

ROOT = Path(__file__).resolve().parents[2]

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:1/status/x
  1 threads and 32 connections
  Latency Distribution
     50%    9.80ms
     75%   12.00ms
     90%   15.00ms
     99%   22.40ms
  6446 requests in 2.00s, 1.60MB read
  Non-2xx or 3xx responses: 6
Requests/sec:   3223.00
"""


def test_unknown_section_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["nope"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "python -m bench: unknown section 'nope'; "
        "choose from poll, server, client, tui, tui-terminal, strategies, profile, soak"
    ]


def test_wrk_report_is_parsed() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert (result.ok, result.failed, result.seconds) == (6440, 6, 2.0)
    assert result.p50_ms == pytest.approx(9.8)
    assert result.p99_ms == pytest.approx(22.4)


def test_percentile_interpolates() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)


def test_a_figure_that_moves_more_than_a_quarter_prints_as_a_range() -> None:
    column = Column("ms", "ms", "{:.1f}")
    steady = over_rounds("ms", [10.0, 11.0, 12.0])
    moving = over_rounds("ms", [10.0, 14.0, 12.0])
    assert steady["ms_spread"] == pytest.approx(2 / 11)
    assert column.cell(steady) == "11.0"
    assert moving["ms"] == 12.0
    assert column.cell(moving) == "10.0 - 14.0"
    assert over_rounds("ms", [None, None]) == {"ms": None}
    tiny = over_rounds("ms", [0.01, 0.04, 0.02])  # moved 150 %, but prints as 0.0 either way
    assert column.cell(tiny) == "0.0"


def test_every_policy_sees_the_same_seeded_jobs() -> None:
    for workload in WORKLOADS:
        first = workload.jobs(20, 40.0, seed=3)
        assert first == workload.jobs(20, 40.0, seed=3)
        assert first != workload.jobs(20, 40.0, seed=4)
        assert all(0 <= job.arrives_at_s <= 40.0 and job.duration_s > 0 for job in first)


def test_time_scaling_divides_every_delay_and_the_planner_margins() -> None:
    original = next(policy for policy in POLICIES if policy.name.startswith("original"))
    scaled = original.scaled(10.0, seed=1)
    assert scaled.schedule(5) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert scaled.max_attempts == 5
    default, timing = PollTiming(), scaled_timing(10.0)
    assert timing.hint_margin_s == pytest.approx(default.hint_margin_s / 10)
    assert timing.retry_after_spread_max_s == pytest.approx(default.retry_after_spread_max_s / 10)
    assert timing.hint_spread_ratio == default.hint_spread_ratio  # a share, not a duration


@pytest.mark.timeout(240)
def test_quick_client_section_runs_and_writes_json(tmp_path: Path) -> None:
    # A benchmark, even a quick one, takes its time on a busy machine: a generous ceiling.
    done = subprocess.run(
        [sys.executable, "-m", "bench", "client", "--quick", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "client.json").read_text())
    rows = report["tables"][0]["rows"]
    assert [row["transport"] for row in rows] == ["lean (default)", "httpx default"]
    assert all(row["failures"] == 0 for row in rows)
    assert all(len(row["cpu_ms_rounds"]) == 2 for row in rows)  # every round kept
    assert report["quick"] is True


def test_a_failed_check_prints_the_tables_then_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(quick: bool) -> SectionResult:
        table = Table("live board", [Column("achieved", "achieved req/s", "{:.0f}")])
        table.add(achieved=12.0)
        return SectionResult("tui", "Dashboard", tables=[table], failures=["12 of 200 req/s"])

    monkeypatch.setattr(
        "bench.__main__.importlib.import_module", lambda name: SimpleNamespace(run=run)
    )
    summary = tmp_path / "summary.md"
    assert main(["tui", "--results", str(tmp_path), "--markdown", str(summary)]) == 1
    assert "check failed: 12 of 200 req/s" in capsys.readouterr().out
    assert "| 12 |" in summary.read_text()
    assert json.loads((tmp_path / "tui.json").read_text())["failures"] == ["12 of 200 req/s"]
