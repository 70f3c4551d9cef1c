"""`tvdb replay SCENARIO.yaml` (a scenario where the cassette goes) says so and gives the command that works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "scenarios" / "quickstart.yaml", tmp_path / "quickstart.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_scenario_given_as_the_cassette_names_the_scenario_form(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = in_process_cli(monkeypatch, capsys)("replay", "quickstart.yaml")
    assert code == 2 and out == ""
    assert err == ("error: quickstart.yaml is a scenario, not a cassette; "
                   "replay it with `tvdb replay --scenario quickstart.yaml`\n")


def test_the_suggestion_keeps_a_given_cassette_quoted_for_the_shell(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = in_process_cli(monkeypatch, capsys)("replay", "quickstart.yaml", "--cassette", "my tape.yaml")
    assert code == 2
    assert "replay it with `tvdb replay --scenario quickstart.yaml --cassette 'my tape.yaml'`" in err


def test_other_yaml_that_is_not_a_cassette_keeps_the_cassette_error(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "notes.yaml").write_text("title: not a scenario either\n")
    code, _, err = in_process_cli(monkeypatch, capsys)("replay", "notes.yaml")
    assert code == 2
    assert err == "error: notes.yaml: not a vcrpy cassette (no `interactions` list)\n"
