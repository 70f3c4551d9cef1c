"""Another process holding the database's write lock past the busy timeout stops the run resumably,
as a full disk does (StorageError, exit 4, "nothing done is lost"), instead of failing each document
it was working on as an internal error. The timeout is shortened here (30 s in production)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import tvdb.storage.sqlite
from tests.run_support import mock_scenario
from tvdb.clock import FakeClock
from tvdb.db import open_db, transaction
from tvdb.domain import Stage
from tvdb.errors import StorageError
from tvdb.scenarios.runner import RunHooks, resume_run, start_run


def _hold_lock(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_write_lock_held_past_the_timeout_is_a_storage_error_saying_who_to_wait_for(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    db.conn.execute("PRAGMA busy_timeout = 50")
    holder = _hold_lock(tmp_path / "t.db")
    with pytest.raises(StorageError) as locked:
        with transaction(db):
            db.conn.execute("INSERT INTO runs (run_id) VALUES ('x')")
    assert locked.value.path == str(tmp_path / "t.db")
    assert str(locked.value) == (
        f"cannot write {tmp_path / 't.db'}: another process has held the database's write lock for over 30 s "
        "(SQLITE_BUSY); nothing done is lost: wait until the other process using the file ends (another tvdb, "
        "or a tool with a write transaction open; `fuser` on the file names it), then run the command again")
    holder.execute("ROLLBACK")
    with transaction(db):  # the lock is free: the same connection writes again
        db.conn.execute("INSERT INTO runs (run_id) VALUES ('x')")


def test_a_run_that_meets_a_held_lock_stops_and_resumes_with_every_document(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tvdb.storage.sqlite, "BUSY_TIMEOUT_MS", 100)
    loaded, settings = mock_scenario(
        tmp_path, {f"{name}.md": f"# {name}\n" + " ".join(f"{name}word{i}" for i in range(400)) for name in "abc"})
    holders: list[sqlite3.Connection] = []

    def after(stage: Stage) -> None:
        if stage is Stage.UPLOAD and not holders:  # another process takes the lock and keeps it
            holders.append(_hold_lock(settings.database_path))

    with pytest.raises(StorageError, match="write lock"):
        asyncio.run(start_run(loaded, settings, clock=FakeClock(), hooks=RunHooks(after_stage=after)))
    holders[0].execute("ROLLBACK")
    db = open_db(settings.database_path)
    assert db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall() == [("uploaded", 3)]
    (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    result = asyncio.run(resume_run(run_id, settings, clock=FakeClock()))
    assert [d.status for d in result.documents] == ["complete"] * 3
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE error_code IS NOT NULL").fetchone() == (0,)


def test_an_up_to_date_database_opens_and_reads_while_another_process_holds_the_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `tvdb runs`, reports and doctor read: only a file with pending migrations needs the write lock
    open_db(tmp_path / "t.db").close()
    monkeypatch.setattr(tvdb.storage.sqlite, "BUSY_TIMEOUT_MS", 100)
    holder = _hold_lock(tmp_path / "t.db")
    db = open_db(tmp_path / "t.db")
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
    with pytest.raises(StorageError, match="write lock"):  # writing still waits for the lock, and says so
        with transaction(db):
            db.conn.execute("INSERT INTO runs (run_id) VALUES ('x')")
    holder.execute("ROLLBACK")


def test_a_paid_call_that_meets_a_held_lock_logs_the_lock_not_a_full_disk(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import datetime as dt

    from tvdb.domain import Implementation
    from tvdb.ledger.guard import NoBudget
    from tvdb.ledger.usage import Pricing, UsageRow
    from tvdb.services.calls import Completed

    db = open_db(tmp_path / "t.db")
    db.conn.execute("PRAGMA busy_timeout = 50")
    row = UsageRow(ts=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), run_id="r", stage="embed", service="openai",
                   implementation=Implementation.REAL, model="text-embedding-3-small", units=10, unit="tokens",
                   pricing=Pricing(200, 200, None))
    holder = _hold_lock(tmp_path / "t.db")
    with pytest.raises(StorageError, match="write lock"):
        Completed("vectors", row, None).commit_with(
            db, NoBudget(), lambda: db.conn.execute("INSERT INTO runs (run_id) VALUES ('x')"))
    holder.execute("ROLLBACK")
    assert [r.getMessage() for r in caplog.records if r.name == "tvdb.services.calls"] == [
        "could not store the openai call's usage: another process has held the database's write lock for "
        "over 30 s (SQLITE_BUSY); it is held by its reservation"]
