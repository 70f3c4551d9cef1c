"""Opening the tvdb database with its whole schema: the composition root of the storage layer.

The engine and the connection interface are in `tvdb.storage` (the bottom layer, which knows no
table); the migration history, assembled from each table's owner, is `tvdb.schema.HISTORY`. Code
below the CLI and the scenario runner never imports this module: it receives a `Database`.
"""

from __future__ import annotations

from pathlib import Path

from tvdb.schema import HISTORY
from tvdb.storage.sqlite import (
    SqliteDatabase,
    database_file,
    open_sqlite,
    savepoint,
    storage_error,
    transaction,
)
from tvdb.storage.sqlite import schema_status as _schema_status

__all__ = ["SqliteDatabase", "database_file", "open_db", "savepoint", "schema_status", "storage_error",
           "transaction"]


def open_db(path: Path | str) -> SqliteDatabase:
    """Open (creating if needed) the SQLite database at `path` with WAL, a busy timeout and the
    current schema. Raises StorageError for a full or read-only disk, ConfigError for a path that
    cannot hold a database."""
    return open_sqlite(path, HISTORY)


def schema_status(path: Path) -> tuple[list[str], list[str]]:
    """(pending, unknown) migration names of the database at `path`, read-only. Raises sqlite3.Error."""
    return _schema_status(path, HISTORY)
