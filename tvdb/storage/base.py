"""The narrow connection interface every store is written against, so that more than one engine
(the embedded SQLite file, PostgreSQL) can sit under the same stores.

Rules for SQL written against `Database` (see /STORAGE.md in the repository's team notes and
README "Ledger"):

- placeholders are `?` (qmark), one per parameter; an engine whose driver wants another style
  translates them (PostgreSQL: `%s`);
- new ids come from `INSERT … RETURNING id`, never `cursor.lastrowid`;
- upserts are the standard `INSERT … ON CONFLICT (…) DO UPDATE / DO NOTHING`;
- booleans are counted with `SUM(CASE WHEN … THEN 1 ELSE 0 END)`;
- timestamps are ISO-8601 text (UTC unless a column says otherwise), money integer nano-USD,
  vectors float32 little-endian bytes.

SQL that only one engine understands (a view, a JSON function) lives in that engine's migrations
or behind `Database.engine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

Engine = Literal["sqlite", "postgresql"]
Params = Sequence[Any]


class Cursor(Protocol):
    """What `Database.execute` returns: rows as tuples, in select-list order (DB-API 2.0)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """One connection to the tvdb database, of either engine. Not shared between threads.

    Writes happen inside `transaction()`; outside one, each statement commits on its own.
    """

    @property
    def engine(self) -> Engine:
        """Which engine this is ("sqlite" | "postgresql"), for the rare engine-specific statement."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives, for messages: the SQLite file, or the PostgreSQL URL without its
        password. Never a secret."""
        ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Params = (), /) -> Cursor:
        """Run one statement with `?` placeholders; rows as tuples."""
        ...

    def executemany(self, sql: str, rows: Iterable[Params], /) -> Cursor:
        """Run one statement once per parameter row (a batch insert)."""
        ...

    def query(self, sql: str, params: Params = (), /) -> Iterator[dict[str, Any]]:
        """Run one SELECT; rows as dicts keyed by column name."""
        ...

    def select(self, sql: str, params: Params = (), /) -> list[dict[str, Any]]:
        """Run one read-only SELECT; its rows as dicts keyed by column name, like `query` but
        for the hot paths (a job's row at every transition): sqlite-utils' `query` brackets each
        statement in a SAVEPOINT/RELEASE pair in case it writes, two more statements per read."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """One transaction around the block: committed at its end, rolled back if it raises. Nested
        use joins the outer transaction. A full disk or a lost connection raises StorageError."""
        ...

    def savepoint(self) -> AbstractContextManager[Any]:
        """Inside an open transaction: the block's writes are undone if it raises, kept otherwise
        (and committed with the outer transaction). Raises RuntimeError outside a transaction."""
        ...

    def lock_budget_window(self) -> None:
        """Inside an open transaction: serialise it with every other transaction that checks or
        changes money (usage, reservations), across processes and machines, until it ends.

        SQLite: nothing to do, `transaction()` is BEGIN IMMEDIATE, which already holds the one
        write lock of the file. PostgreSQL: a transaction-scoped advisory lock. Raises
        RuntimeError outside a transaction."""
        ...

    def close(self) -> None: ...


def transaction(db: Database) -> AbstractContextManager[Any]:
    """`db.transaction()`, as a function (the spelling the stores use)."""
    return db.transaction()


def savepoint(db: Database) -> AbstractContextManager[Any]:
    """`db.savepoint()`, as a function."""
    return db.savepoint()


def marks(values: Sized) -> str:
    """`?, ?, ?` for an `IN (…)` list of `len(values)` parameters (at least one)."""
    return ", ".join("?" * max(1, len(values)))


def insert(db: Database, table: str, record: Mapping[str, Any], *, returning: str | None = None) -> Any:
    """`INSERT INTO table (keys) VALUES (?, …)`; with `returning`, that column of the new row (an id).

    `table` and the keys are names from code, never from input."""
    sql = f"INSERT INTO {table} ({', '.join(record)}) VALUES ({marks(record)})"
    if returning is None:
        db.execute(sql, list(record.values()))
        return None
    row = db.execute(f"{sql} RETURNING {returning}", list(record.values())).fetchone()
    return row[0]


def update(db: Database, table: str, key: Mapping[str, Any], fields: Mapping[str, Any]) -> int:
    """`UPDATE table SET field = ?, … WHERE key = ? AND …`; how many rows changed."""
    if not fields:
        return 0
    sets = ", ".join(f"{k} = ?" for k in fields)
    where = " AND ".join(f"{k} = ?" for k in key)
    return int(db.execute(f"UPDATE {table} SET {sets} WHERE {where}", [*fields.values(), *key.values()]).rowcount)
