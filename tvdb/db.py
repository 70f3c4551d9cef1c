"""Opening the tvdb database with its whole schema: the composition root of the storage layer.

The engine and the connection interface are in `tvdb.storage` (the bottom layer, which knows no
table); the migration history, assembled from each table's owner, is `tvdb.schema.HISTORY`. Code
below the CLI and the scenario runner never imports this module: it receives a `Database`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tvdb.schema import HISTORY
from tvdb.storage.base import Database
from tvdb.storage.sqlite import (
    SqliteDatabase,
    database_file,
    open_sqlite,
    savepoint,
    storage_error,
    transaction,
)
from tvdb.storage.sqlite import schema_status as _schema_status

if TYPE_CHECKING:
    from tvdb.settings import Settings
    from tvdb.storage.copy import MigrateReport
    from tvdb.storage.postgres import PgDatabase

__all__ = ["SqliteDatabase", "copy_to_pg", "database_file", "open_db", "open_pg", "open_storage", "pg_schema_status",
           "savepoint", "schema_status", "storage_error", "transaction"]


def open_db(path: Path | str) -> SqliteDatabase:
    """Open (creating if needed) the SQLite database at `path` with WAL, a busy timeout and the
    current schema. Raises StorageError for a full or read-only disk, ConfigError for a path that
    cannot hold a database."""
    return open_sqlite(path, HISTORY)


def schema_status(path: Path) -> tuple[list[str], list[str]]:
    """(pending, unknown) migration names of the database at `path`, read-only. Raises sqlite3.Error."""
    return _schema_status(path, HISTORY)


def open_pg(url: str, *, max_size: int = 8) -> PgDatabase:
    """Connect to the PostgreSQL database at `url` (postgresql://user:password@host/db) with the
    current schema (psycopg_pool, at most `max_size` connections). Raises ConfigError when the
    `postgres` extra is missing, StorageError when the server cannot be reached."""
    from tvdb.storage.postgres import open_postgres

    return open_postgres(url, HISTORY, max_size=max_size)


def open_storage(settings: Settings) -> Database:
    """The tvdb database the settings name: PostgreSQL when `database_url` (TVDB_DATABASE_URL) is
    set, and then no SQLite file is created; else the SQLite file `settings.database_path`."""
    if settings.database_url is not None:
        return open_pg(settings.database_url.get_secret_value())
    return open_db(settings.database_path)


def pg_schema_status(url: str) -> tuple[str, list[str], list[str]]:
    """(server version, pending, unknown) migration names of the PostgreSQL database at `url`, read-only."""
    from tvdb.storage.postgres import schema_status as _pg_status

    return _pg_status(url, HISTORY)


# Copied before the other tables (jobs reference runs), and the money columns (integer nano-USD)
# whose sums `copy_to_pg` checks on both sides.
_PARENTS = ("runs",)
_MONEY = ("cost_nusd", "would_cost_nusd", "amount_nusd", "settled_nusd", "assumed_nusd", "old_cost_nusd",
          "new_cost_nusd", "old_would_cost_nusd", "new_would_cost_nusd")


def copy_to_pg(path: Path, url: str) -> MigrateReport:
    """`tvdb ledger migrate`: copy the SQLite database at `path` into the PostgreSQL database at
    `url` (both brought to the current schema first), idempotently, counts and money sums checked
    before COMMIT. Raises MigrateMismatch (nothing written), StorageError, ConfigError."""
    import sqlite3

    from tvdb.storage.copy import copy_database

    open_db(path).close()  # an older file's schema first (adds columns, loses nothing)
    target = open_pg(url)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return copy_database(conn, str(path), target, parents_first=_PARENTS, money=_MONEY)
    finally:
        target.close()
