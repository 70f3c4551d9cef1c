"""A resumed run names where its modes came from in one wording for every stage: the parse stage
(here a `services.parser` override) and the embed stage (here the `mode`) both say "set by the run
being resumed: <key>", as a run's own calls say "set by scenario: <key>"."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _tvdb(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)


def test_parse_and_embed_of_a_resumed_run_give_their_reason_in_one_wording(tmp_path: Path) -> None:
    shutil.copytree(REPO / "scenarios" / "quickstart", tmp_path / "docs")
    scenario = tmp_path / "resume.yaml"
    scenario.write_text("name: resume\nmode: mock\nservices: {parser: mock}\ndocuments: ['docs/*.md']\n")
    # killed after upload: both call stages run in the resuming process
    killed = _tvdb(["run", str(scenario), "--json"], tmp_path, TVDB_CRASH_AFTER_STAGE="upload")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db") as conn:
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()

    resumed = _tvdb(["resume", run_id, "--json"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reasons = [(p["stage"], p["reason"]) for p in json.loads(resumed.stdout)["provenance"]]
    assert reasons == [("parse", "set by the run being resumed: services.parser"),
                       ("embed", "set by the run being resumed: mode")]

    shown = _tvdb(["resume", run_id, "--format", "plain"], tmp_path)  # the finished run's stored result
    rows = [line.split() for line in shown.stdout.splitlines() if line.startswith(("parse ", "embed "))]
    assert [" ".join(r[2:-2]) for r in rows] == ["set by the run being resumed: services.parser",
                                                  "set by the run being resumed: mode"]
