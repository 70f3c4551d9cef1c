"""The password in `database_url` is a secret: a canary password never reaches stdout, stderr, a
--debug log, --json, `tvdb doctor`, an error, a traceback, the data dir or the database itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from tests.engines import open_target
from tests.pg_server import PASSWORD, PgServer
from tvdb.errors import StorageError
from tvdb.storage.postgres import PgDatabase

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "scenarios" / "quickstart.yaml"
UNREACHABLE = f"postgresql://tvdb:{PASSWORD}@127.0.0.1:1/tvdb"

pytestmark = pytest.mark.slow


def _tvdb(cwd: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), "TVDB_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def _leaks(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]


def test_a_run_on_postgresql_with_debug_logs_never_shows_the_password(tmp_path: Path, pg_url: str) -> None:
    done = _tvdb(tmp_path, pg_url, "--debug", "--log-format", "json", "run", str(QUICKSTART), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["passed"] is True
    assert PASSWORD not in done.stdout + done.stderr
    assert _leaks(tmp_path) == []
    assert not (tmp_path / ".tvdb" / "tvdb.db").exists()  # the ledger is PostgreSQL's alone
    db = open_target(pg_url)
    try:
        text_columns = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND data_type = 'text'").fetchall()
        for table, column in text_columns:
            hits = db.execute(f'SELECT COUNT(*) FROM "{table}" WHERE "{column}" LIKE ?', [f"%{PASSWORD}%"]).fetchone()
            assert hits == (0,), f"{table}.{column} holds the password"
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
    finally:
        db.close()
    logs = _tvdb(tmp_path, pg_url, "--debug", "runs", "list", "--json")
    assert logs.returncode == 0 and PASSWORD not in logs.stdout + logs.stderr


def test_doctor_checks_the_connection_and_masks_the_password(tmp_path: Path, pg_url: str) -> None:
    done = _tvdb(tmp_path, pg_url, "doctor", "--json")
    assert PASSWORD not in done.stdout + done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    db = checks["database"]
    assert db["status"] == "ok" and "postgresql://***@127.0.0.1" in db["detail"] and "PostgreSQL 1" in db["detail"]
    assert db["latency_ms"] is not None and checks["daily budget"]["status"] == "ok"
    down = _tvdb(tmp_path, UNREACHABLE, "doctor", "--json")
    assert PASSWORD not in down.stdout + down.stderr
    failed = {c["name"]: c for c in json.loads(down.stdout)["checks"]}["database"]
    assert failed["status"] == "fail" and "cannot connect to PostgreSQL" in failed["detail"]
    assert "TVDB_DATABASE_URL" in failed["fix"]


def test_an_unreachable_server_is_exit_4_without_the_password_in_any_form(tmp_path: Path) -> None:
    for args in (("cost", "report", "--json"), ("--debug", "runs", "list"), ("run", str(QUICKSTART), "--json")):
        done = _tvdb(tmp_path, UNREACHABLE, *args)
        assert done.returncode == 4, (args, done.stderr)
        assert PASSWORD not in done.stdout + done.stderr, args
        assert "postgresql://***@127.0.0.1:1/tvdb" in done.stderr
    report = json.loads(_tvdb(tmp_path, UNREACHABLE, "cost", "report", "--json").stdout)
    assert report["exit_code"] == 4 and report["error"]["type"] == "StorageError"
    assert report["error"]["path"] == "postgresql://***@127.0.0.1:1/tvdb"
    assert _leaks(tmp_path) == []


def test_a_bad_url_is_a_usage_error_that_does_not_repeat_it(tmp_path: Path) -> None:
    done = _tvdb(tmp_path, f"mysql://tvdb:{PASSWORD}@db/tvdb", "cost", "report", "--json")
    assert done.returncode == 2 and PASSWORD not in done.stdout + done.stderr
    assert "TVDB_DATABASE_URL" in done.stderr and "PostgreSQL URL" in done.stderr


def test_tracebacks_of_engine_errors_hold_no_password(pg_server: PgServer, pg_url: str) -> None:
    with pytest.raises(StorageError) as down:
        PgDatabase(UNREACHABLE, connect_timeout_s=2)
    db = PgDatabase(pg_url)
    try:
        with pytest.raises(StorageError) as lost, db.transaction():
            (pid,) = db.execute("SELECT pg_backend_pid()").fetchone() or (0,)
            pg_server.admin(f"SELECT pg_terminate_backend({pid})")
            db.execute("SELECT 1")
    finally:
        db.close()
    for caught in (down.value, lost.value):
        text = "".join(traceback.format_exception(caught))
        assert PASSWORD not in text and "***" in text


def test_ledger_migrate_json_masks_the_target(tmp_path: Path, pg_url: str) -> None:
    from tvdb.db import open_db

    open_db(tmp_path / ".tvdb" / "tvdb.db").close()
    env_url = pg_url
    done = _tvdb(tmp_path, env_url, "ledger", "migrate", "--json")
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["target"].startswith("postgresql://***@127.0.0.1") and report["checked"] is True
