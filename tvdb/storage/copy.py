"""Copy a SQLite database into PostgreSQL (`tvdb ledger migrate`; the caller, `tvdb.db`, names the
parent tables and the money columns: this module knows no table).

Every table is copied row for row (primary keys kept, so a second copy finds every row already
there and adds nothing) in one PostgreSQL transaction, and checked before COMMIT: for each table,
the target must hold every source key, and the money columns summed over those keys must be equal
on both sides. A check that fails rolls the whole copy back, so the target is never left half
copied, and a target whose existing rows differ from the source under the same keys (a ledger
already used on its own) is refused rather than silently merged. Identity sequences are moved past
the copied ids so that new rows never collide.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tvdb.errors import ConfigError
from tvdb.storage.postgres import PgDatabase

HISTORY_TABLES = ("_sqlite_migrations", "_tvdb_migrations")
BATCH = 1000


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table's copy: rows in the source, rows newly written, and the checked sums (nano-USD)."""

    table: str
    source_rows: int
    copied: int
    already_there: int
    sums_nusd: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "source_rows": self.source_rows, "copied": self.copied,
                "already_there": self.already_there, "sums_nusd": dict(self.sums_nusd)}


@dataclass(frozen=True, slots=True)
class MigrateReport:
    source: str
    target: str
    tables: tuple[TableCopy, ...]

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "copied_rows": self.copied,
                "source_rows": sum(t.source_rows for t in self.tables), "checked": True,
                "tables": [t.as_dict() for t in self.tables]}


class MigrateMismatch(ConfigError):
    """The copy did not check out (the target held other rows under the same keys): rolled back."""


def copy_database(source: sqlite3.Connection, source_name: str, target: PgDatabase, *,
                  parents_first: Sequence[str] = (), money: Sequence[str] = ()) -> MigrateReport:
    """Copy every table of `source` (a SQLite database at the current schema) into `target` (migrated
    to the same schema), idempotently, checking before COMMIT that every source key is there and
    that each column named in `money` (integer nano-USD) sums the same. `parents_first`: tables to
    copy before the others (foreign keys point at them).

    Raises MigrateMismatch (nothing written) when the target holds different rows under the same keys."""
    tables = _tables(source, parents_first)
    target_tables = {r[0] for r in target.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
    missing = [t for t in tables if t not in target_tables]
    if missing:
        raise ConfigError(f"the PostgreSQL ledger has no table {', '.join(missing)}: the SQLite database "
                          "was written by a newer tvdb; upgrade tvdb and run the migration again")
    out: list[TableCopy] = []
    with target.transaction():
        target.lock_budget_window()  # no reservation is decided while the ledger is being filled
        for table in tables:
            out.append(_copy_table(source, target, table, money))
        _advance_identities(target, tables)
    return MigrateReport(source_name, target.location, tuple(out))


def _tables(source: sqlite3.Connection, first: Sequence[str]) -> list[str]:
    names = [r[0] for r in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    names = [n for n in names if n not in HISTORY_TABLES]
    return [n for n in first if n in names] + [n for n in names if n not in first]


def _columns(source: sqlite3.Connection, table: str) -> tuple[list[str], list[str]]:
    info = source.execute(f'PRAGMA table_info("{table}")').fetchall()
    columns = [r[1] for r in info]
    pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    return columns, pk


def _copy_table(source: sqlite3.Connection, target: PgDatabase, table: str, money: Sequence[str]) -> TableCopy:
    columns, pk = _columns(source, table)
    quoted = ", ".join(f'"{c}"' for c in columns)
    insert = (f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" for _ in columns)}) '
              f'ON CONFLICT ({", ".join(pk)}) DO NOTHING')
    before = int(target.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]
    cur = source.execute(f'SELECT {quoted} FROM "{table}"')
    source_rows = 0
    keys: list[tuple[Any, ...]] = []
    pk_at = [columns.index(c) for c in pk]
    while batch := cur.fetchmany(BATCH):
        target.executemany(insert, batch)
        source_rows += len(batch)
        keys.extend(tuple(row[i] for i in pk_at) for row in batch)
    after = int(target.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]
    sums = _check(source, target, table, [c for c in columns if c in money], pk, keys)
    return TableCopy(table, source_rows, after - before, source_rows - (after - before), sums)


def _check(source: sqlite3.Connection, target: PgDatabase, table: str, money: list[str], pk: list[str],
           keys: list[tuple[Any, ...]]) -> dict[str, int]:
    """Every source key is in the target, and each money column sums the same over those keys."""
    exprs = ["COUNT(*)"] + [f'COALESCE(SUM("{c}"), 0)' for c in money]
    want = source.execute(f'SELECT {", ".join(exprs)} FROM "{table}"').fetchone()
    if not keys:
        return dict.fromkeys(money, 0)
    # the source's keys as a VALUES list joined to the target (one statement per batch of keys)
    got = [0] * len(exprs)
    for i in range(0, len(keys), BATCH):
        chunk = keys[i:i + BATCH]
        row_marks = ", ".join("(" + ", ".join("?" for _ in pk) + ")" for _ in chunk)
        sql = (f'SELECT {", ".join(exprs)} FROM "{table}" t JOIN (VALUES {row_marks}) AS k({", ".join(pk)}) '
               f'USING ({", ".join(pk)})')
        args = [v for key in chunk for v in key]
        part = target.execute(sql, args).fetchone()
        assert part is not None
        got = [a + int(b) for a, b in zip(got, part, strict=True)]
    if [int(v) for v in want] != got:
        raise MigrateMismatch(
            f"the copy of table {table} did not check out (source: {list(want)}, PostgreSQL: {got} for "
            f"COUNT and {', '.join(money) or 'no money columns'}): the PostgreSQL ledger already holds other "
            "rows under the same keys. Nothing was written; migrate into a new, empty database")
    return {c: int(v) for c, v in zip(money, want[1:], strict=True)}


def _advance_identities(target: PgDatabase, tables: list[str]) -> None:
    rows = target.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND is_identity = 'YES'").fetchall()
    for table, column in rows:
        if table in tables:
            target.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
                f'(SELECT COALESCE(MAX("{column}"), 0) + 1 FROM "{table}"), false)')
