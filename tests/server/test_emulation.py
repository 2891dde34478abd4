"""The emulator's state sequences and answer shapes, on chosen moments (no clock)."""

from __future__ import annotations

import pytest

from api_profiles import load_profile
from server.emulation import answer, state_name
from server.jobs.job import Job


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("replicate", ["starting", "starting", "processing", "processing", "succeeded"]),
        ("openai-batches", ["validating", "validating", "in_progress", "finalizing", "completed"]),
        ("heygen", ["pending", "pending", "running", "running", "success"]),
        ("azure-operation", ["NotStarted", "NotStarted", "Running", "Running", "Succeeded"]),
    ],
)
def test_each_pending_state_takes_an_equal_share_of_the_duration_then_the_outcome(
    profile: str, expected: list[str]
) -> None:
    spoken = load_profile(profile)
    job = Job("j1", 100.0, 12.0, fails=False)
    moments = [100.0, 103.0, 106.5, 111.9, 112.0]
    assert [state_name(spoken, job, at) for at in moments] == expected
    failed = Job("j2", 100.0, 12.0, fails=True)
    assert spoken.status.phase_of(state_name(spoken, failed, 112.0)) == "error"


def test_answers_carry_the_id_state_and_status_url_where_the_profile_reads_them() -> None:
    replicate = load_profile("replicate")
    job = Job("p-1", 0.0, 10.0, fails=True)
    shown = answer(replicate, job, 10.0, "http://host/v1/predictions/p-1")
    assert shown["id"] == "p-1" and shown["status"] == "failed"
    assert shown["urls"] == {"get": "http://host/v1/predictions/p-1"}
    assert shown["error"] == "the emulated job failed"
    azure = load_profile("azure-operation")
    halfway = answer(azure, Job("op-1", 0.0, 10.0, fails=False), 5.0, "http://host/operations/op-1")
    assert halfway == {"status": "Running", "percentComplete": 50.0}
