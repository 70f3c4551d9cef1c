"""A run killed under a tvdb older than owner tracking (no pid or host recorded) has no live owner:
`tvdb runs` shows it `interrupted` and `tvdb resume` takes it over — it never stays `running` forever
or is refused as "being worked on by pid None on host None"."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tvdb.clock import FakeClock
from tvdb.db import open_db
from tvdb.owner import owner_alive, process_owner
from tvdb.pipeline.jobs import JobStore

REPO = Path(__file__).resolve().parents[1]


def _tvdb(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), **env}
    return subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("missing", [("pid", "host", "pid_started"), ("pid",), ("host",)])
def test_a_run_without_a_recorded_owner_has_no_live_owner(tmp_path: Path, missing: tuple[str, ...]) -> None:
    store = JobStore(open_db(tmp_path / "t.db"), FakeClock())
    store.create_run(run_id="r1", scenario="s", scenario_path="/s.yaml", mode="mock", spec={}, documents=[])
    store.set_run("r1", **dict.fromkeys(missing))
    assert owner_alive(store.run("r1")) is False
    claimed = store.claim_run("r1")  # no RunBusy, no --force needed
    assert claimed["status"] == "running"
    now = store.run("r1")
    assert (now["pid"], now["host"]) == (process_owner()["pid"], process_owner()["host"])


def test_a_killed_run_of_an_older_version_shows_interrupted_and_resumes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.md"):
        (docs / name).write_text(f"# {name}\nharbour sensors measure the tide every ten minutes")
    (tmp_path / "s.yaml").write_text("name: old\ndocuments: ['docs/*.md']\n")
    killed = _tvdb(["run", "s.yaml", "--json", "--no-progress"], tmp_path, TVDB_CRASH_AFTER_STAGE="parse")
    assert killed.returncode == -9, killed.stderr
    db = tmp_path / ".tvdb" / "tvdb.db"
    with sqlite3.connect(db) as conn:  # what a tvdb without owner tracking leaves behind
        conn.execute("UPDATE runs SET pid = NULL, host = NULL, pid_started = NULL")
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
    listed = _tvdb(["runs", "--json"], tmp_path)
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)["runs"]] == [(run_id, "interrupted")]
    resumed = _tvdb(["resume", run_id, "--json", "--no-progress"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "None" not in resumed.stderr
    result = json.loads(resumed.stdout)
    assert [d["status"] for d in result["documents"]] == ["complete", "complete"]
    listed = _tvdb(["runs", "--json"], tmp_path)
    assert [r["status"] for r in json.loads(listed.stdout)["runs"]] == ["finished"]
