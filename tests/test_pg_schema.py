"""Both engines' migration histories produce the same schema: tables, columns, mapped types, primary
keys, indexes, and views that give the same rows for the same data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tvdb.db import open_db, open_pg
from tvdb.schema import HISTORY
from tvdb.storage.postgres import translate

TYPES = {"TEXT": "text", "INTEGER": "bigint", "REAL": "double precision", "FLOAT": "double precision",
         "BLOB": "bytea"}
HISTORY_TABLES = {"_sqlite_migrations", "_tvdb_migrations"}


def _sqlite_schema(path: Path) -> dict[str, Any]:
    db = open_db(path)
    tables: dict[str, Any] = {}
    for name in db.table_names():
        if name in HISTORY_TABLES:
            continue
        t = db.table(name)
        cols = {c.name: (TYPES[c.type.upper()], bool(c.notnull), c.default_value) for c in t.columns}
        idx = {(tuple(i.columns), bool(i.unique)) for i in t.indexes if not i.name.startswith("sqlite_autoindex")}
        tables[name] = {"columns": cols, "pk": tuple(t.pks), "indexes": idx}
    views = sorted(db.view_names())
    db.close()
    return {"tables": tables, "views": views}


def _pg_schema(url: str) -> dict[str, Any]:
    open_pg(url).close()
    with psycopg.connect(url) as conn:
        tables: dict[str, Any] = {}
        names = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE'")]
        for name in names:
            if name in HISTORY_TABLES:
                continue
            cols = {r[0]: (r[1], r[2] == "NO", None if r[3] is None or "nextval" in r[3] else r[3])
                    for r in conn.execute(
                        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                        "WHERE table_schema = 'public' AND table_name = %s", [name])}
            # a primary key column is NOT NULL in PostgreSQL by definition; SQLite reports it nullable
            pk = tuple(r[0] for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)", [name]))
            for c in pk:
                cols[c] = (cols[c][0], False, cols[c][2])
            idx = set()
            for r in conn.execute(
                "SELECT i.indisunique, array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
                "FROM pg_index i WHERE i.indrelid = %s::regclass AND NOT i.indisprimary", [name]):
                idx.add((tuple(r[1]), bool(r[0])))
            tables[name] = {"columns": cols, "pk": pk, "indexes": idx}
        views = sorted(r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'public'"))
    return {"tables": tables, "views": views}


def test_both_histories_have_the_same_steps() -> None:
    assert [m.name for m in HISTORY.sqlite()._migrations] == HISTORY.names
    # every part of every step has its PostgreSQL statements
    assert [(s.name, p.owner) for s in HISTORY.steps for p in s.parts if not p.postgresql] == []


def test_both_engines_build_the_same_schema(tmp_path: Path, pg_empty_url: str) -> None:
    lite, pg = _sqlite_schema(tmp_path / "t.db"), _pg_schema(pg_empty_url)
    assert sorted(pg["tables"]) == sorted(lite["tables"])
    for name, table in lite["tables"].items():
        assert pg["tables"][name]["columns"] == table["columns"], name
        assert pg["tables"][name]["pk"] == table["pk"], name
        assert pg["tables"][name]["indexes"] == table["indexes"], name
    assert pg["views"] == lite["views"] == ["daily_spend", "run_summary"]


def test_migrations_are_idempotent_and_recorded(pg_empty_url: str) -> None:
    db = open_pg(pg_empty_url)
    try:
        assert db.migrate(HISTORY) == []
        names = [r[0] for r in db.execute("SELECT name FROM _tvdb_migrations ORDER BY name")]
        assert names == sorted(HISTORY.names)
    finally:
        db.close()


USAGE = [  # (ts, run_id, service, implementation, status, attempt, cost_nusd, would_cost_nusd)
    ("2026-11-29T10:00:00.000000Z", "r1", "openai", "real", "ok", 1, 40_000, 40_000),
    ("2026-11-29T10:00:01.000000Z", "r1", "openai", "real", "error", 2, 0, 0),
    ("2026-11-29T11:00:00.000000Z", "r1", "llamaparse", "real", "ok", 1, 3_000_000, 3_000_000),
    ("2026-11-30T09:00:00.000000Z", "r2", "openai", "mock", "ok", 1, 0, None),
    ("2026-11-30T09:30:00.000000Z", "r2", "openai", "real", "ok", 1, 1_250_000_001, 1_250_000_001),
]
RUNS = [("r1", "2026-11-29T10:00:00.000000Z", "2026-11-29T10:02:03.456000Z"),
        ("r2", "2026-11-30T09:00:00.000000Z", "2026-11-30T09:45:00.000000Z")]
JOBS = [("j1", "r1", 0, "complete", None, 3, 7, 900), ("j2", "r1", 1, "failed", None, None, None, None),
        ("j3", "r2", 0, "complete", "j1", 3, 7, 900)]


def _fill(execute: Any) -> None:
    for run_id, start, end in RUNS:
        execute("INSERT INTO runs (run_id, scenario, mode, status, passed, started_at, finished_at) "
                "VALUES (?, 's', 'real', 'complete', 1, ?, ?)", [run_id, start, end])
    for row in JOBS:
        execute("INSERT INTO jobs (job_id, run_id, ordinal, state, reused_from, pages, chunks, tokens) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(row))
    for ts, run_id, service, impl, status, attempt, cost, would in USAGE:
        execute("INSERT INTO usage (ts, run_id, service, implementation, status, attempt, cost_nusd, "
                "would_cost_nusd) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [ts, run_id, service, impl, status, attempt, cost, would])
    execute("INSERT INTO usage_daily (key, day, service, implementation, run_id, calls, errors, cost_nusd, "
            "would_cost_nusd, cost_unknown, would_cost_unknown) VALUES (?, '2026-11-28', 'openai', 'real', 'r0', "
            "5, 1, 200000, 200000, 0, 0)", [json.dumps(["2026-11-28"])])


@pytest.mark.parametrize("view", ["daily_spend", "run_summary"])
def test_views_give_the_same_rows(tmp_path: Path, pg_url: str, view: str) -> None:
    lite = open_db(tmp_path / "t.db")
    _fill(lambda sql, args: lite.conn.execute(sql, args))
    order = "day, service, implementation" if view == "daily_spend" else "run_id"
    cur = lite.conn.execute(f"SELECT * FROM {view} ORDER BY {order}")
    names = [d[0] for d in cur.description]
    want = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    pg = open_pg(pg_url)
    try:
        _fill(pg.execute)
        got = list(pg.query(f"SELECT * FROM {view} ORDER BY {order}"))
    finally:
        pg.close()
    assert got == want
    assert len(want) == (5 if view == "daily_spend" else 2)


def test_placeholders_are_translated_outside_quotes_only() -> None:
    assert translate("SELECT ? , '?%' , x % 2 FROM t WHERE a LIKE '%\"' || ? ") == (
        "SELECT %s , '?%%' , x %% 2 FROM t WHERE a LIKE '%%\"' || %s ")
