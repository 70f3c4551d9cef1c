"""A scenario's `name:` becomes its cassette's file name (`cassettes/<name>.yaml`): a name that would put
the cassette anywhere else — a path separator, `..`, NUL, an absolute path — is refused with file:line:key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli
from tvdb.errors import ScenarioError
from tvdb.scenarios.loader import load_scenario


def _scenario(tmp_path: Path, name: str) -> Path:
    (tmp_path / "a.md").write_text("alpha")
    path = tmp_path / "s.yaml"
    path.write_text(f"description: hostile name\nname: {json.dumps(name)}\ndocuments: [a.md]\n")
    return path


@pytest.mark.parametrize("name", ["../../etc/evil", "sub/dir", "..\\up", "a\\b", "/tmp/abs", "x\x00y", "..", "a..b",
                                  "C:\\cassettes\\x"])
def test_a_name_that_is_not_a_plain_file_name_is_refused_with_file_line_key(tmp_path: Path, name: str) -> None:
    path = _scenario(tmp_path, name)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    err = caught.value
    assert (err.path, err.line, err.key) == (path, 2, "name")
    assert "becomes the cassette file cassettes/<name>.yaml" in str(err)
    assert f"{path}:2: name:" in str(err)


@pytest.mark.parametrize("name", ["nightly", "nightly-ingest_v2", "quick start", "v1.2", "überprüfung"])
def test_ordinary_names_still_load(tmp_path: Path, name: str) -> None:
    assert load_scenario(_scenario(tmp_path, name)).scenario.name == name


def test_tvdb_run_refuses_a_traversing_name_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario(tmp_path, "../escaped")
    monkeypatch.chdir(tmp_path)
    code, _, err = in_process_cli(monkeypatch, capsys)("run", str(path), "--record", "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert ":2: name:" in err and "'/'" in err
    assert not (tmp_path / "escaped.yaml").exists() and not (tmp_path.parent / "escaped.yaml").exists()
