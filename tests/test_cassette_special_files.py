"""A cassette path that is not a regular file — a directory, a FIFO, a symlink loop — is refused by
`tvdb replay` (one scenario or --all) and `tvdb cassette check` with a message that says what it is.
Never "no such cassette", never a silent skip, and a FIFO never hangs (each command runs in a child
process with a timeout, so a hang fails the test instead of the suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KINDS = {"directory": "is a directory", "fifo": "is a FIFO", "loop": "is a symlink loop"}


def _project(tmp_path: Path, kind: str) -> Path:
    (tmp_path / "scen").mkdir()
    (tmp_path / "scen" / "a.md").write_text("alpha tide\n")
    (tmp_path / "scen" / "s.yaml").write_text("name: s\ndocuments: [a.md]\n")
    (tmp_path / "cassettes").mkdir()
    cassette = tmp_path / "cassettes" / "s.yaml"
    if kind == "directory":
        cassette.mkdir()
    elif kind == "fifo":
        os.mkfifo(cassette)
    else:
        os.symlink("s.yaml", cassette)  # points at itself
    return cassette


def _tvdb(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TVDB_DATA_DIR": str(tmp_path / ".tvdb")}
    return subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("kind", KINDS)
def test_replay_of_a_cassette_that_is_not_a_file_says_what_it_is(tmp_path: Path, kind: str) -> None:
    _project(tmp_path, kind)
    for args in (["cassettes/s.yaml"], ["--scenario", "scen/s.yaml"]):
        done = _tvdb(tmp_path, "replay", *args)
        assert done.returncode == 2, done.stderr
        assert f"cassettes/s.yaml: not a cassette file: it {KINDS[kind]}" in done.stderr
        assert "no such cassette" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_replay_all_lists_it_as_an_error_not_a_skip_and_does_not_hang(tmp_path: Path, kind: str) -> None:
    _project(tmp_path, kind)
    done = _tvdb(tmp_path, "replay", "--all", "scen", "--json")
    assert done.returncode == 2, done.stderr
    (entry,) = json.loads(done.stdout)["runs"]
    assert entry["outcome"] == "error"
    assert entry["message"] == f"cassettes/s.yaml: not a cassette file: it {KINDS[kind]}"


@pytest.mark.parametrize("kind", KINDS)
def test_cassette_check_refuses_it(tmp_path: Path, kind: str) -> None:
    _project(tmp_path, kind)
    done = _tvdb(tmp_path, "cassette", "check", "cassettes/s.yaml", "--json")
    assert done.returncode == 1, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert [(f["kind"], f["excerpt"]) for f in findings] == [
        ("refused", f"cassettes/s.yaml: not a cassette file: it {KINDS[kind]}")]


def test_cassette_check_of_a_folder_without_cassettes_is_refused_not_passed(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = _tvdb(tmp_path, "cassette", "check", "empty", "--json")
    assert done.returncode == 1, done.stderr
    assert [f["excerpt"] for f in json.loads(done.stdout)["findings"]] == [
        "empty: a folder with no cassette (*.yaml, *.yml) under it; pass the folder your cassettes are in"]
