"""The PostgreSQL engine (tvdb/storage/postgres.py) against the throwaway server: the connection interface,
pooled concurrency, a lost connection, an unreachable server, a missing extra, the masked password."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from tests.pg_server import PASSWORD, PgServer
from tvdb.db import open_pg
from tvdb.errors import EXIT_STORAGE, ConfigError, StorageError, exit_code_for
from tvdb.schema import HISTORY
from tvdb.settings import Settings
from tvdb.storage.postgres import PgDatabase


def test_interface_rows_transactions_and_savepoints(pg_url: str) -> None:
    db = open_pg(pg_url)
    try:
        assert db.engine == "postgresql" and PASSWORD not in db.location and "***@127.0.0.1" in db.location
        with db.transaction():
            assert db.in_transaction
            db.execute("INSERT INTO runs (run_id, status) VALUES (?, ?)", ["r1", "running"])
            with db.transaction():  # nested: joins
                db.execute("UPDATE runs SET status = ? WHERE run_id = ?", ["complete", "r1"])
            with pytest.raises(ValueError), db.savepoint():
                db.execute("INSERT INTO runs (run_id) VALUES ('r2')")
                raise ValueError("undo r2 only")
        assert not db.in_transaction
        assert db.execute("SELECT run_id, status FROM runs").fetchall() == [("r1", "complete")]
        assert list(db.query("SELECT run_id, status FROM runs")) == [{"run_id": "r1", "status": "complete"}]
        with pytest.raises(RuntimeError, match="rolled"), db.transaction():
            db.execute("INSERT INTO runs (run_id) VALUES ('r3')")
            raise RuntimeError("rolled back")
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
        new = db.execute("INSERT INTO usage (service, cost_nusd) VALUES (?, ?) RETURNING id", ["openai", 5])
        assert new.fetchone() == (1,)
        db.executemany("INSERT INTO usage (service, cost_nusd) VALUES (?, ?)", [("openai", 1), ("openai", 2)])
        assert db.execute("SELECT SUM(cost_nusd)::bigint FROM usage WHERE service LIKE 'open%'").fetchone() == (8,)
    finally:
        db.close()


def test_threads_share_the_pool_each_in_its_own_transaction(pg_url: str) -> None:
    db = PgDatabase(pg_url, max_size=4)
    db.migrate(HISTORY)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                with db.transaction():
                    db.lock_budget_window()
                    total = db.execute("SELECT COALESCE(SUM(cost_nusd), 0) FROM usage").fetchone()
                    assert total is not None
                    db.execute("INSERT INTO usage (service, cost_nusd, run_id) VALUES ('openai', 1, ?)", [f"t{n}-{i}"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM usage").fetchone() == (160, 160)
    finally:
        db.close()


def test_a_lost_connection_is_a_storage_error_and_loses_nothing(pg_server: PgServer, pg_url: str) -> None:
    db = open_pg(pg_url)
    try:
        with pytest.raises(StorageError) as caught, db.transaction():
            db.lock_budget_window()
            db.execute("INSERT INTO reservations (reservation_id, status, amount_nusd) VALUES ('x', 'active', 5)")
            pid = db.execute("SELECT pg_backend_pid()").fetchone()
            assert pid is not None
            pg_server.admin(f"SELECT pg_terminate_backend({pid[0]})")
            db.execute("INSERT INTO usage (service) VALUES ('openai')")
        message = str(caught.value)
        assert exit_code_for(caught.value) == EXIT_STORAGE
        assert "connection to PostgreSQL failed" in message and "rolled back" in message
        assert PASSWORD not in message and "postgresql://***@127.0.0.1" in message
        # the pool replaced the dead connection; the reservation was rolled back by the server
        assert db.execute("SELECT COUNT(*) FROM reservations").fetchone() == (0,)
    finally:
        db.close()


def test_an_unreachable_server_is_a_storage_error_without_the_password(pg_server: PgServer) -> None:
    url = f"postgresql://tvdb:{PASSWORD}@127.0.0.1:1/nowhere"
    with pytest.raises(StorageError) as caught:
        PgDatabase(url, connect_timeout_s=2)
    assert "cannot connect to PostgreSQL" in str(caught.value) and PASSWORD not in str(caught.value)
    # Not "cannot write": a read-only command (`tvdb runs`) meets a server that is down the same way.
    assert str(caught.value).startswith("cannot reach postgresql://***@127.0.0.1:1/nowhere: cannot connect")
    wrong = pg_server.url("postgres", password="not-the-password")
    with pytest.raises(StorageError, match="password authentication failed") as refused:
        PgDatabase(wrong, connect_timeout_s=5)
    assert "not-the-password" not in str(refused.value)


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg → ImportError
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[postgres\]' in a tvdb checkout, or pip install "
                                          r"'psycopg\[binary\]>=3\.1\.4' 'psycopg_pool>=3\.1'"):
        PgDatabase("postgresql://tvdb@127.0.0.1/tvdb")


def test_database_url_setting_is_a_secret_and_checked(tmp_path: Path) -> None:
    from pydantic import ValidationError

    s = Settings(database_url=f"postgresql://tvdb:{PASSWORD}@db.example/tvdb")  # type: ignore[arg-type]
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.model_dump())
    with pytest.raises(ValidationError, match="must be a PostgreSQL URL") as bad:
        Settings(database_url=f"mysql://tvdb:{PASSWORD}@db.example/tvdb")  # type: ignore[arg-type]
    assert PASSWORD not in str(bad.value)
    assert Settings(database_url="  ").database_url is None  # type: ignore[arg-type]
