"""`tvdb replay --all` with hostile options: a bad --jobs names the command as the user typed it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


@pytest.mark.parametrize("shard", ["1/99999999999999999999999", "0/3", "4/3", "1/0", "abc", "1/", "/3", "1/1000000001"])
def test_a_bad_shard_is_a_usage_error_at_once(
        shard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = in_process_cli(monkeypatch, capsys)("replay", "--all", str(tmp_path), "--shard", shard)
    assert code == 2
    assert "expected I/N with 1 ≤ I ≤ N ≤ 1,000,000,000" in err


def test_a_huge_shard_count_puts_each_scenario_in_the_first_shards_and_the_rest_are_empty() -> None:
    from tvdb.scenarios.suite import Planned, assign_shards, select_shard

    planned = [Planned(path=Path(f"s{i}.yaml"), key=f"s{i}.yaml", weight=w) for i, w in enumerate([5, 0, 3, 0])]
    assert [select_shard(planned, (i, 10**9)) for i in (1, 2, 3, 4)] == assign_shards(planned, 10)[:4]
    assert select_shard(planned, (5, 10**9)) == [] and select_shard(planned, (10**9, 10**9)) == []


def _scenarios(root: Path) -> None:
    (root / "scen").mkdir()
    (root / "scen" / "a.md").write_text("alpha tide\n")
    for name in ("s", "t"):
        (root / "scen" / f"{name}.yaml").write_text(f"name: {name}\ndocuments: [a.md]\n")


def test_workers_import_the_installed_tvdb_not_a_tvdb_folder_in_the_cwd(tmp_path: Path) -> None:
    # what the `tvdb` console script is: a file elsewhere, so sys.path[0] is its folder, not the cwd
    # (`python -P -m tvdb` would not do: -P is handed on to the fork server and hides the problem)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tvdb_script.py").write_text(
        "import sys\nfrom tvdb.cli import main\n\nif __name__ == '__main__':\n    sys.exit(main())\n")
    (tmp_path / "work").mkdir()
    _scenarios(tmp_path / "work")
    (tmp_path / "work" / "tvdb").mkdir()
    (tmp_path / "work" / "tvdb" / "__init__.py").write_text("raise RuntimeError('the bogus tvdb in the cwd')\n")
    env = {**os.environ, "TVDB_DATA_DIR": str(tmp_path / ".tvdb")}
    env.pop("PYTHONSAFEPATH", None)
    done = subprocess.run([sys.executable, str(tmp_path / "bin" / "tvdb_script.py"), "replay", "--all", "scen",
                           "--jobs", "2", "--json"], cwd=tmp_path / "work", env=env, capture_output=True, text=True,
                          timeout=180)
    assert "bogus" not in done.stderr, done.stderr
    doc = json.loads(done.stdout)
    assert [(r["scenario"], r["outcome"]) for r in doc["runs"]] == [("s", "skipped"), ("t", "skipped")]
    assert doc["jobs"] == 2 and done.returncode == 0
