"""`tvdb runs show` with an unknown run id names the database it looked in and how to list its runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli


def test_an_unknown_run_id_names_the_sqlite_file_and_the_list_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli = in_process_cli(monkeypatch, capsys)
    db = tmp_path / ".tvdb" / "tvdb.db"
    code, out, err = cli("runs", "show", "nope")
    assert code != 0 and code != 70
    assert f"no run 'nope' in {db}; list its runs with `tvdb runs list`" in err
    code, out, _ = cli("runs", "show", "nope", "--json")
    assert json.loads(out)["error"]["message"].startswith(f"no run 'nope' in {db};")
