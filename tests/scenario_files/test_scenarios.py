"""Scenario files: the built-ins, replayed durations, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import ScenarioError, builtin_names, load_scenario


def test_the_built_in_scenarios_load() -> None:
    assert builtin_names() == ["long-tail", "outage", "rate-limit-storm", "steady",
                               "thundering-herd"]  # fmt: skip
    outage = load_scenario("outage")
    assert outage.boundaries() == [0.0, 4.0, 12.0]
    assert outage.faults_at(3.999).phases == ()
    assert outage.faults_at(4.0).unavailable_rate == 1.0
    assert outage.faults_at(12.0).phases == ()
    assert outage.durations() == load_scenario("outage").durations()  # seeded
    assert load_scenario("steady").arrival_times()[:3] == [0.0, 0.02, 0.04]


def test_observed_durations_are_replayed_from_a_csv(tmp_path: Path) -> None:
    (tmp_path / "seen.csv").write_text("seconds\n2.5\n7\n")
    (tmp_path / "replay.toml").write_text(
        'name = "replay"\ntitle = "observed"\n[jobs]\ncount = 5\n'
        'durations = { kind = "replay", csv = "seen.csv" }\n'
    )
    assert load_scenario(str(tmp_path / "replay.toml")).durations() == [2.5, 7.0, 2.5, 7.0, 2.5]
    (tmp_path / "seen.csv").write_text("2.5\nlong\n")
    with pytest.raises(ScenarioError, match=r"seen.csv line 2: not a number of seconds: 'long'"):
        load_scenario(str(tmp_path / "replay.toml"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\ntitle = "x"\n[jobs]\ncount = 0\ndurations = { kind = "constant", '
         'seconds = 1 }\n', "line 4: jobs.count: Input should be greater than or equal to 1"),
        ('name = "x"\ntitle = "x"\n[jobs]\ncount = 1\ndurations = { kind = "sometimes" }\n',
         "jobs.durations: Input tag 'sometimes' found using 'kind' does not match"),
        ('name = "x"\ntitle = "x"\n[jobs]\ncount = 1\ndurations = { kind = "constant", '
         'seconds = 1 }\n[[phases]]\nkind = "outage"\nstart_s = -1\nlength_s = 5\n',
         "phases.0.start_s: Input should be greater than or equal to 0"),
    ],
)  # fmt: skip
def test_a_bad_scenario_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    assert "\n" not in str(caught.value) and message in str(caught.value)


def test_the_poll_benchmark_draws_its_workloads_from_scenario_files() -> None:
    from bench.poll_efficiency import SCENARIOS, WORKLOADS

    for workload in WORKLOADS:
        scenario = load_scenario(str(SCENARIOS / f"{workload.scenario.name}.toml"))
        jobs = workload.jobs(50, 10.0, seed=3)
        drawn = scenario.with_jobs(50, 3)
        assert [job.duration_s for job in jobs] == drawn.durations()
        assert [job.outcome for job in jobs] == drawn.outcomes()
    bimodal = load_scenario(str(SCENARIOS / "bimodal.toml")).with_jobs(2000, 1).durations()
    long = [seconds for seconds in bimodal if seconds >= 30]
    assert all(2 <= s <= 8 or 30 <= s <= 60 for s in bimodal)
    assert 0.15 < len(long) / len(bimodal) < 0.25
