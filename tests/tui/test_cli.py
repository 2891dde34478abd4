"""``videosim``: settings from flags and the environment, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from client_core import BackoffPolicy, Strategy
from tui.cli import build_settings, main, parse_args

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or VIDEOSIM_* variable may leak into these tests."""
    monkeypatch.chdir(tmp_path)
    for name in ("RETRIES", "BACKOFF_FACTOR", "DELAY"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("VIDEOSIM_"):
            monkeypatch.delenv(name)


def test_flags_become_dashboard_settings() -> None:
    settings = build_settings(
        parse_args(
            [
                "--server-url",
                "http://example.test:8000",
                "--strategy",
                "hinted",
                "--preset",
                "original",
                "--no-embedded",
                "--embedded-args",
                "--delay 2",
            ]
        )
    )
    assert settings.server_url == "http://example.test:8000"
    assert settings.strategy is Strategy.HINTED
    assert settings.policy == BackoffPolicy.original()
    assert not settings.embedded
    assert settings.embedded_args == ("--delay", "2")


def test_no_url_means_embedded_default_and_env_aliases_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETRIES", "3")
    monkeypatch.setenv("VIDEOSIM_STRATEGY", "long-poll")
    settings = build_settings(parse_args(["--initial", "0.5"]))
    assert settings.server_url is None and settings.embedded
    assert settings.strategy is Strategy.LONG_POLL
    assert settings.policy.max_attempts == 3
    assert settings.policy.initial_s == 0.5


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--multiplier", "0.5"], {}, "videosim: invalid setting multiplier: "),
        ([], {"VIDEOSIM_STRATEGY": "sometimes"}, "videosim: invalid setting strategy: "),
        (["--initial", "5", "--max-delay", "1"], {}, "videosim: invalid policy: max_delay_s"),
        (["--embedded-args", "'unclosed"], {}, "videosim: invalid --embedded-args: "),
        (["--theme", "no-such-theme"], {}, "videosim: unknown theme 'no-such-theme'"),
        ([], {"VIDEOSIM_SERVER_URL": "notaurl"}, "videosim: invalid setting server_url: "),
        (["--max-duration", "nan"], {}, "videosim: invalid --max-duration: "),
        (["--max-duration", "0"], {}, "videosim: invalid --max-duration: "),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1 and "Traceback" not in err


def test_python_dash_m_tui_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert "--server-url" in result.stdout and "--no-embedded" in result.stdout


@pytest.mark.parametrize(
    "url", ["notaurl", "127.0.0.1:8000", "ftp://example.test", "http://", "http://host:99999"]
)
def test_a_server_url_that_is_not_one_exits_2_before_any_window(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--server-url", url]) == 2  # an app would block here on a tty-less run
    err = capsys.readouterr().err
    assert err.startswith("videosim: invalid setting server_url: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_max_duration_reaches_the_spawn_forms_limit() -> None:
    assert build_settings(parse_args([])).max_duration_s == 3600
    assert build_settings(parse_args(["--max-duration", "90"])).max_duration_s == 90


def test_retries_and_max_attempts_both_set_the_budget() -> None:
    assert build_settings(parse_args(["--retries", "4"])).policy.max_attempts == 4
    assert build_settings(parse_args(["--max-attempts", "6"])).policy.max_attempts == 6


def test_help_names_values_for_a_reader_not_by_internal_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--help showed SETTING:SERVER_URL and SETTING:SEED as value names."""
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    assert "SETTING:" not in shown
    assert "--server-url URL" in shown and "--seed N" in shown and "--api-key KEY" in shown
    assert "{auto,backoff" in shown  # a choice list stays a choice list
