"""`tvdb ledger migrate`: a SQLite ledger copied into PostgreSQL, idempotently, checked before COMMIT."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tvdb.db import _MONEY, _PARENTS, open_db, open_pg
from tvdb.storage.copy import MigrateMismatch, copy_database


def _sqlite_ledger(path: Path) -> None:
    db = open_db(path)
    c = db.conn
    c.execute("INSERT INTO runs (run_id, scenario, mode, status) VALUES ('r1', 's', 'real', 'complete')")
    c.execute("INSERT INTO jobs (job_id, run_id, ordinal, state) VALUES ('j1', 'r1', 0, 'complete')")
    c.execute("INSERT INTO vectors (chunk_id, job_id, model, dimensions, vector, implementation) "
              "VALUES ('c1', 'j1', 'm', 2, ?, 'real')", [b"\x00\x00\x80?\x00\x00\x00@"])
    for i in range(1, 2501):  # more than one batch
        c.execute("INSERT INTO usage (ts, run_id, service, implementation, status, cost_nusd, would_cost_nusd) "
                  "VALUES ('2026-11-29T10:00:00.000000Z', 'r1', 'openai', 'real', 'ok', ?, ?)", [i, i])
    c.execute("INSERT INTO reservations (reservation_id, status, amount_nusd, settled_nusd) "
              "VALUES ('res1', 'settled', 40000, 39000)")
    db.close()


def test_copy_is_checked_idempotent_and_keeps_ids_and_bytes(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "tvdb.db"
    _sqlite_ledger(path)
    target = open_pg(pg_url)
    try:
        first = copy_database(sqlite3.connect(path), str(path), target, parents_first=_PARENTS, money=_MONEY)
        by_table = {t.table: t for t in first.tables}
        assert by_table["usage"].source_rows == by_table["usage"].copied == 2500
        assert by_table["usage"].sums_nusd == {"cost_nusd": 2500 * 2501 // 2, "would_cost_nusd": 2500 * 2501 // 2}
        assert by_table["reservations"].sums_nusd == {"amount_nusd": 40000, "settled_nusd": 39000}
        assert first.tables[0].table == "runs"  # parents first (jobs reference runs)
        again = copy_database(sqlite3.connect(path), str(path), target, parents_first=_PARENTS, money=_MONEY)
        assert again.copied == 0 and {t.table: t.already_there for t in again.tables}["usage"] == 2500
        assert target.execute("SELECT vector FROM vectors WHERE chunk_id = 'c1'").fetchone() == (
            b"\x00\x00\x80?\x00\x00\x00@",)
        # a new row after the copy gets an id past the copied ones
        new_id = target.execute("INSERT INTO usage (service) VALUES ('openai') RETURNING id").fetchone()
        assert new_id == (2501,)
    finally:
        target.close()


def test_a_target_with_other_rows_under_the_same_keys_is_refused_and_untouched(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "tvdb.db"
    _sqlite_ledger(path)
    target = open_pg(pg_url)
    try:
        target.execute("INSERT INTO usage (id, service, cost_nusd) VALUES (7, 'openai', 123456789)")
        with pytest.raises(MigrateMismatch, match="table usage did not check out"):
            copy_database(sqlite3.connect(path), str(path), target, parents_first=_PARENTS, money=_MONEY)
        assert target.execute("SELECT COUNT(*) FROM usage").fetchone() == (1,)
        assert target.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
    finally:
        target.close()


def test_cli_migrate_prints_the_checked_copy_and_refuses_a_non_postgres_target(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_support import in_process_cli
    from tests.pg_server import PASSWORD

    monkeypatch.setenv("COLUMNS", "200")
    _sqlite_ledger(tmp_path / ".tvdb" / "tvdb.db")  # TVDB_DATA_DIR (conftest) points here
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("ledger", "migrate", "--to", pg_url)
    assert code == 0, err
    flat = " ".join(out.split())  # the title may wrap
    assert "2504 rows copied, counts and sums checked" in flat and PASSWORD not in out + err
    assert "cost_nusd=3,126,250" in out  # the checked sum of usage.cost_nusd
    code, out, err = cli("ledger", "migrate", "--to", pg_url, "--json")
    assert code == 0 and json.loads(out)["copied_rows"] == 0  # idempotent
    code, out, err = cli("ledger", "migrate", "--to", "sqlite:///elsewhere.db", "--json")
    assert code == 2 and "expected a PostgreSQL URL" in json.loads(out)["error"]["message"]
