"""Interrupted runs continue with `tvdb resume`: SIGKILL at every stage boundary, then resume; the
database ends exactly as after an uninterrupted run and no finished stage's service is called again."""

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

from tests.engines import open_target

REPO = Path(__file__).resolve().parents[1]
STAGES = ["upload", "parse", "chunk", "embed", "store"]
TABLES = ["jobs", "pages", "chunks", "vectors", "usage", "events"]

pytestmark = pytest.mark.slow


def _scenario(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "scenarios" / "quickstart", docs)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n%%EOF\n")
    path = tmp_path / "resume.yaml"
    path.write_text(
        "name: resume\ndocuments: ['docs/*']\nchunking: {max_tokens: 64, overlap_tokens: 8}\n"
        "expectations:\n  documents:\n    - document: docs/broken.pdf\n      status: failed\n"
        "      error_code: corrupt\n"
    )
    return path


def _tvdb(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), **env}
    return subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)


def _query(target: Path | str, sql: str) -> list[tuple[object, ...]]:
    if isinstance(target, Path):
        with sqlite3.connect(target) as conn:
            return conn.execute(sql).fetchall()
    db = open_target(target)
    try:
        return [tuple(r) for r in db.execute(sql).fetchall()]
    finally:
        db.close()


def _counts(target: Path | str) -> dict[str, int]:
    return {t: int(_query(target, f"SELECT COUNT(*) FROM {t}")[0][0]) for t in TABLES}  # type: ignore[call-overload]


def _usage(target: Path | str) -> list[tuple[object, ...]]:
    return _query(target, "SELECT id, ts, stage, status FROM usage ORDER BY id")


def _where(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path | str, dict[str, str]]:
    """The database of this test's engine and the environment that selects it."""
    if engine == "sqlite":
        return tmp_path / ".tvdb" / "tvdb.db", {}
    url = str(request.getfixturevalue("pg_url"))
    return url, {"TVDB_DATABASE_URL": url}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    tmp = tmp_path_factory.mktemp("baseline")
    scenario = _scenario(tmp)
    done = _tvdb(["run", str(scenario), "--json"], tmp)
    assert done.returncode == 0, done.stderr
    return _counts(tmp / ".tvdb" / "tvdb.db")


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_at_stage_boundary_then_resume(tmp_path: Path, stage: str, baseline: dict[str, int], engine: str,
                                               request: pytest.FixtureRequest) -> None:
    scenario = _scenario(tmp_path)
    db, env = _where(engine, tmp_path, request)
    killed = _tvdb(["run", str(scenario), "--json"], tmp_path, TVDB_CRASH_AFTER_STAGE=stage, **env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ((run_id, status),) = _query(db, "SELECT run_id, status FROM runs")
    assert status == "running"
    before = _usage(db)

    resumed = _tvdb(["resume", str(run_id), "--json"], tmp_path, **env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["run_id"] == run_id and result["passed"] is True
    assert _counts(db) == baseline
    after = _usage(db)
    # rows written before the crash are untouched, and no stage that had finished was called again
    assert after[: len(before)] == before
    finished = set(STAGES[: STAGES.index(stage) + 1])
    assert not [row for row in after[len(before):] if row[2] in finished]
    if env:  # with TVDB_DATABASE_URL no SQLite ledger file is written
        assert not (tmp_path / ".tvdb" / "tvdb.db").exists()


def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    stopped = _tvdb(["run", str(scenario)], tmp_path, TVDB_CRASH_AFTER_STAGE="parse:INT")
    assert stopped.returncode == 130
    db = tmp_path / ".tvdb" / "tvdb.db"
    with sqlite3.connect(db) as conn:
        run_id, status = conn.execute("SELECT run_id, status FROM runs").fetchone()
    assert status == "interrupted"
    assert f"tvdb resume {run_id}" in stopped.stderr
    resumed = _tvdb(["resume", run_id, "--json"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["passed"] is True


def test_resume_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    done = _tvdb(["resume", "no-such-run"], tmp_path)
    assert done.returncode == 2
    assert "no run 'no-such-run'" in done.stderr
