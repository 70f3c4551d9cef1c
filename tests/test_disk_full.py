"""A full or read-only disk (issue 7, item 7): a clear error naming the path, exit 4 (JSON too), the
paid call's usage row written with (or, failing that, before) its results, and a run that resumes
once there is space. The disk is "filled" with SQLite's own limit (`PRAGMA max_page_count`): the
same SQLITE_FULL a full disk gives, without touching the machine's disks."""

from __future__ import annotations

import asyncio
import errno
import json
import sqlite3
import sys
from pathlib import Path

import pytest

import tvdb.storage.sqlite
from tests.billing import billing_emulator, ledger_spent_nusd
from tests.openai_support import KEY
from tvdb.cli.app import app, handle_errors
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.db import open_db, storage_error, transaction
from tvdb.domain import Stage
from tvdb.errors import EXIT_STORAGE, StorageError
from tvdb.pipeline.objects import ObjectStore
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import RunHooks, resume_run, start_run


def fill(conn: sqlite3.Connection) -> None:
    """No page more: the next write that needs one fails with SQLITE_FULL."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_database_is_a_storage_error_naming_the_file(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    fill(db.conn)
    with pytest.raises(StorageError) as full:
        with transaction(db):
            db.conn.execute("CREATE TABLE big (x)")
            db.conn.execute("INSERT INTO big VALUES (randomblob(200000))")
    assert full.value.path == str(tmp_path / "t.db")
    assert "disk is full" in str(full.value) and "cannot rollback" not in str(full.value)
    assert not db.conn.in_transaction
    db.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: the same connection works again
    with transaction(db):
        db.conn.execute("CREATE TABLE ok (x)")


def test_os_errors_of_a_full_or_read_only_disk_are_storage_errors(tmp_path: Path) -> None:
    for code in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        error = storage_error(OSError(code, "x"), tmp_path)
        assert error is not None and error.path == str(tmp_path)
    assert storage_error(OSError(errno.ENOENT, "x"), tmp_path) is None
    store = ObjectStore(tmp_path / "objects", b"k" * 32, FakeClock())
    (tmp_path / "objects").write_text("not a directory")
    with pytest.raises(OSError):  # a plain bug in the setup is not reported as a full disk
        store.put(b"data")


def test_the_cli_exits_4_with_the_path_in_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    original = tvdb.storage.sqlite._enable_wal

    def full_from_the_start(conn: sqlite3.Connection) -> None:
        original(conn)
        conn.execute("PRAGMA max_page_count = 1")

    monkeypatch.setattr(tvdb.storage.sqlite, "_enable_wal", full_from_the_start)
    monkeypatch.setattr(sys, "argv", ["tvdb", "--data-dir", str(tmp_path / "d"), "cost", "report", "--json"])
    assert handle_errors(app) == EXIT_STORAGE == 4
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert (error["type"], error["path"]) == ("StorageError", str(tmp_path / "d" / "tvdb.db"))
    assert "disk is full" in err and "free some space" in err


def test_a_run_stopped_by_a_full_disk_keeps_its_paid_usage_and_resumes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[sqlite3.Connection] = []
    original = tvdb.storage.sqlite._enable_wal

    def track(conn: sqlite3.Connection) -> None:
        original(conn)
        opened.append(conn)

    monkeypatch.setattr(tvdb.storage.sqlite, "_enable_wal", track)

    def disk_fills(stage: Stage) -> None:
        if stage is Stage.CHUNK:
            fill(opened[-1])  # the embedding is paid for, then its vectors find no room

    # dozens of 6 KiB vectors: more than the free space left in the last 16 KiB pages
    (tmp_path / "a.md").write_text("# Tides\n" + " ".join(f"sensor{i} reading" for i in range(3000)))
    path = tmp_path / "s.yaml"
    path.write_text("name: full\nmode: real\nservices: {parser: mock}\ndocuments: [a.md]\n")
    loaded = load_scenario(path)
    with billing_emulator() as (server, billing):
        settings = resolve_settings(
            cwd=tmp_path, scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source,
            environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": KEY,
                     "OPENAI_BASE_URL": server.openai_base_url})
        with pytest.raises(StorageError) as full:
            asyncio.run(start_run(loaded, settings, clock=FakeClock(), hooks=RunHooks(after_stage=disk_fills)))
        assert full.value.path == str(settings.database_path)
        assert billing.billed_requests == 1
        db = open_db(settings.database_path)  # space is free again
        # the paid call's usage row was written on its own when its vectors did not fit
        assert db.execute("SELECT stage, status, cost_nusd > 0 FROM usage WHERE implementation = 'real'"
                          ).fetchall() == [("embed", "ok", 1)]
        assert db.execute("SELECT state FROM jobs").fetchall() == [("embedding",)]
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
        result = asyncio.run(resume_run(run_id, settings, clock=FakeClock()))
    assert result.passed and result.documents[0].status == "complete"
    spent, _assumed = ledger_spent_nusd(db)
    assert spent >= billing.billed_nusd and billing.billed_requests == 2
    assert db.execute("SELECT COUNT(*) FROM reservations WHERE status = 'active'").fetchone()[0] == 0


def test_a_read_only_database_is_a_storage_error(tmp_path: Path) -> None:
    import sqlite_utils

    open_db(tmp_path / "t.db").close()
    conn = sqlite3.connect(f"file:{tmp_path / 't.db'}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(StorageError, match="read-only") as refused:
        with transaction(sqlite_utils.Database(conn)):
            conn.execute("INSERT INTO runs (run_id) VALUES ('x')")
    assert refused.value.path == str(tmp_path / "t.db")
