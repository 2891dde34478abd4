"""Where settings come from, and how the command line reports bad ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import _VALUE_FLAGS, build_command_line, load_settings
from server.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_original_simulation(clean_cwd: Path) -> None:
    settings = ServerSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 7999)
    assert settings.delay == 5.0
    assert settings.error_rate == 0.5
    assert settings.hints is True
    assert settings.long_poll_max_s == 30.0
    assert settings.seed is None
    assert settings.api_key is None
    assert settings.max_jobs == 1_000_000
    assert settings.max_body_bytes == 65536
    assert settings.log_level == "warning"


def test_precedence_defaults_dotenv_env_flags(
    clean_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings([]).delay == 5.0
    (clean_cwd / ".env").write_text("VIDEOSIM_DELAY=1.5\nVIDEOSIM_PORT=8001\nVIDEOSIM_RETRIES=9\n")
    assert load_settings([]).delay == 1.5
    monkeypatch.setenv("VIDEOSIM_DELAY", "2.5")
    settings = load_settings([])
    assert (settings.delay, settings.port) == (2.5, 8001)
    settings = load_settings(["--delay", "3.5"])
    assert (settings.delay, settings.port) == (3.5, 8001)


def test_delay_alias_from_the_seed(clean_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_cwd / ".env").write_text("DELAY=7\n")
    assert ServerSettings().delay == 7.0
    monkeypatch.setenv("DELAY", "3")
    assert ServerSettings().delay == 3.0
    monkeypatch.setenv("VIDEOSIM_DELAY", "4")  # the project's own name wins over the alias
    assert ServerSettings().delay == 4.0
    assert load_settings(["--delay", "6"]).delay == 6.0


def test_every_field_reads_its_environment_variable(
    clean_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "VIDEOSIM_HOST": "0.0.0.0",
        "VIDEOSIM_ERROR_RATE": "0.1",
        "VIDEOSIM_HINTS": "false",
        "VIDEOSIM_LONG_POLL_MAX_S": "12",
        "VIDEOSIM_SEED": "42",
        "VIDEOSIM_MAX_JOBS": "10",
        "VIDEOSIM_MAX_DURATION_S": "60",
        "VIDEOSIM_MAX_BODY_BYTES": "100",
        "VIDEOSIM_API_KEY": "k",
        "VIDEOSIM_FAULT_LATENCY_MS": "3",
        "VIDEOSIM_FAULT_LATENCY_JITTER_MS": "4",
        "VIDEOSIM_FAULT_UNAVAILABLE_RATE": "0.2",
        "VIDEOSIM_FAULT_RETRY_AFTER_S": "5",
        "VIDEOSIM_FAULT_RATE_LIMIT_RPS": "6",
        "VIDEOSIM_LOG_LEVEL": "INFO",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = ServerSettings()
    assert settings.host == "0.0.0.0"
    assert settings.error_rate == 0.1
    assert settings.hints is False
    assert settings.long_poll_max_s == 12
    assert settings.seed == 42
    assert (settings.max_jobs, settings.max_duration_s, settings.max_body_bytes) == (10, 60, 100)
    assert settings.api_key == "k"
    assert settings.initial_faults().model_dump() == {
        "latency_ms": 3,
        "latency_jitter_ms": 4,
        "unavailable_rate": 0.2,
        "retry_after_s": 5,
        "rate_limit_rps": 6,
    }
    assert settings.log_level == "info"


def test_every_flag_reaches_its_setting(clean_cwd: Path) -> None:
    settings = load_settings(
        [
            "--host=0.0.0.0",
            "--port=8123",
            "--delay=0.25",
            "--error-rate=1",
            "--no-hints",
            "--long-poll-max=3",
            "--seed=9",
            "--max-jobs=5",
            "--max-duration=7",
            "--max-batch=11",
            "--retention=60",
            "--max-idempotency-keys=12",
            "--max-body-bytes=99",
            "--request-log-length=13",
            "--max-header-bytes=2048",
            "--max-headers=20",
            "--header-timeout=3",
            "--body-timeout=4",
            "--max-connections=50",
            "--api-key=abc",
            "--fault-latency-ms=1",
            "--fault-latency-jitter-ms=2",
            "--fault-unavailable-rate=0.5",
            "--fault-retry-after=4",
            "--fault-rate-limit=8",
            "--trusted-proxies=10.0.0.1",
            "--log-level=debug",
            "--store=redis://cache:6380/2",
            "--workers=3",
            "--max-batch-status=14",
            "--max-subscriptions-per-client=16",
            "--max-subscribed-ids-per-client=17",
            "--events-heartbeat=2.5",
            "--events-buffer=15",
            "--events-send-timeout=6",
            "--callback-hosts=hooks.internal,10.0.0.7",
            "--allow-any-callback-host",
            "--callback-failure-details",
            "--callback-attempts=3",
            "--callback-takeover=1.5",
            "--profile=openai-batches",
            "--scenario=steady",
        ]
    )
    assert settings.model_dump() == {
        "host": "0.0.0.0",
        "port": 8123,
        "delay": 0.25,
        "error_rate": 1.0,
        "hints": False,
        "long_poll_max_s": 3.0,
        "plain": False,
        "seed": 9,
        "scenario": "steady",
        "profile": "openai-batches",
        "reload": False,
        "max_jobs": 5,
        "max_batch": 11,
        "retention_s": 60.0,
        "max_idempotency_keys": 12,
        "max_duration_s": 7.0,
        "max_body_bytes": 99,
        "request_log_length": 13,
        "max_header_bytes": 2048,
        "max_headers": 20,
        "header_timeout_s": 3.0,
        "body_timeout_s": 4.0,
        "max_connections": 50,
        "api_key": "abc",
        "fault_latency_ms": 1.0,
        "fault_latency_jitter_ms": 2.0,
        "fault_unavailable_rate": 0.5,
        "fault_retry_after_s": 4,
        "fault_rate_limit_rps": 8.0,
        "trusted_proxies": "10.0.0.1",
        "log_level": "debug",
        "store": "redis://cache:6380/2",
        "workers": 3,
        "state_file": None,
        "max_batch_status": 14,
        "max_subscriptions_per_client": 16,
        "max_subscribed_ids_per_client": 17,
        "events_heartbeat_s": 2.5,
        "events_buffer": 15,
        "events_send_timeout_s": 6.0,
        "callback_hosts": "hooks.internal,10.0.0.7",
        "allow_any_callback_host": True,
        "callback_failure_details": True,
        "callback_attempts": 3,
        "callback_takeover_s": 1.5,
    }


def test_empty_values_count_as_unset(clean_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_cwd / ".env").write_text("VIDEOSIM_SEED=\nVIDEOSIM_API_KEY=\n")
    monkeypatch.setenv("VIDEOSIM_DELAY", "")
    settings = ServerSettings()
    assert (settings.seed, settings.api_key, settings.delay) == (None, None, 5.0)
    assert load_settings(["--api-key", ""]).api_key is None


def test_plain_switches_hints_and_long_poll_off(clean_cwd: Path) -> None:
    settings = load_settings(["--plain", "--hints", "--long-poll-max", "9"])
    assert (settings.hints, settings.long_poll_max_s) == (False, 0.0)


def test_flags_left_out_do_not_override_the_environment(
    clean_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDEOSIM_HINTS", "0")
    assert load_settings([]).hints is False
    assert load_settings(["--hints"]).hints is True


def test_help_names_every_flag_with_its_default() -> None:
    text = build_command_line().parser.format_help()
    for flag in [
        "--host", "--port", "--delay", "--error-rate", "--hints", "--no-hints",
        "--long-poll-max", "--plain", "--seed", "--reload", "--max-jobs", "--max-duration",
        "--max-body-bytes", "--api-key", "--fault-latency-ms", "--fault-latency-jitter-ms",
        "--fault-unavailable-rate", "--fault-retry-after", "--fault-rate-limit", "--log-level",
        "--max-batch", "--retention", "--max-idempotency-keys", "--request-log-length",
        "--max-header-bytes", "--max-headers", "--header-timeout", "--body-timeout",
        "--max-connections",
    ]:  # fmt: skip
        assert flag in text
    assert "default: 7999" in text
    assert "default: 5.0" in text


def run_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m server`` from a directory without a .env file, with a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOSIM_") and k != "DELAY"}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT / "tests",
    )


def test_python_m_server_help_lists_flags() -> None:
    result = run_server("--help")
    assert result.returncode == 0
    assert "--long-poll-max" in result.stdout
    assert "--fault-rate-limit" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "70000"], {}, "invalid setting port: Input should be less than or equal to"),
        ([], {"VIDEOSIM_DELAY": "abc"}, "invalid setting delay: Input should be a valid number"),
        ([], {"DELAY": "-1"}, "invalid setting delay: Input should be greater than 0"),
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
        (["--fault-rate-limit", "inf"], {}, "invalid setting fault_rate_limit_rps: Input should"),
        (["--delay", "inf"], {}, "invalid setting delay: Input should be a finite number"),
    ],
    ids=["flag", "env", "seed-alias", "unknown-flag", "inf-rate-limit", "inf-delay"],
)
def test_bad_values_stop_start_up_with_one_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_server(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("videosim-server: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


FLOAT_SETTINGS = [
    name
    for name, field in ServerSettings.model_fields.items()
    if field.annotation in (float, float | None)
]


def test_every_float_setting_is_listed() -> None:
    assert len(FLOAT_SETTINGS) >= 11  # a new float setting needs no new test: it is here


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
@pytest.mark.parametrize("field", FLOAT_SETTINGS)
def test_no_numeric_setting_takes_inf_or_nan(
    clean_cwd: Path, field: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = next(flag for flag, name, _ in _VALUE_FLAGS if name == field)
    with pytest.raises(SystemExit) as exited:
        load_settings([f"{flag}={value}"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"videosim-server: invalid setting {field}: ")


def test_the_deprecated_state_file_names_a_sqlite_store(clean_cwd: Path) -> None:
    settings = load_settings(["--state-file=jobs.jsonl"])
    assert settings.store_url == "sqlite:///jobs.jsonl"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers=2"], "--workers 2 needs a shared store (--store redis://host:port/db); "
         "memory lives in one process"),
        (["--workers=2", "--store=sqlite:///x.db"], "--workers 2 needs a shared store"),
        (["--store=postgres://db"], "invalid setting store: Value error, 'postgres://db' is not "
         "a store: use memory, sqlite:///path/jobs.db or redis://host:port/db"),
        (["--store=sqlite:///a.db", "--state-file=b.db"],
         "give --store or the deprecated --state-file, not both"),
        (["--store=sqlite:///tmp/x.db"], "invalid setting store: Value error, "
         "'sqlite:///tmp/x.db' names the relative path tmp/x.db (no ./tmp here); for "
         "/tmp/x.db write sqlite:////tmp/x.db (four slashes)"),
    ],
)  # fmt: skip
def test_store_and_workers_are_refused_in_one_line(
    clean_cwd: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        load_settings(flags)
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"videosim-server: {message}")


def test_a_taken_port_is_one_line_and_exit_2(clean_cwd: Path) -> None:
    """It was uvicorn's ERROR line and exit code 3."""
    import socket
    import subprocess
    import sys

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "-m", "server", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode == 2
    assert finished.stderr.strip() == (
        f"videosim-server: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "starting" not in finished.stdout
