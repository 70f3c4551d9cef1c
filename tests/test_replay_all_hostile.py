"""`tvdb replay --all` with hostile options: a bad --jobs names the command as the user typed it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_a_bad_jobs_count_is_a_usage_error_naming_tvdb_replay(
        jobs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("replay", "--all", str(tmp_path), "--jobs", jobs)
    assert code == 2
    assert "Try 'tvdb replay -h' for help." in err and "replay replay" not in err
    code, out, _ = cli("replay", "--all", str(tmp_path), "--jobs", jobs, "--json")
    error = json.loads(out)["error"]
    assert code == 2 and (error["command"], error["param"]) == ("tvdb replay", "--jobs")
