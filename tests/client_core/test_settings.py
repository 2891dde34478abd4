"""ClientSettings: VIDEOSIM_ prefix, .env, the seed's RETRIES/BACKOFF_FACTOR, precedence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from client_core import BackoffPolicy, ClientSettings, Jitter, Strategy


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer settings and no stray .env: each test sets exactly what it needs."""
    for name in list(os.environ):
        if name.startswith("VIDEOSIM_") or name in ("RETRIES", "BACKOFF_FACTOR"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = ClientSettings()
    assert settings.server_url == "http://127.0.0.1:7999"
    assert settings.strategy is Strategy.AUTO
    assert settings.max_in_flight == 64 and settings.max_rps is None
    assert settings.policy() == BackoffPolicy()
    assert settings.policy(default_preset="original") == BackoffPolicy.original()


def test_seed_names_work_as_environment_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIES", "6")
    monkeypatch.setenv("BACKOFF_FACTOR", "0.5")
    policy = ClientSettings().policy()
    # BACKOFF_FACTOR selects the original doubling shape: delay = factor * 2**attempt
    assert policy.schedule(6) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert policy.max_attempts == 6


def test_prefixed_names_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "VIDEOSIM_SERVER_URL=http://example.test:1234\n"
        "VIDEOSIM_STRATEGY=hinted\n"
        "VIDEOSIM_JITTER=full\n"
        "VIDEOSIM_MAX_RPS=50\n"
        "VIDEOSIM_DELAY=3\n"  # the server's setting: ignored here
    )
    monkeypatch.setenv("VIDEOSIM_MAX_RPS", "20")  # environment beats .env
    settings = ClientSettings()
    assert settings.server_url == "http://example.test:1234"
    assert settings.strategy is Strategy.HINTED
    assert settings.max_rps == 20
    assert settings.policy().jitter is Jitter.FULL


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRIES", "9")
    monkeypatch.setenv("VIDEOSIM_STRATEGY", "backoff")
    settings = ClientSettings(max_attempts=2, strategy=Strategy.LONG_POLL)
    assert settings.max_attempts == 2
    assert settings.strategy is Strategy.LONG_POLL


def test_presets_and_overrides() -> None:
    fixed = ClientSettings(preset="fixed", initial_s=0.3, max_attempts=4).policy()
    assert fixed.schedule(3) == [0.3, 0.3, 0.3] and fixed.max_attempts == 4
    tuned = ClientSettings(initial_s=20.0, seed=3, deadline_s=60).policy()
    assert tuned.initial_s == 20.0 and tuned.max_delay_s == 20.0  # the cap follows up
    assert tuned.seed == 3 and tuned.deadline_s == 60


def test_bad_values_raise_validation_errors_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIDEOSIM_MAX_IN_FLIGHT", "lots")
    with pytest.raises(ValidationError, match="max_in_flight"):
        ClientSettings()


def test_an_inconsistent_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"max_delay_s \(1.0\) must be >= initial_s \(5.0\)"):
        ClientSettings(initial_s=5.0, max_delay_s=1.0).policy()
