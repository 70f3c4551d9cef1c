"""A scenario file over the 10 MB YAML limit is an error in `tvdb replay --all` (never silently left out)
and `tvdb run` refuses it naming the limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli
from tvdb.scenarios.discover import discover_scenarios, is_scenario_file

BIG = 11 * 1024 * 1024


def _big(path: Path, head: str = "name: big\ndocuments: [a.txt]\n") -> Path:
    path.write_text(head + "description: " + "x" * BIG + "\n")
    return path


def test_a_big_file_that_looks_like_a_scenario_is_one_and_a_big_other_yaml_is_not(tmp_path: Path) -> None:
    scenario = _big(tmp_path / "s.yaml")
    other = _big(tmp_path / "data.yaml", head="rows:\n")
    assert is_scenario_file(scenario) and not is_scenario_file(other)
    assert discover_scenarios(tmp_path) == [scenario]


def test_replay_all_lists_a_big_scenario_as_an_error_and_run_refuses_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("alpha")
    big = _big(tmp_path / "s.yaml")
    (tmp_path / "ok.yaml").write_text("name: ok\ndocuments: [a.txt]\n")
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("replay", "--all", str(tmp_path), "--json", "--jobs", "1")
    doc = json.loads(out)
    totals = doc["totals"]
    assert code == 2 and (totals["scenarios"], totals["errors"], totals["skipped"]) == (2, 1, 1)
    (error,) = [r for r in doc["runs"] if r["outcome"] == "error"]
    limit = f"{big.stat().st_size:,} bytes is over the 10,485,760-byte limit"
    assert error["message"] == f"{big}: cannot read the scenario file: {limit}"
    assert f"✗ error   {big}" in err
    code, out, err = cli("run", str(big))
    assert code == 2
    assert f"cannot read the scenario file: {limit}" in err
