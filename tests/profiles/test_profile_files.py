"""Profiles as files: the built-ins load, bad files say what and where in one line, and
the documented example answers of each API parse as the profile says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_profiles import ProfileError, builtin_names, load_profile
from client_core.planner import AnswerKind
from client_core.profile_protocol import ProfileProtocol

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "profiles"
DOCUMENTED = sorted(path.stem for path in FIXTURES.glob("*.json"))


def answer(code: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("GET", "https://api.example.com/")
    return httpx.Response(code, json=body, headers=headers or {}, request=request)


def test_every_built_in_profile_loads_and_each_foreign_one_has_documented_answers() -> None:
    names = builtin_names()
    assert names == sorted(
        ["videosim", "original", "heygen", "replicate", "openai-batches", "azure-operation"]
    )
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.docs, f"{name} cites no documentation"
        if not profile.native:
            assert name in DOCUMENTED


@pytest.mark.parametrize("name", DOCUMENTED)
def test_the_documented_answers_of_each_api_parse(name: str) -> None:
    fixture: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    protocol = ProfileProtocol(load_profile(name))
    start = fixture["start"]
    started = protocol.read_started(answer(start["status_code"], start["body"],
                                           start.get("headers")))  # fmt: skip
    assert started.job_id == start["id"]
    target = protocol.status_target(started.job_id)
    assert target == (start["status_url"] or protocol.profile.status_path(start["id"]))
    for case in fixture["status"]:
        status = protocol.read_status(
            answer(200, case["body"], case.get("headers")), started.job_id, 60.0
        )
        expected = case["expect"]
        assert status.result == expected, case
        kind = AnswerKind.PENDING if expected == "pending" else AnswerKind.FINISHED
        assert status.kind is kind
        assert status.error == case.get("error")
        if "eta_s" in case:
            assert status.eta_s == case["eta_s"]
        if "progress" in case:
            assert status.progress == pytest.approx(case["progress"])


def test_a_state_the_profile_does_not_name_ends_the_watch_rejected_naming_it() -> None:
    protocol = ProfileProtocol(load_profile("replicate"))
    odd = protocol.read_status(answer(200, {"id": "p1", "status": "paused"}), "p1", 60.0)
    assert odd.kind is AnswerKind.REJECTED
    assert odd.error == "state 'paused' at /status is not in profile replicate"
    missing = protocol.read_status(answer(200, {"id": "p1"}), "p1", 60.0)
    assert missing.kind is AnswerKind.REJECTED
    assert missing.error == "no state at /status is not in profile replicate"
    typed = protocol.read_status(answer(200, {"status": ["succeeded"]}), "p1", 60.0)
    assert typed.kind is AnswerKind.REJECTED and "['succeeded']" in (typed.error or "")


def test_a_start_answer_without_the_id_names_the_pointer() -> None:
    from client_core.errors import MalformedAnswer

    protocol = ProfileProtocol(load_profile("heygen"))
    with pytest.raises(MalformedAnswer, match=r"no id at /data/video_translate_id"):
        protocol.read_started(answer(200, {"error": None, "data": {}}))


def test_the_key_comes_from_the_variable_the_profile_names_and_is_never_in_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protocol = ProfileProtocol(load_profile("replicate"))
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    assert protocol.auth_headers() == {}
    assert "$REPLICATE_API_TOKEN is not set" in protocol.missing_key()
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_secret")
    assert protocol.auth_headers() == {"Authorization": "Bearer r8_secret"}
    refused = protocol.read_status(answer(401, {"detail": "Unauthenticated"}), "p1", 60.0)
    assert refused.kind is AnswerKind.REJECTED
    assert "REPLICATE_API_TOKEN" in (refused.error or "")
    assert "r8_secret" not in (refused.error or "") + protocol.missing_key()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\ntitle = "x"\n[start]\npath = "/a"\nid = "id"\n',
         "line 5: start.id: a JSON pointer starts with '/' (got 'id')"),
        ('name = "x"\ntitle = "x"\n[start]\npath = "/a"\nid = "/id"\n[status]\n'
         'path = "/a/{id}"\nstate = "/s"\nstates = { pending = ["p"], completed = ["p"] }\n',
         "status: state 'p' is both pending and completed"),
        ('name = "x"\ntitle = "x"\n[start]\npath = "/a"\nid = "/id"\n[status]\n'
         'path = "/a"\nstate = "/s"\nstates = { pending = ["p"], completed = ["c"] }\n',
         "line 7: status.path: the status path must contain {id}"),
        ('name = "x"\ntitle = "x"\nsurprise = 1\n',
         "line 3: surprise: Extra inputs are not permitted (and 2 more problems)"),
        ('name = "x\n', "not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_profile_file_is_one_line_naming_the_field_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path))
    said = str(caught.value)
    assert "\n" not in said and said.startswith(str(path))
    assert message in said


def test_an_unknown_profile_name_lists_the_built_ins() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'replicat'.*replicate"):
        load_profile("replicat")


def test_the_profile_written_from_scratch_in_the_docs_is_the_one_the_tests_run() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "profiles.md").read_text()
    written = (FIXTURES / "render-farm.toml").read_text().rstrip()
    assert f"```toml\n{written}\n```" in docs
    assert len(written.splitlines()) < 30
    load_profile(str(FIXTURES / "render-farm.toml"))
