"""Validation errors read as tvdb's own sentences: pydantic's "Value error, " / "Assertion failed, "
labels never reach the user, whether the value came from a flag, the environment or tvdb.session()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError, field_validator

import tvdb
from tests.cli_support import in_process_cli
from tvdb.errors import ConfigError
from tvdb.validation import describe, own_message

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
LABELS = ("Value error", "Assertion failed")


def test_a_bad_mode_flag_names_the_choices_without_pydantics_label(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    message = "Invalid value for '--mode' / '-m': 'foo' is not one of 'mock', 'real', 'hybrid'."
    code, _, err = in_process_cli(monkeypatch, capsys)("run", str(SCENARIO), "--mode", "foo")
    assert code == 2
    assert err.splitlines()[-1] == f"Error: {message}"
    code, out, err = in_process_cli(monkeypatch, capsys)("run", str(SCENARIO), "--mode", "foo", "--json")
    assert code == 2
    assert json.loads(out)["error"]["message"] == message
    assert err == f"error: {message}\n"


@pytest.mark.parametrize("var,value,expected", [
    ("TVDB_MODE", "foo", "error: TVDB_MODE=foo (environment): must be one of 'mock', 'real' or 'hybrid', "
                          "got 'foo'\n"),
    ("TVDB_TIMEZONE", "Mars/Olympus", "error: TVDB_TIMEZONE=Mars/Olympus (environment): unknown time zone "
                                      "'Mars/Olympus' (use an IANA name such as UTC or Europe/Berlin)\n"),
])
def test_a_bad_environment_setting_reads_as_one_sentence(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], var: str, value: str,
        expected: str) -> None:
    monkeypatch.setenv(var, value)
    code, _, err = in_process_cli(monkeypatch, capsys)("cost", "report")
    assert (code, err) == (2, expected)


def test_a_session_fault_error_keeps_the_validators_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised, tvdb.session(mode="mock", cwd=tmp_path,
                                                            faults=[{"service": "openai", "kind": "status"}]):
        pass
    assert str(raised.value) == "tvdb.session(faults=...): faults[0]: a `status` fault needs `status` (e.g. 429, 500)"


class _Checked(BaseModel):
    size: int

    @field_validator("size")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:  # an explicit raise: pytest rewrites a bare assert's message in test modules
            raise AssertionError("size must be positive")
        return value


def test_describe_drops_the_assertion_label_too() -> None:
    with pytest.raises(ValidationError) as raised:
        _Checked(size=0)
    err = raised.value.errors()[0]
    assert str(err["msg"]).startswith("Assertion failed, ")  # what pydantic itself says
    assert describe(err, _Checked) == "size must be positive"


@pytest.mark.parametrize("msg,expected", [
    ("Value error, overlap_tokens must be smaller than max_tokens", "overlap_tokens must be smaller than max_tokens"),
    ("Assertion failed, size must be positive", "size must be positive"),
    ("Input should be a valid integer", "Input should be a valid integer"),
    ("a note on Value error, mid-sentence", "a note on Value error, mid-sentence"),
])
def test_own_message_strips_only_a_leading_label(msg: str, expected: str) -> None:
    assert own_message(msg) == expected
    assert not own_message(msg).startswith(LABELS)


PYDANTIC_PHRASES = ("Input should", "Extra inputs", "Field required", "should have at least", "input_type",
                    "errors.pydantic.dev", "valid dictionary", "instance of")


def test_a_scenarios_wrong_shapes_read_in_tvdbs_words_at_file_line_and_key(tmp_path: Path) -> None:
    from tvdb.errors import ScenarioError
    from tvdb.scenarios.loader import load_scenario

    (tmp_path / "a.md").write_text("x")
    path = tmp_path / "s.yaml"
    path.write_text("name: ''\ndocuments: a.md\nexpectations:\n  vectors: [1]\n  retrieval:\n"
                    "    - {query: '', document: a.md}\nchunking: 7\n")
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert [(p["line"], p["key"], p["message"]) for p in raised.value.problems] == [
        (1, "name", "must not be empty"),
        (2, "documents", "must be a list (`- item` lines, or [a, b]), got 'a.md'"),
        (4, "expectations.vectors", "must be a mapping (`key: value` lines indented under it, or {key: value}), "
                                    "got [1]"),
        (6, "expectations.retrieval[0].query", "must not be empty"),
        (7, "chunking", "must be a mapping (`key: value` lines indented under it, or {key: value}), got 7"),
    ]
    assert not any(phrase in str(raised.value) for phrase in PYDANTIC_PHRASES)


def test_a_config_files_wrong_shapes_read_in_tvdbs_words(tmp_path: Path) -> None:
    from tvdb.config import resolve_settings

    (tmp_path / "tvdb.yaml").write_text("alerts:\n  thresholds_pct: 80\nchunking: [1]\n")
    with pytest.raises(ConfigError) as raised:
        resolve_settings(cwd=tmp_path, environ={}, dotenv=False)
    config = tmp_path / "tvdb.yaml"
    assert str(raised.value) == (
        f"{config}:2: alerts.thresholds_pct: must be a list (`- item` lines, or [a, b]), got 80\n"
        f"{config}:3: chunking: must be a mapping (`key: value` lines indented under it, or {{key: value}}), got [1]\n"
        "(2 problems)")


@pytest.mark.parametrize("msg,expected", [
    ("Input should be a valid UUID, invalid length", "must be a valid UUID, invalid length"),
    ("Field required", "required key is missing"),
    ("Value error, a sentence of our own", "a sentence of our own"),
    ("a sentence of our own", "a sentence of our own"),
])
def test_an_uncommon_pydantic_message_is_reworded(msg: str, expected: str) -> None:
    from tvdb.validation import plain

    assert plain(msg) == expected
