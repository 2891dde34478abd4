"""The server's figure-printing bench scripts run and print what docs/server.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_store_memory_prints_the_cost_of_a_polled_job() -> None:
    (figures,) = run_bench("bench.store_memory", "--jobs", "20000", "--polls", "10")
    assert figures["polls"] == 10
    assert 0 < figures["bytes_per_job"] < figures["bytes_per_job_polled"] < 1000


def test_long_poll_lag_prints_percentiles() -> None:
    (figures,) = run_bench("bench.long_poll_lag", "--jobs", "50")
    assert figures["loop"] == "uvloop"
    assert 0 <= figures["lag_p50_ms"] <= figures["lag_p99_ms"] <= figures["lag_max_ms"]


def test_status_route_compares_with_a_bare_app() -> None:
    (figures,) = run_bench(
        "bench.status_route", "--rounds", "1", "--seconds", "0.5", "--connections", "4"
    )
    assert figures["status_per_s"] > 0 and figures["bare_per_s"] > 0
    assert figures["status_cpu_us"] > 0 and figures["ratio"] > 0
